"""Acra's data containers through the engine against the bare work with the key in hand.

Floors, measured in the same run (the floors are written here on `cryptography` alone: the
Themis KDF with `hmac.digest`, AES-GCM, ECDH; nothing looked up, nothing wiped):
- keys.encrypt / decrypt of a 100-byte AcraBlock vs the two Secure Cell operations  (<= 1.5)
- the same for an AcraStruct (ECDH + two Secure Cells)                              (<= 1.5)
  (the key in hand is the key as keyloader hands it out: the public container to encrypt,
  the private one to decrypt, each loaded into `cryptography` per call, as is the
  AcraStruct's own throwaway public key)
- 10 000 values through encrypt_many / decrypt_many vs 10 000 bare operations       (<= 1.2)
- one 1 MiB AcraBlock vs one raw AES-256-GCM of 1 MiB                                (<= 1.2)
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import interleaved_medians, ratio, report
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader.secret import SecretBytes
from keyloader.stores import MemoryKeyStore

SYM, STORAGE = "client/bench-client/symmetric", "client/bench-client/storage"
VALUE = os.urandom(100)
BULK = 10_000
KDF = b"\x00\x00\x00\x01Themis secure cell message key\x00"


def seal(key: bytes, data: bytes, context: bytes = b"") -> bytes:
    """A bare Secure Cell Seal: the Themis KDF, then AES-256-GCM."""
    iv = os.urandom(12)
    message_key = hmac.digest(key, KDF + struct.pack("<I", len(data)) + context, "sha256")
    sealed = AESGCM(message_key).encrypt(iv, data, context or None)
    head = struct.pack("<4I", 0x40010100, 12, 16, len(data))
    return head + iv + sealed[-16:] + sealed[:-16]


def unseal(key: bytes, blob: bytes, context: bytes = b"") -> bytes:
    message_key = hmac.digest(key, KDF + blob[12:16] + context, "sha256")
    return AESGCM(message_key).decrypt(blob[16:28], blob[44:] + blob[28:44], context or None)


def bare_block_encrypt(key: bytes, data: bytes) -> bytes:
    data_key = os.urandom(32)
    sealed_data, sealed_key = seal(data_key, data), seal(key, data_key)
    kek_id = hashlib.sha256(key).digest()[:2]
    head = struct.pack("<4sQB2sBH", b'""""', 14 + 76 + len(sealed_data), 0, kek_id, 0, 76)
    return head + sealed_key + sealed_data


def bare_block_decrypt(key: bytes, block: bytes) -> bytes:
    return unseal(unseal(key, block[18:94]), block[94:])


def main() -> None:
    master = generate_master_key()
    keys = KeyManager(MemoryKeyStore({}), MasterKey(SecretBytes(master.encryption.buffer)))
    keys.generate(["symmetric", "storage"], client_id="bench-client")
    with keys.read(SYM) as secret:
        key = secret.bytes()
    with keys.read(STORAGE) as secret:
        scalar = int.from_bytes(secret.bytes()[13:], "big")
    public_container = keys.read_public(STORAGE)
    block = keys.encrypt(SYM, VALUE, envelope=False)
    acrastruct = keys.encrypt(STORAGE, VALUE, envelope=False)

    def bare_struct_encrypt() -> bytes:
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_container[12:])
        throwaway = ec.generate_private_key(ec.SECP256R1())
        data_key = os.urandom(32)
        wrapped = seal(throwaway.exchange(ec.ECDH(), public), data_key)
        return wrapped + seal(data_key, VALUE)

    def bare_struct_decrypt() -> bytes:
        private = ec.derive_private_key(scalar, ec.SECP256R1())
        throwaway = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), acrastruct[20:53])
        shared = private.exchange(ec.ECDH(), throwaway)
        data_key = unseal(shared, acrastruct[61:137])
        return unseal(data_key, acrastruct[145:])

    medians = interleaved_medians(
        {
            "floor: block encrypt": lambda: bare_block_encrypt(key, VALUE),
            "encrypt AcraBlock": lambda: keys.encrypt(SYM, VALUE),
            "floor: block decrypt": lambda: bare_block_decrypt(key, block),
            "decrypt AcraBlock": lambda: keys.decrypt(SYM, block),
            "floor: struct encrypt": bare_struct_encrypt,
            "encrypt AcraStruct": lambda: keys.encrypt(STORAGE, VALUE),
            "floor: struct decrypt": bare_struct_decrypt,
            "decrypt AcraStruct": lambda: keys.decrypt(STORAGE, acrastruct),
        },
        calls=200,
        rounds=25,  # short rounds, many of them: a noisy neighbour moves the median less
    )
    report(medians)
    for name in (
        "encrypt AcraBlock",
        "decrypt AcraBlock",
        "encrypt AcraStruct",
        "decrypt AcraStruct",
    ):
        verb, kind = name.split()
        floor = medians[f"floor: {kind[4:].lower()} {verb}"]
        ratio(f"{verb}_{kind.lower()}_vs_bare", medians[name] / floor, 1.5)

    values = [os.urandom(100) for _ in range(BULK)]
    blocks = keys.encrypt_many(SYM, values, envelope=False)
    bulk = interleaved_medians(
        {
            "floor: 10k block encrypts": lambda: [bare_block_encrypt(key, v) for v in values],
            "encrypt_many 10k": lambda: keys.encrypt_many(SYM, values, envelope=False),
            "floor: 10k block decrypts": lambda: [bare_block_decrypt(key, b) for b in blocks],
            "decrypt_many 10k": lambda: keys.decrypt_many(SYM, blocks),
        },
        calls=1,
        rounds=9,
    )
    report(bulk)
    ratio(
        "encrypt_many_vs_bare",
        bulk["encrypt_many 10k"] / bulk["floor: 10k block encrypts"],
        1.2,
    )
    ratio(
        "decrypt_many_vs_bare",
        bulk["decrypt_many 10k"] / bulk["floor: 10k block decrypts"],
        1.2,
    )

    mebibyte = os.urandom(1 << 20)
    aes, nonce = AESGCM(os.urandom(32)), os.urandom(12)
    large = interleaved_medians(
        {
            "floor: AES-GCM 1 MiB": lambda: aes.encrypt(nonce, mebibyte, None),
            "encrypt AcraBlock 1 MiB": lambda: keys.encrypt(SYM, mebibyte),
        },
        calls=10,
        rounds=31,  # memory-bound: a neighbour's traffic moves single rounds a lot
    )
    report(large)
    ratio(
        "acrablock_1mib_vs_aesgcm",
        large["encrypt AcraBlock 1 MiB"] / large["floor: AES-GCM 1 MiB"],
        1.2,
    )
    keys.close()
    master.close()


if __name__ == "__main__":
    main()
