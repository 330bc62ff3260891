"""Make tests/core/vectors/acra_containers.json with the real peers: Themis and acrawriter.

Not run by the test suite (no wheel ships libthemis). Build the peers outside the
repo: libthemis from the Themis source (``make themis_shared soter_shared`` in a
cossacklabs/themis checkout of tag 0.15.5, against Debian's libssl-dev), then a
separate virtual environment with ``pip install 'pythemis==0.15.*' acrawriter``
(pythemis 0.15.0 and acrawriter 1.0.3 from PyPI). Run it there with the built
library on the loader path::

    LD_LIBRARY_PATH=<themis>/build <venv>/bin/python make_acra_containers.py \\
        > acra_containers.json

What it writes (bytes as hex):

- ``storage_keypairs``: two Themis-made P-256 keypairs (``REC2``/``UEC2``).
- ``acrastructs``: AcraStructs made by ``acrawriter.create_acrastruct`` for the
  first keypair's public key, plaintexts of 1, 2, 100, 1000 and 70000 random
  bytes and one UTF-8 text, each without and with a context. Each also records
  the throwaway public key and the 32-byte data key that pythemis unwraps from it.
- ``secure_messages``: Themis Secure Message (encrypt mode) from pythemis
  ``SMessage(sender_private, recipient_public).wrap``, with all four keys.
- ``scells``: Secure Cell Seal blobs from pythemis ``SCellSeal(key=...).encrypt``.

Every vector is decrypted back by the same checks as ``--check`` before it is
written. With ``--check FILE``, FILE holds keyloader-made containers::

    {"secure_messages": [{"recipient_private", "sender_public", "message", "plaintext"}],
     "acrastructs": [{"private", "acrastruct", "plaintext", "context": hex | null}],
     "scells": [{"key", "context": hex | null, "blob", "plaintext"}]}

(any list may be missing). Secure Messages are unwrapped with pythemis; each
AcraStruct is taken apart here (an Acra envelope ``%%%`` + u64le total length +
``0xF1`` is stripped if present), its data key unwrapped with pythemis Secure
Message and its data cell opened with pythemis Secure Cell Seal under the given
context, as acrawriter seals it; Secure Cell blobs are opened with pythemis. One
line is printed per failure and the script exits 1 if any failed, else it prints
a summary and exits 0.
"""

from __future__ import annotations

import json
import os
import struct
import sys
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import acrawriter
from pythemis.exception import ThemisError
from pythemis.scell import SCellSeal
from pythemis.skeygen import KEY_PAIR_TYPE, GenerateKeyPair
from pythemis.smessage import SMessage

THEMIS_SOURCE = "libthemis built from cossacklabs/themis tag 0.15.5 (024f1947), Debian OpenSSL 3"

ACRASTRUCT_TAG = b'"' * 8
PUBLIC_KEY_LENGTH = 45  # UEC2 container of a compressed P-256 point
WRAPPED_KEY_LENGTH = 84  # Secure Message (encrypt mode) of the 32-byte data key
DATA_KEY_LENGTH = 32
ENVELOPE_TAG = b"%%%"
ACRASTRUCT_ENVELOPE_ID = 0xF1
ENVELOPE_HEADER_LENGTH = len(ENVELOPE_TAG) + 8 + 1

ACRASTRUCT_LENGTHS = [1, 2, 100, 1000, 70000]
ACRASTRUCT_TEXT = "Ключ до бази — zone «billing», row 17 🔑"
ACRASTRUCT_CONTEXTS = [b"row-17", b"zone context", "зона/рядок 17".encode()]
MESSAGE_LENGTHS = [1, 16, 32, 33, 100, 4096]
SCELL_LENGTHS = [1, 32, 100, 1000]
SCELL_CONTEXTS = [b"some context", b"\x00\x01\x02 binary", b"client_0001"]

Vector = dict[str, Any]


def hexed(data: bytes | None) -> str | None:
    return None if data is None else data.hex()


def unhexed(text: str | None) -> bytes | None:
    return None if text is None else bytes.fromhex(text)


def keypair() -> tuple[bytes, bytes]:
    pair = GenerateKeyPair(KEY_PAIR_TYPE.EC)
    return pair.export_private_key(), pair.export_public_key()


def strip_envelope(container: bytes) -> bytes:
    """Drop Acra's ``%%%`` + u64le total length + envelope id wrapper, if there is one."""
    if not container.startswith(ENVELOPE_TAG):
        return container
    if len(container) < ENVELOPE_HEADER_LENGTH:
        raise ValueError("envelope shorter than its header")
    (total,) = struct.unpack_from("<Q", container, len(ENVELOPE_TAG))
    if total != len(container):
        raise ValueError(f"envelope length {total} but container is {len(container)} bytes")
    if container[ENVELOPE_HEADER_LENGTH - 1] != ACRASTRUCT_ENVELOPE_ID:
        raise ValueError(f"envelope id {container[ENVELOPE_HEADER_LENGTH - 1]:#x}, not 0xf1")
    return container[ENVELOPE_HEADER_LENGTH:]


def split_acrastruct(container: bytes) -> tuple[bytes, bytes, bytes]:
    """(throwaway public key, wrapped data key, data cell) of a bare or enveloped AcraStruct."""
    body = strip_envelope(container)
    if not body.startswith(ACRASTRUCT_TAG):
        raise ValueError(f"does not start with 8 bytes of 0x22: {body[:8].hex()}")
    offset = len(ACRASTRUCT_TAG)
    public = body[offset : offset + PUBLIC_KEY_LENGTH]
    offset += PUBLIC_KEY_LENGTH
    wrapped = body[offset : offset + WRAPPED_KEY_LENGTH]
    offset += WRAPPED_KEY_LENGTH
    if len(body) < offset + 8:
        raise ValueError(f"too short for an AcraStruct: {len(body)} bytes")
    (length,) = struct.unpack_from("<Q", body, offset)
    cell = body[offset + 8 :]
    if length != len(cell):
        raise ValueError(f"data length field says {length}, {len(cell)} bytes follow")
    return public, wrapped, cell


def open_acrastruct(private: bytes, container: bytes, context: bytes | None) -> bytes:
    public, wrapped, cell = split_acrastruct(container)
    data_key = bytes(SMessage(private, public).unwrap(wrapped))
    if len(data_key) != DATA_KEY_LENGTH:
        raise ValueError(f"data key is {len(data_key)} bytes, not 32")
    return bytes(SCellSeal(key=data_key).decrypt(cell, context))


def open_message(item: Vector) -> bytes:
    recipient = SMessage(
        bytes.fromhex(item["recipient_private"]), bytes.fromhex(item["sender_public"])
    )
    return bytes(recipient.unwrap(bytes.fromhex(item["message"])))


def open_acrastruct_item(item: Vector) -> bytes:
    return open_acrastruct(
        bytes.fromhex(item["private"]),
        bytes.fromhex(item["acrastruct"]),
        unhexed(item.get("context")),
    )


def open_scell(item: Vector) -> bytes:
    cell = SCellSeal(key=bytes.fromhex(item["key"]))
    return bytes(cell.decrypt(bytes.fromhex(item["blob"]), unhexed(item.get("context"))))


OPENERS: dict[str, Callable[[Vector], bytes]] = {
    "secure_messages": open_message,
    "acrastructs": open_acrastruct_item,
    "scells": open_scell,
}


def failures_of(containers: dict[str, list[Vector]]) -> tuple[list[str], int]:
    """Open every container with the real peers; (one line per failure, how many were tried)."""
    failures: list[str] = []
    tried = 0
    for kind, opener in OPENERS.items():
        for index, item in enumerate(containers.get(kind, [])):
            tried += 1
            try:
                plaintext = opener(item)
            except (ThemisError, ValueError, KeyError, TypeError, struct.error) as error:
                failures.append(f"{kind}[{index}]: {type(error).__name__}: {error}")
                continue
            if plaintext != bytes.fromhex(item["plaintext"]):
                failures.append(f"{kind}[{index}]: decrypts to other bytes than the plaintext")
    return failures, tried


def make_acrastructs(private: bytes, public: bytes) -> tuple[list[Vector], bool]:
    """acrawriter-made AcraStructs for the keypair; and whether acrawriter enveloped them."""
    plaintexts = [os.urandom(length) for length in ACRASTRUCT_LENGTHS]
    plaintexts.append(ACRASTRUCT_TEXT.encode())
    out: list[Vector] = []
    enveloped = False
    for index, plaintext in enumerate(plaintexts):
        for context in (None, ACRASTRUCT_CONTEXTS[index % len(ACRASTRUCT_CONTEXTS)]):
            container = acrawriter.create_acrastruct(plaintext, public, context)
            enveloped = enveloped or container.startswith(ENVELOPE_TAG)
            throwaway, wrapped, _ = split_acrastruct(container)
            out.append(
                {
                    "public_index": 0,
                    "plaintext": plaintext.hex(),
                    "context": hexed(context),
                    "acrastruct": container.hex(),
                    "throwaway_public": throwaway.hex(),
                    "data_key": SMessage(private, throwaway).unwrap(wrapped).hex(),
                }
            )
    return out, enveloped


def make_messages() -> list[Vector]:
    out: list[Vector] = []
    for length in MESSAGE_LENGTHS:
        sender_private, sender_public = keypair()
        recipient_private, recipient_public = keypair()
        plaintext = os.urandom(length)
        message = SMessage(sender_private, recipient_public).wrap(plaintext)
        out.append(
            {
                "sender_private": sender_private.hex(),
                "sender_public": sender_public.hex(),
                "recipient_private": recipient_private.hex(),
                "recipient_public": recipient_public.hex(),
                "plaintext": plaintext.hex(),
                "message": message.hex(),
            }
        )
    return out


def make_scells() -> list[Vector]:
    out: list[Vector] = []
    for index, length in enumerate(SCELL_LENGTHS):
        for context in (None, SCELL_CONTEXTS[index % len(SCELL_CONTEXTS)]):
            key = os.urandom(32)
            plaintext = os.urandom(length)
            blob = SCellSeal(key=key).encrypt(plaintext, context)
            out.append(
                {
                    "key": key.hex(),
                    "context": hexed(context),
                    "plaintext": plaintext.hex(),
                    "blob": blob.hex(),
                }
            )
    return out


def vectors() -> dict[str, Any]:
    pairs = [keypair() for _ in range(2)]
    acrastructs, enveloped = make_acrastructs(*pairs[0])
    data: dict[str, Any] = {
        "themis": f"pythemis {version('pythemis')} on {THEMIS_SOURCE}",
        "acrawriter": f"acrawriter {version('acrawriter')} (PyPI)",
        "acrawriter_function": "acrawriter.create_acrastruct(data, acra_public_key, context=None)",
        "acrawriter_context": "passed as the Secure Cell Seal context of the data cell only",
        "acrawriter_enveloped": enveloped,
        "acrastruct_layout": (
            "8 x 0x22 | 45-byte UEC2 throwaway public key | 84-byte Secure Message "
            "(throwaway private -> storage public) of the 32-byte data key | u64 little-endian "
            "length of the data cell | Secure Cell Seal of the plaintext under the data key "
            "with the context"
        ),
        "storage_keypairs": [{"private": p.hex(), "public": q.hex()} for p, q in pairs],
        "acrastructs": acrastructs,
        "secure_messages": make_messages(),
        "scells": make_scells(),
    }
    private = pairs[0][0].hex()
    failures, _ = failures_of(
        {
            "secure_messages": data["secure_messages"],
            "acrastructs": [{**item, "private": private} for item in acrastructs],
            "scells": data["scells"],
        }
    )
    if failures:
        raise SystemExit("the peers' own vectors do not open:\n" + "\n".join(failures))
    return data


def check(path: str) -> int:
    with open(path, encoding="utf-8") as stream:
        containers = json.load(stream)
    failures, tried = failures_of(containers)
    for line in failures:
        print(line)
    counts = ", ".join(f"{len(containers.get(kind, []))} {kind}" for kind in OPENERS)
    print(f"{tried - len(failures)} passed, {len(failures)} failed ({counts})")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        sys.exit(check(sys.argv[2]))
    if len(sys.argv) != 1:
        sys.exit(f"usage: {sys.argv[0]} [--check FILE]")
    json.dump(vectors(), sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")
