"""AcraStruct: a value encrypted to a client's storage public key (Acra's ``acrastruct/``).

::

    '"' x 8 | throwaway public key (45, Themis UEC2) | data key wrapped by
    Secure Message from the throwaway key to the storage key (84) |
    u64 LE length of the data cell | Secure Cell Seal of the data under the data key

The data key is 32 random bytes; the optional context is the data cell's Secure Cell
context (Acra 0.96 services send none). Making one needs only the public key;
opening one needs the private key. Exactly one AcraStruct: no bytes may follow it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ConfigError, IntegrityError
from ..secret import SecretBytes
from ..themis import keys as themis_keys
from ..themis import scell, smessage
from . import envelope

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["MIN_SIZE", "TAG", "AcraStruct", "encrypt", "parse"]

TAG = b'"' * 8
DATA_KEY_SIZE = 32
WRAPPED_KEY_SIZE = smessage.sealed_size(DATA_KEY_SIZE)  # 84
_KEYS_END = len(TAG) + themis_keys.CONTAINER_SIZE + WRAPPED_KEY_SIZE
MIN_SIZE = _KEYS_END + 8
"""Bytes before the data cell: tag, throwaway public key, wrapped data key, length."""
_LENGTH = struct.Struct("<Q")


@dataclass(frozen=True)
class AcraStruct:
    """The parts of a parsed AcraStruct (views into the value, nothing copied)."""

    throwaway_public: memoryview
    wrapped_key: memoryview
    cell: memoryview

    def decrypt(self, private: ec.EllipticCurvePrivateKey, context: bytes | None = None) -> bytes:
        """The plaintext, opened with the storage ``private`` key (the data key and the
        shared secret stay in secret pages)."""
        public = themis_keys.load_public(self.throwaway_public, "the AcraStruct's public key")
        with smessage.decrypt(private, public, self.wrapped_key) as data_key:
            return scell.decrypt_data(data_key.buffer, self.cell, context or b"")


def parse(data: memoryview) -> AcraStruct:
    """Split an AcraStruct, checking its tag and every length; :class:`IntegrityError` if not."""
    if len(data) <= MIN_SIZE + scell.HEADER_SIZE or data[: len(TAG)] != TAG:
        raise IntegrityError("not an AcraStruct: wrong begin tag or too short")
    (length,) = _LENGTH.unpack_from(data, _KEYS_END)
    if length != len(data) - MIN_SIZE:
        raise IntegrityError("not an AcraStruct: its data length does not match the value")
    start = len(TAG) + themis_keys.CONTAINER_SIZE
    return AcraStruct(data[len(TAG) : start], data[start:_KEYS_END], data[MIN_SIZE:])


def encrypt(
    public: ec.EllipticCurvePublicKey,
    plaintext: bytes | bytearray | memoryview,
    context: bytes | None = None,
    *,
    enveloped: bool = False,
    data_key: memoryview | None = None,
) -> bytes:
    """A new AcraStruct of ``plaintext`` for the holder of the private half of ``public``
    (behind the crypto envelope with ``enveloped``), made with one copy of the data.
    ``data_key``: 32 random bytes in secret pages to use, else drawn here."""
    from cryptography.hazmat.primitives.asymmetric import ec

    if len(plaintext) == 0:
        raise ConfigError("the value is empty: Acra's containers cannot hold an empty value")
    throwaway = ec.generate_private_key(ec.SECP256R1())
    fresh = SecretBytes.random(DATA_KEY_SIZE) if data_key is None else None
    key = fresh.buffer if fresh is not None else data_key
    assert key is not None
    try:
        wrapped = smessage.encrypt(throwaway, public, key)
        cell = scell.seal_parts(key, plaintext, context or b"")
    finally:
        if fresh is not None:
            fresh.wipe()
    cell_size = scell.HEADER_SIZE + len(plaintext)
    prefix = envelope.header(envelope.ACRASTRUCT, MIN_SIZE + cell_size) if enveloped else b""
    throwaway_public = themis_keys.public_container(throwaway.public_key())
    return b"".join((prefix, TAG, throwaway_public, wrapped, _LENGTH.pack(cell_size), *cell))
