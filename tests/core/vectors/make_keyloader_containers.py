"""Make tests/core/vectors/keyloader_containers.json: keyloader-made values for the peers.

Run in the workspace's virtual environment. With ``--peer-python`` (pythemis'
virtual environment, see make_acra_containers.py) and ``--themis-lib`` (the built
libthemis), it then runs ``make_acra_containers.py --check`` on the file and records
the peer's verdict under ``peer_check``; the file is written only if every value
passed::

    .venv/bin/python tests/core/vectors/make_keyloader_containers.py \\
        --peer-python /work/peer/venv/bin/python --themis-lib /work/peer/themis/build \\
        --output tests/core/vectors/keyloader_containers.json

What it makes (bytes as hex): Secure Messages between keyloader keypairs; AcraStructs
(bare and enveloped, with and without a context) and poison records from a
``KeyManager`` on a memory store, with the private key that opens each; AcraBlocks
with the symmetric key (also two of acrablock.LARGE bytes and more, which are
written in place rather than joined), whose two inner Secure Cells (the data key under the
symmetric key, the data under the data key) are listed under ``scells`` for the
peer to open.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from keyloader.containers import acrablock, envelope
from keyloader.keystore import KeyManager
from keyloader.masterkey import generate_master_key
from keyloader.stores.memory import MemoryKeyStore
from keyloader.themis import keys as themis_keys
from keyloader.themis import scell, smessage

HERE = Path(__file__).parent
SIZES = (1, 32, 100, 1000)
CONTEXTS = (None, b"row-17")


def _hex(data: bytes | None) -> str | None:
    return None if data is None else data.hex()


def messages() -> list[dict[str, Any]]:
    out = []
    for size in (1, 32, 33, 1000):
        sender, sender_public = themis_keys.generate_keypair()
        recipient, recipient_public = themis_keys.generate_keypair()
        plaintext = secrets.token_bytes(size)
        message = smessage.encrypt(
            themis_keys.load_private(sender), themis_keys.load_public(recipient_public), plaintext
        )
        out.append(
            {
                "recipient_private": recipient.bytes().hex(),
                "sender_public": sender_public.hex(),
                "message": message.hex(),
                "plaintext": plaintext.hex(),
            }
        )
    return out


def containers() -> dict[str, list[dict[str, Any]]]:
    structs: list[dict[str, Any]] = []
    blocks: list[dict[str, Any]] = []
    cells: list[dict[str, Any]] = []
    with KeyManager(MemoryKeyStore({}), generate_master_key()) as keys:
        keys.generate(["storage", "symmetric"], client_id="client1")
        keys.generate(["poison-record", "poison-record-symmetric"])
        with keys.read("client/client1/storage") as private:
            storage_private = private.bytes().hex()
        with keys.read("poison-record") as private:
            poison_private = private.bytes().hex()
        with keys.read("client/client1/symmetric") as key:
            symmetric = key.bytes()
        with keys.read("poison-record-symmetric") as key:
            poison_symmetric = key.bytes()
        for size in SIZES:
            for context in CONTEXTS:
                for enveloped in (False, True):
                    plaintext = secrets.token_bytes(size)
                    value = keys.encrypt(
                        "client/client1/storage", plaintext, context=context, envelope=enveloped
                    )
                    structs.append(_struct(storage_private, value, plaintext, context))
                    value = keys.encrypt("client/client1/symmetric", plaintext, context=context)
                    blocks.append(_block(symmetric, value, plaintext, context, cells))
        for context in CONTEXTS:  # written in place (acrablock.LARGE), not joined
            plaintext = secrets.token_bytes(acrablock.LARGE + 5)
            value = keys.encrypt("client/client1/symmetric", plaintext, context=context)
            blocks.append(_block(symmetric, value, plaintext, context, cells))
        for _ in range(3):
            record = keys.make_poison_record("acrastruct")
            plain = _poison_plaintext(keys, record, poison_private)
            structs.append(_struct(poison_private, record, plain, None))
            record = keys.make_poison_record("acrablock", data_length=64)
            block = acrablock.parse(envelope.unwrap(memoryview(record))[1])
            with acrablock.Kek(poison_symmetric) as kek:
                plain_block = block.decrypt([kek])
            blocks.append(_block(poison_symmetric, record, plain_block, None, cells))
    return {"acrastructs": structs, "acrablocks": blocks, "scells": cells}


def _poison_plaintext(keys: KeyManager, record: bytes, private: str) -> bytes:
    from keyloader.containers import acrastruct

    parsed = acrastruct.parse(envelope.unwrap(memoryview(record))[1])
    return parsed.decrypt(themis_keys.load_private(bytes.fromhex(private)))


def _struct(private: str, value: bytes, plaintext: bytes, context: bytes | None) -> dict[str, Any]:
    return {
        "private": private,
        "acrastruct": value.hex(),
        "plaintext": plaintext.hex(),
        "context": _hex(context),
    }


def _block(
    key: bytes, value: bytes, plaintext: bytes, context: bytes | None, cells: list[dict[str, Any]]
) -> dict[str, Any]:
    block = acrablock.parse(envelope.unwrap(memoryview(value))[1])
    with scell.decrypt(key, block.sealed_key, context or b"") as data_key:
        cells.append(_cell(key, context, block.sealed_key, data_key.bytes()))
        cells.append(_cell(data_key.bytes(), context, block.sealed_data, plaintext))
    return {
        "key": key.hex(),
        "acrablock": value.hex(),
        "plaintext": plaintext.hex(),
        "context": _hex(context),
    }


def _cell(key: bytes, context: bytes | None, blob: memoryview, plaintext: bytes) -> dict[str, Any]:
    return {
        "key": key.hex(),
        "context": _hex(context),
        "blob": bytes(blob).hex(),
        "plaintext": plaintext.hex(),
    }


def peer_check(data: dict[str, Any], python: str, lib: str) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as stream:
        json.dump(data, stream)
    try:
        done = subprocess.run(
            [python, str(HERE / "make_acra_containers.py"), "--check", stream.name],
            env={**os.environ, "LD_LIBRARY_PATH": lib},
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        os.unlink(stream.name)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    passed, failed = (int(word) for word in summary.replace(",", "").split()[0:3:2])
    if done.returncode != 0 or failed:
        sys.exit(f"the peer refused keyloader's values:\n{done.stdout}{done.stderr}")
    version = subprocess.run(
        [python, "-c", "import importlib.metadata as m; print(m.version('pythemis'))"],
        env={**os.environ, "LD_LIBRARY_PATH": lib},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return {
        "peer": f"pythemis {version} on libthemis built from source"
        " (make_acra_containers.py --check)",
        "passed": passed,
        "failed": failed,
        "summary": summary,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-python")
    parser.add_argument("--themis-lib")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    data: dict[str, Any] = {"secure_messages": messages(), **containers()}
    if args.peer_python:
        data["peer_check"] = peer_check(data, args.peer_python, args.themis_lib or "")
    text = json.dumps(data, indent=1) + "\n"
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
