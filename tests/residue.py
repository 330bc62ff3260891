"""Key material a keyloader service held, known independently: what the memory tests count.

:func:`residue_store` makes the key store the child services use; :func:`key_needles`
lists every secret such a child holds or held (the master key raw and base64, every
intermediate key whole and in halves, each key file's Secure Cell message key, and the
data keys and ECDH secret of the child's last values), from this process's own unseal.
"""

from __future__ import annotations

import hmac
import json
import struct
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from keyloader.containers import acrablock, acrastruct, envelope
from keyloader.keyids import key_id_of
from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader.secret import SecretBytes
from keyloader.stores.filesystem import FilesystemKeyStore
from keyloader.themis import keys as themis_keys
from keyloader.themis import scell

from .memscan import ScanResult, push_registers, scan

__all__ = ["KEY_IDS", "key_needles", "residue_store", "scan_service"]

KDF = b"\x00\x00\x00\x01Themis secure cell message key\x00"
KEY_IDS = (
    "client/client1/symmetric",
    "client/client1/searchable",
    "client/client1/storage",
    "poison-record",
    "poison-record-symmetric",
)


def residue_store(keys_dir: Path) -> Iterator[tuple[Path, MasterKey]]:
    """A key store with client keys and poison keys, sealed with a fresh v1 master key."""
    with generate_master_key() as master:
        fs = FilesystemKeyStore({"keys_dir": keys_dir})
        with KeyManager(fs, MasterKey(SecretBytes(master.encryption.buffer))) as keys:
            keys.generate(["symmetric", "searchable", "storage"], client_id="client1")
            keys.generate(["poison-record", "poison-record-symmetric"])
        yield keys_dir, master


def key_needles(keys_dir: Path, master: MasterKey, last: dict[str, str]) -> dict[str, bytes]:
    """Every secret the child holds or held, from this process's own unseal."""
    mk = master.encryption.bytes()
    with master.to_text() as text:
        needles = {"master key": mk, "master key base64": text.bytes()}
    plain: dict[str, bytes] = {}
    for key_id in KEY_IDS:
        kid = key_id_of(key_id)
        fs = FilesystemKeyStore({"keys_dir": keys_dir})
        with KeyManager(fs, MasterKey(SecretBytes(mk)), cache_size=0) as keys:
            blob = fs.get(kid.store_name)
            with keys.read(key_id) as key:
                plain[key_id] = key.bytes()
        secret = plain[key_id]
        secret = secret if len(secret) == 32 else secret[13:]  # a private scalar
        needles[key_id] = secret
        needles[f"{key_id} first half"] = secret[:16]  # AES-256 round keys 0 and 1: the key
        needles[f"{key_id} second half"] = secret[16:]  # in two registers, maybe apart
        length = struct.pack("<I", len(blob) - scell.HEADER_SIZE)
        needles[f"{key_id} message key"] = hmac.digest(mk, KDF + length + kid.context, "sha256")
    symmetric = plain["client/client1/symmetric"]
    block = acrablock.parse(envelope.unwrap(memoryview(bytes.fromhex(last["acrablock"][66:])))[1])
    with scell.decrypt(symmetric, block.sealed_key) as data_key:
        needles["AcraBlock data key"] = data_key.bytes()
    private = themis_keys.load_private(plain["client/client1/storage"])
    parsed = acrastruct.parse(envelope.unwrap(memoryview(bytes.fromhex(last["acrastruct"])))[1])
    throwaway = themis_keys.load_public(parsed.throwaway_public)
    shared = private.exchange(ec.ECDH(), throwaway)
    needles["ECDH shared secret"] = shared
    with scell.decrypt(shared, parsed.wrapped_key[8:]) as data_key:
        needles["AcraStruct data key"] = data_key.bytes()
    return needles


def scan_service(
    command: Sequence[str],
    env: Mapping[str, str],
    keys_dir: Path,
    master: MasterKey,
    extra: Mapping[str, bytes] | None = None,
) -> tuple[ScanResult, dict[str, bytes]]:
    """Start a child service (it prints one JSON line of its last values, then waits on
    stdin), push its registers, and scan it for :func:`key_needles` and ``extra``."""
    child = subprocess.Popen(list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line, f"the child failed (exit {child.wait()})"
        push_registers(child.pid)
        needles = {**key_needles(keys_dir, master, json.loads(line)), **(extra or {})}
        found = scan(child.pid, needles)
        assert found.scanned > 10 * 1024 * 1024  # the whole process was read
        return found, needles
    finally:
        if child.stdin is not None:
            child.stdin.close()
        child.wait(timeout=30)
