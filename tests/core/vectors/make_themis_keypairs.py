"""Make tests/core/vectors/themis_keypairs.json with the real Themis (pythemis + libthemis).

Not run by the test suite (no wheel ships libthemis): build libthemis from the
Themis source (``make themis_shared soter_shared`` in a cossacklabs/themis
checkout, against Debian's libssl-dev), install ``pythemis`` in a separate
virtual environment, then::

    LD_LIBRARY_PATH=<themis>/build python make_themis_keypairs.py > themis_keypairs.json

Each vector is a Themis-made P-256 keypair (``REC2``/``UEC2`` containers), its
private half sealed with Secure Cell Seal under a fixed master key and Acra's
context for a client storage key or the poison record key. With
``--check FILE``, FILE holds keyloader-made keypairs (``[{"private": hex,
"public": hex}]``): each must work with Themis Secure Message in both directions
against a Themis-made keypair; the script exits 1 if not.
"""

from __future__ import annotations

import json
import sys

from pythemis.scell import SCellSeal
from pythemis.skeygen import KEY_PAIR_TYPE, GenerateKeyPair
from pythemis.smessage import SMessage

MASTER_KEY = bytes(range(32))
CONTEXTS = ["billing-service", "client_0001", ".poison_key/poison_key"]


def vectors() -> dict[str, object]:
    cell = SCellSeal(key=MASTER_KEY)
    out = []
    for index in range(9):
        pair = GenerateKeyPair(KEY_PAIR_TYPE.EC)
        private, public = pair.export_private_key(), pair.export_public_key()
        context = CONTEXTS[index % len(CONTEXTS)]
        out.append(
            {
                "private": private.hex(),
                "public": public.hex(),
                "context": context,
                "sealed_private": cell.encrypt(private, context.encode()).hex(),
            }
        )
    return {
        "themis": "pythemis 0.15.0 on libthemis built from cossacklabs/themis",
        "master_key": MASTER_KEY.hex(),
        "keypairs": out,
    }


def check(path: str) -> int:
    """Secure Message between each keyloader-made keypair and a Themis-made one, both ways."""
    themis = GenerateKeyPair(KEY_PAIR_TYPE.EC)
    failures = 0
    with open(path, encoding="utf-8") as stream:
        pairs = json.load(stream)
    for index, pair in enumerate(pairs):
        private, public = bytes.fromhex(pair["private"]), bytes.fromhex(pair["public"])
        to_keyloader = SMessage(themis.export_private_key(), public).wrap(b"to keyloader")
        to_themis = SMessage(private, themis.export_public_key()).wrap(b"to themis")
        ok = (
            SMessage(private, themis.export_public_key()).unwrap(to_keyloader) == b"to keyloader"
            and SMessage(themis.export_private_key(), public).unwrap(to_themis) == b"to themis"
        )
        print(f"keypair {index}: {'ok' if ok else 'FAILED'}")
        failures += not ok
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        sys.exit(check(sys.argv[2]))
    json.dump(vectors(), sys.stdout, indent=1)
    sys.stdout.write("\n")
