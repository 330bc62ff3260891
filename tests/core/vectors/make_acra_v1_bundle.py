"""Make tests/core/vectors/keyloader_acra_v1_bundle.json: a keyloader-made Acra v1 bundle.

Run in the workspace's virtual environment. It exports Acra's own v1 fixture store
(tests/acra_fixtures/v1/keystore) with ``keys export --format acra``, then checks the
bundle with the peers that define its two layers and records their verdict:

- the Secure Cell (no context), opened with pythemis on libthemis built from source
  (``--peer-python``, ``--themis-lib``, as for make_acra_containers.py);
- the gob stream inside, decoded with Go's own ``encoding/gob`` into Acra's
  ``[]*keystore.Key`` (``gobcheck/main.go``; ``--go`` names the go binary).

The file is written only if both agree with what was exported::

    .venv/bin/python tests/core/vectors/make_acra_v1_bundle.py \\
        --peer-python /work/peer/venv/bin/python --themis-lib /work/peer/themis/build \\
        --go go --output tests/core/vectors/keyloader_acra_v1_bundle.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
FIXTURES = HERE.parents[1] / "acra_fixtures"
PEER = r"""
import sys
from pythemis.scell import SCellSeal
key, sealed = bytes.fromhex(sys.argv[1]), bytes.fromhex(sys.argv[2])
sys.stdout.write(SCellSeal(key=key).decrypt(sealed).hex())
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-python", required=True)
    parser.add_argument("--themis-lib", required=True)
    parser.add_argument("--go", default="go")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parents[1]))
    from acrav2 import copy_v1_store, manifest

    from keyloader.bundle import export_keys
    from keyloader.keystore import KeyManager
    from keyloader.masterkey import parse_master_key
    from keyloader.stores.filesystem import FilesystemKeyStore

    work = Path(tempfile.mkdtemp())
    try:
        store = copy_v1_store(work / "store")
        key = parse_master_key(manifest()["master_keys"]["v1"]["ACRA_MASTER_KEY"])
        with KeyManager(FilesystemKeyStore({"keys_dir": store}), key) as keys:
            export_keys(keys, None, work / "bundle", work / "secret", acra=True)
            expected = []
            for blob in keys.store.list():
                for stamp in (None, *blob.history):
                    name = blob.name if stamp is None else f"{blob.name}.old/{stamp}"
                    expected.append(name)
        bundle, secret = (work / "bundle").read_bytes(), (work / "secret").read_bytes()
        env = {**os.environ, "LD_LIBRARY_PATH": args.themis_lib}
        gob = subprocess.run(
            [args.peer_python, "-c", PEER, secret.hex(), bundle.hex()],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        ).stdout
        binary = work / "gobcheck"
        subprocess.run(
            [args.go, "build", "-o", str(binary), "."], cwd=HERE / "gobcheck", check=True
        )
        decoded = json.loads(
            subprocess.run(
                [str(binary)], input=bytes.fromhex(gob), capture_output=True, check=True
            ).stdout
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    names = [entry["name"] for entry in decoded]
    if sorted(names) != sorted(expected) or not all(
        entry["content"] for entry in decoded if not entry["name"].endswith(".pub")
    ):
        raise SystemExit(f"the peers disagree: {names}")
    data = {
        "bundle": bundle.hex(),
        "secret": secret.hex(),
        "entries": decoded,
        "peer_check": {
            "secure_cell": "pythemis (libthemis built from source) opened the bundle",
            "gob": f"Go's encoding/gob decoded {len(decoded)} entries of []*keystore.Key",
        },
    }
    args.output.write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    main()
