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
from functools import lru_cache
from typing import TYPE_CHECKING

from ..errors import KeyFormatError
from ..secret import SecretBytes, burn

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
_ORDER_BYTES = bytes.fromhex("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551")
# SEC1 ECPrivateKey DER of a P-256 scalar, without the public key: version 1, the 32-byte
# scalar, the curve's OID (RFC 5915); OpenSSL computes the public point.
_SEC1_HEAD = bytes.fromhex("30310201010420")
_SEC1_TAIL = bytes.fromhex("a00a06082a8648ce3d030107")


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
    return _crc_update(0xFFFFFFFF, data) ^ 0xFFFFFFFF


def _crc_update(crc: int, data: bytes | bytearray | memoryview) -> int:
    for byte in data:  # a memoryview yields ints: no copy of a private key
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


def _checksum(container: bytes | bytearray | memoryview) -> bytes:
    """The container's CRC-32C with its checksum field taken as zeroes (nothing copied)."""
    head = bytes(container[:8])  # tag and length: no key bytes
    crc = _HEAD_CRC.get(head)
    if crc is None:
        crc = _crc_update(_crc_update(0xFFFFFFFF, head), b"\0\0\0\0")
        if len(_HEAD_CRC) < 16:
            _HEAD_CRC[head] = crc
    crc = _crc_update(crc, container[12:])
    return (crc ^ 0xFFFFFFFF).to_bytes(4, "little")


_HEAD_CRC: dict[bytes, int] = {}
"""The CRC state after a header (tag, length, zeroed checksum): there are two in use."""


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
    from cryptography.hazmat.primitives.serialization import load_der_private_key

    data: bytes | bytearray | memoryview
    if isinstance(container, SecretBytes):
        data = container.buffer
        # a cached key is checked once, not at each use
        container._derived("REC2 checked", lambda _: _check(data, PRIVATE_TAG, "private", where))
    else:
        data = container
        _check(data, PRIVATE_TAG, "private", where)
    with SecretBytes.zeroed(len(_SEC1_HEAD) + 32 + len(_SEC1_TAIL)) as der:
        view = der.buffer
        view[: len(_SEC1_HEAD)] = _SEC1_HEAD
        view[len(_SEC1_HEAD) : -len(_SEC1_TAIL)] = data[HEADER_SIZE + 1 :]
        view[-len(_SEC1_TAIL) :] = _SEC1_TAIL
        if data[HEADER_SIZE] != 0 or not _in_range(view[len(_SEC1_HEAD) : -len(_SEC1_TAIL)]):
            raise KeyFormatError(f"{where}: Themis private key scalar out of range for P-256")
        key = load_der_private_key(view, password=None)  # the key lives in OpenSSL from here
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _in_range(scalar: memoryview) -> bool:
    """1 <= scalar < n, compared byte by byte (no integer copy of the key)."""
    nonzero = any(scalar)
    for mine, limit in zip(scalar, _ORDER_BYTES, strict=True):
        if mine != limit:
            return nonzero and mine < limit
    return False


def load_public(
    container: bytes | bytearray | memoryview, where: str = "public key"
) -> ec.EllipticCurvePublicKey:
    """The P-256 public key of a ``UEC2`` container, strictly checked (point on the curve).

    Public keys are not secret: the last ones loaded are kept, by their container's
    bytes, so a client's key is decompressed and checked once, not at every AcraStruct.
    """
    try:
        return _public_key(bytes(container))
    except _Refused as exc:
        raise KeyFormatError(f"{where}: {exc}") from None


class _Refused(Exception):
    """Why a public container is refused, without where it came from."""


@lru_cache(maxsize=64)
def _public_key(container: bytes) -> ec.EllipticCurvePublicKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        _check(container, PUBLIC_TAG, "public", "")
    except KeyFormatError as exc:
        raise _Refused(str(exc).removeprefix(": ")) from None
    point = container[HEADER_SIZE:]
    if point[0] not in (2, 3):
        raise _Refused("Themis public key is not a compressed P-256 point")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        raise _Refused("Themis public key is not a point on P-256") from None


def private_container(key: ec.EllipticCurvePrivateKey) -> SecretBytes:
    """The ``REC2`` container of ``key`` (the caller wipes it)."""
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    der = key.private_bytes(Encoding.DER, PrivateFormat.TraditionalOpenSSL, NoEncryption())
    try:
        out = SecretBytes.zeroed(CONTAINER_SIZE)
        view = out.buffer
        _HEADER.pack_into(view, 0, PRIVATE_TAG, CONTAINER_SIZE, b"\0\0\0\0")
        view[HEADER_SIZE + 1 :] = memoryview(der)[len(_SEC1_HEAD) : len(_SEC1_HEAD) + 32]
        view[8:12] = _checksum(view)
        return out
    finally:
        burn(der)


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
