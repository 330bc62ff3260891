"""keyloader in five minutes, on the embedded defaults (env provider + filesystem store).

Run it with `make demo`. It generates a master key, opens a key store in a temporary
folder, generates keys for two clients, encrypts and decrypts a record with one of
them (Acra's AcraBlock), rotates that key, and lists the store. Everything goes through
the public API.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import keyloader


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="keyloader-quickstart-"))
    keys_dir = workdir / ".acrakeys"

    # 1. A master key. Services read it from ACRA_MASTER_KEY (the env provider's default),
    #    exactly as Acra does. Only its fingerprint is safe to print.
    with keyloader.generate_master_key() as master_key, master_key.to_text() as text:
        os.environ["ACRA_MASTER_KEY"] = text.bytes().decode()
        print(f"master key generated, fingerprint {master_key.fingerprint}")

    # 2. Open the key store on the defaults: provider "env", store "filesystem".
    with keyloader.open_keystore(keys_dir=keys_dir) as keys:
        for client in ("billing-service", "reports-service"):
            for key_id in keys.generate(["symmetric", "searchable"], client_id=client):
                print(f"generated {key_id}")

        # 3. Encrypt a record in Acra's own format (an AcraBlock, as AcraServer writes it):
        #    the key is decrypted, used and wiped inside keyloader; the app never holds it.
        record = b"4111 1111 1111 1111"
        sealed = keys.encrypt("client/billing-service/symmetric", record)
        assert keys.decrypt("client/billing-service/symmetric", sealed) == record
        print(f"record encrypted ({len(sealed)} bytes, an AcraBlock) and decrypted again")

        # 4. Rotate: new records use the new key; old records still decrypt (the old key
        #    stays as history, index 2).
        keys.rotate("client/billing-service/symmetric")
        assert keys.decrypt("client/billing-service/symmetric", sealed) == record
        print("rotated client/billing-service/symmetric; old records still decrypt")

        # 5. The listing never shows key material.
        print()
        print(f"{'key id':<40} {'index':>5}  {'state':<8} path")
        for info in keys.list(rotated=True):
            print(f"{info.key_id or '-':<40} {info.index or '-':>5}  {info.state:<8} {info.path}")

        failures = [r for r in keys.verify() if not r.ok]
        print(f"\nverified every key: {failures or 'all decrypt'}")

    del os.environ["ACRA_MASTER_KEY"]
    print(f"\nkey directory: {keys_dir}")


if __name__ == "__main__":
    main()
