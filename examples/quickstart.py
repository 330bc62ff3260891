"""keyloader in five minutes, on the embedded defaults (env provider + filesystem store).

Run it with `make demo`. It generates a master key, opens a key store in a temporary
folder, generates keys for two clients, encrypts and decrypts a record with one of
them, rotates that key, and lists the store. Everything goes through the public API.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

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

        # 3. Use an intermediate key: decrypted for the block, wiped right after.
        record = b"4111 1111 1111 1111"
        nonce = secrets.token_bytes(12)
        with keys.use("client/billing-service/symmetric") as key:
            sealed = AESGCM(key.buffer).encrypt(nonce, record, b"card")
        with keys.use("client/billing-service/symmetric") as key:
            opened = AESGCM(key.buffer).decrypt(nonce, sealed, b"card")
        assert opened == record
        print(f"record encrypted ({len(sealed)} bytes) and decrypted again")

        # 4. Rotate: the old key stays readable as history (index 2), so old records still open.
        keys.rotate("client/billing-service/symmetric")
        with keys.use("client/billing-service/symmetric", index=2) as old_key:
            assert AESGCM(old_key.buffer).decrypt(nonce, sealed, b"card") == record
        print("rotated client/billing-service/symmetric; the old key still opens old records")

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
