"""Key material a keyloader service held, known independently: what the memory tests count.

:func:`residue_store` makes the key store the child services use; :func:`key_needles`
lists every secret such a child holds or held (the master key raw and base64, every
intermediate key whole and in halves, each key file's Secure Cell message key, and the
data keys and ECDH secret of the child's last values), from this process's own unseal.
Every AES key among them is counted with its 15 round keys too: AES-NI code keeps those
in vector registers (a 256-byte-at-a-time VAES loop left the last two in zmm30/31), and
AES-256's last two round keys give back the key.
"""

from __future__ import annotations

import hmac
import json
import struct
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
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

__all__ = [
    "KEY_IDS",
    "aes256_round_keys",
    "aes_key_needles",
    "key_needles",
    "residue_store",
    "scan_service",
    "sealed_needles",
]

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


def _sbox() -> bytes:
    """The AES S-box, from its definition (inverse in GF(2^8), then the affine map)."""
    box = bytearray(256)
    p = q = 1
    while True:
        p ^= ((p << 1) & 0xFF) ^ (0x1B if p & 0x80 else 0)  # p *= 3
        q ^= q << 1  # q /= 3
        q ^= q << 2
        q ^= q << 4
        q &= 0xFF
        if q & 0x80:
            q ^= 0x09
        rotated = [((q << n) | (q >> (8 - n))) & 0xFF for n in range(1, 5)]
        box[p] = q ^ rotated[0] ^ rotated[1] ^ rotated[2] ^ rotated[3] ^ 0x63
        if p == 1:
            break
    box[0] = 0x63
    return bytes(box)


SBOX = _sbox()


def aes256_round_keys(key: bytes) -> list[bytes]:
    """The 15 round keys of AES-256 (FIPS-197 key expansion): what AES-NI code keeps in
    vector registers, round keys 0 and 1 being the key itself."""
    words = [key[i : i + 4] for i in range(0, 32, 4)]
    rcon = 1
    for i in range(8, 60):
        word = words[i - 1]
        if i % 8 == 0:
            word = bytes(SBOX[b] for b in word[1:] + word[:1])
            word = bytes((word[0] ^ rcon,)) + word[1:]
            rcon = ((rcon << 1) ^ (0x1B if rcon & 0x80 else 0)) & 0xFF
        elif i % 8 == 4:
            word = bytes(SBOX[b] for b in word)
        words.append(bytes(a ^ b for a, b in zip(words[i - 8], word, strict=True)))
    return [b"".join(words[r * 4 : r * 4 + 4]) for r in range(15)]


def aes_key_needles(name: str, key: bytes) -> dict[str, bytes]:
    """An AES-256 key as the memory may hold it: whole, in halves, and every round key."""
    found = {name: key, f"{name} first half": key[:16], f"{name} second half": key[16:]}
    rounds = aes256_round_keys(key)
    found.update({f"{name} round key {n}": rounds[n] for n in range(2, 15)})
    return found


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
        if len(secret) == 32:  # an AES key (an HMAC key too: its round keys never match)
            needles.update(aes_key_needles(key_id, secret))
        else:  # a private scalar
            needles[key_id] = secret[13:]
            needles[f"{key_id} first half"], needles[f"{key_id} second half"] = (
                secret[13:29],
                secret[29:],
            )
        length = struct.pack("<I", len(blob) - scell.HEADER_SIZE)
        message_key = hmac.digest(mk, KDF + length + kid.context, "sha256")
        needles.update(aes_key_needles(f"{key_id} message key", message_key))
    return {**needles, **value_needles(plain, last)}


def value_needles(plain: Mapping[str, bytes], last: Mapping[str, str]) -> dict[str, bytes]:
    """What the child's data operations derived from the keys ``plain`` (key id -> bytes):
    the AcraBlock KEKs' message keys, and the data keys and ECDH secret of its last values."""
    needles: dict[str, bytes] = {}
    for key_id in ("client/client1/symmetric", "poison-record-symmetric"):  # AcraBlock KEKs
        kek = hmac.digest(plain[key_id], KDF + struct.pack("<I", 32), "sha256")
        needles.update(aes_key_needles(f"{key_id} KEK message key", kek))
    symmetric = plain["client/client1/symmetric"]
    if "acrablock" not in last:  # a child that made no values
        return needles
    for name, value in (("AcraBlock", last["acrablock"][66:]), ("large AcraBlock", last["large"])):
        block = acrablock.parse(envelope.unwrap(memoryview(bytes.fromhex(value)))[1])
        with scell.decrypt(symmetric, block.sealed_key) as data_key:
            needles.update(aes_key_needles(f"{name} data key", data_key.bytes()))
            size = struct.pack("<I", len(block.sealed_data) - scell.HEADER_SIZE)
            cell_key = hmac.digest(data_key.bytes(), KDF + size, "sha256")
            needles.update(aes_key_needles(f"{name} data message key", cell_key))
    private = themis_keys.load_private(plain["client/client1/storage"])
    parsed = acrastruct.parse(envelope.unwrap(memoryview(bytes.fromhex(last["acrastruct"])))[1])
    throwaway = themis_keys.load_public(parsed.throwaway_public)
    shared = private.exchange(ec.ECDH(), throwaway)
    needles["ECDH shared secret"] = shared
    with scell.decrypt(shared, parsed.wrapped_key[8:]) as data_key:
        needles["AcraStruct data key"] = data_key.bytes()
    return needles


def sealed_needles(keys_dir: Path, master_key: bytes, label: str) -> dict[str, bytes]:
    """The Secure Cell message key (with its round keys) of every key file in ``keys_dir``
    under ``master_key``: what unsealing or sealing them derives."""
    needles: dict[str, bytes] = {}
    fs = FilesystemKeyStore({"keys_dir": keys_dir})
    try:
        for key_id in KEY_IDS:
            kid = key_id_of(key_id)
            length = struct.pack("<I", len(fs.get(kid.store_name)) - scell.HEADER_SIZE)
            message_key = hmac.digest(master_key, KDF + length + kid.context, "sha256")
            needles.update(aes_key_needles(f"{key_id} message key ({label})", message_key))
    finally:
        fs.close()
    return needles


def scan_service(
    command: Sequence[str],
    env: Mapping[str, str],
    keys_dir: Path,
    master: MasterKey,
    extra: Mapping[str, bytes] | None = None,
    before: Callable[[dict[str, str]], dict[str, bytes]] | None = None,
    needles_of: Callable[[dict[str, str]], dict[str, bytes]] | None = None,
) -> tuple[ScanResult, dict[str, bytes]]:
    """Start a child service (it prints one JSON line of its last values, then waits on
    stdin), push its registers, and scan it for :func:`key_needles` and ``extra``.

    With ``before``, the needles are taken from the store before the child starts (it
    changes the store), plus what ``before`` returns given the child's JSON line. With
    ``needles_of``, the needles are what it returns given that line (another layout)."""
    needles = dict(extra or {})
    if before is not None and needles_of is None:  # the child changes the store: first
        needles.update(key_needles(keys_dir, master, {}))
    child = subprocess.Popen(list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line, f"the child failed (exit {child.wait()})"
        push_registers(child.pid)
        last = json.loads(line)
        if needles_of is not None:
            needles.update(needles_of(last))
        elif before is None:
            needles.update(key_needles(keys_dir, master, last))
        else:
            needles.update(before(last))
        found = scan(child.pid, needles)
        assert found.scanned > 10 * 1024 * 1024  # the whole process was read
        return found, needles
    finally:
        if child.stdin is not None:
            child.stdin.close()
        child.wait(timeout=30)
