"""Themis EC key containers (P-256): the keypairs behind AcraStruct and poison records.

Acra stores a keypair as two Themis "soter" containers (cossacklabs/themis
``src/soter/soter_ec_key.h``, ``soter_container.c``, ``openssl/soter_ec_key.c``)::

    tag (4 ASCII bytes) | total length (u32 big-endian) | checksum (4 bytes) | key bytes

- private: tag ``REC2``, 45 bytes in all; the key bytes are the private scalar
  big-endian, left-padded with zero bytes to 33;
- public: tag ``UEC2``, 45 bytes; the key bytes are the SEC1-compressed point.

The checksum is the CRC-32C (Castagnoli) of the whole container with the
checksum field zeroed, stored little-endian (Themis stores ``htobe32`` of its
own table's result; the bytes were checked on Themis-made keys). Parsing is
strict: tag, length, checksum, scalar range and point on the curve, each a
:class:`KeyFormatError` that never shows key bytes. Private containers live in
:class:`SecretBytes`.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from ..errors import KeyFormatError
from ..secret import SecretBytes

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

__all__ = [
    "CONTAINER_SIZE",
    "PRIVATE_TAG",
    "PUBLIC_TAG",
    "crc32c",
    "generate_keypair",
    "load_private",
    "load_public",
    "private_container",
    "public_container",
    "public_of",
]

PRIVATE_TAG = b"REC2"
PUBLIC_TAG = b"UEC2"
HEADER_SIZE = 12
KEY_SIZE = 33
CONTAINER_SIZE = HEADER_SIZE + KEY_SIZE
"""Both containers of a P-256 keypair are 45 bytes."""

_HEADER = struct.Struct(">4sI4s")
# P-256 group order: a private scalar is in [1, n - 1].
_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc32c(data: bytes | bytearray | memoryview) -> int:
    """The standard CRC-32C (Castagnoli, reflected, initial and final XOR 0xFFFFFFFF)."""
    crc = 0xFFFFFFFF
    for byte in bytes(data) if isinstance(data, memoryview) else data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _checksum(container: bytes | bytearray | memoryview) -> bytes:
    zeroed = bytearray(container)
    try:
        zeroed[8:12] = b"\0\0\0\0"
        return crc32c(zeroed).to_bytes(4, "little")
    finally:
        zeroed[:] = bytes(len(zeroed))


def _container(tag: bytes, key: bytes | bytearray) -> bytearray:
    out = bytearray(CONTAINER_SIZE)
    _HEADER.pack_into(out, 0, tag, CONTAINER_SIZE, b"\0\0\0\0")
    out[HEADER_SIZE:] = key
    out[8:12] = _checksum(out)
    return out


def _check(container: bytes | bytearray | memoryview, tag: bytes, what: str, where: str) -> None:
    if len(container) < HEADER_SIZE:
        raise KeyFormatError(f"{where}: not a Themis {what} key: {len(container)} bytes")
    found, size, checksum = _HEADER.unpack_from(container)
    if found != tag:
        raise KeyFormatError(
            f"{where}: not a Themis P-256 {what} key: tag {_shown_tag(found)}, expected "
            f"{tag.decode()}"
        )
    if size != CONTAINER_SIZE or len(container) != CONTAINER_SIZE:
        raise KeyFormatError(
            f"{where}: Themis {what} key of {len(container)} bytes (header says {size}); "
            f"a P-256 key container is {CONTAINER_SIZE}"
        )
    if checksum != _checksum(container):
        raise KeyFormatError(f"{where}: Themis {what} key checksum mismatch: corrupt key")


def _shown_tag(tag: bytes) -> str:
    return repr(tag.decode("ascii")) if tag.isascii() and tag.isalnum() else "(not a key tag)"


def load_private(
    container: bytes | bytearray | SecretBytes, where: str = "private key"
) -> ec.EllipticCurvePrivateKey:
    """The P-256 private key of a ``REC2`` container, strictly checked."""
    from cryptography.hazmat.primitives.asymmetric import ec

    data = container.buffer if isinstance(container, SecretBytes) else container
    _check(data, PRIVATE_TAG, "private", where)
    scalar = int.from_bytes(data[HEADER_SIZE:], "big")
    if not 1 <= scalar < _ORDER:
        raise KeyFormatError(f"{where}: Themis private key scalar out of range for P-256")
    return ec.derive_private_key(scalar, ec.SECP256R1())


def load_public(
    container: bytes | bytearray | memoryview, where: str = "public key"
) -> ec.EllipticCurvePublicKey:
    """The P-256 public key of a ``UEC2`` container, strictly checked (point on the curve)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    _check(container, PUBLIC_TAG, "public", where)
    point = bytes(container[HEADER_SIZE:])
    if point[0] not in (2, 3):
        raise KeyFormatError(f"{where}: Themis public key is not a compressed P-256 point")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        raise KeyFormatError(f"{where}: Themis public key is not a point on P-256") from None


def private_container(key: ec.EllipticCurvePrivateKey) -> SecretBytes:
    """The ``REC2`` container of ``key`` (the caller wipes it)."""
    scalar = bytearray(key.private_numbers().private_value.to_bytes(KEY_SIZE, "big"))
    try:
        return SecretBytes.adopt(_container(PRIVATE_TAG, scalar))
    finally:
        scalar[:] = bytes(KEY_SIZE)


def public_container(key: ec.EllipticCurvePublicKey) -> bytes:
    """The ``UEC2`` container of ``key`` (SEC1 compressed point)."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    point = key.public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
    return bytes(_container(PUBLIC_TAG, point))


def public_of(container: bytes | bytearray | SecretBytes, where: str = "private key") -> bytes:
    """The public container that belongs to the private container ``container``."""
    return public_container(load_private(container, where).public_key())


def generate_keypair() -> tuple[SecretBytes, bytes]:
    """A new P-256 keypair as Themis containers: (private, public)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return private_container(key), public_container(key.public_key())
