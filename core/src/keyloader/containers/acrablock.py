"""AcraBlock: a value encrypted under a client's symmetric key (cossacklabs/acra ``acrablock/``).

::

    '"' x 4 | u64 LE length of the rest | KEK backend (0 = Secure Cell) |
    KEK id (2) | data backend (0 = Secure Cell) | u16 LE length of the sealed data key |
    sealed data key | sealed data

The data key is 32 random bytes sealed under the symmetric key; the data is sealed
under the data key; both Secure Cells take the optional context (Acra 0.96 services
send none). The KEK id is the first two bytes of SHA-256(key || context): a reader
tries only the keys whose id matches. Acra ignores bytes after the block, and so does
:func:`parse`.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import ConfigError, IntegrityError
from ..secret import SecretBytes
from ..themis import scell
from . import envelope

__all__ = ["MIN_SIZE", "TAG", "AcraBlock", "encrypt", "key_id", "parse"]

TAG = b'"' * 4
SECURE_CELL = 0
DATA_KEY_SIZE = 32
MIN_SIZE = 18
"""Tag, rest length, both backend bytes, KEK id and the data-key length."""
_HEAD = struct.Struct("<4sQB2sBH")


@dataclass(frozen=True)
class AcraBlock:
    """The parts of a parsed AcraBlock (views into the value, nothing copied)."""

    key_id: bytes
    sealed_key: memoryview
    sealed_data: memoryview

    def decrypt(
        self, keys: Iterable[memoryview | bytearray], context: bytes | None = None
    ) -> bytes:
        """The plaintext, opened with the first of ``keys`` whose KEK id matches and that
        opens the data key (which stays in secret pages); :class:`IntegrityError` if none."""
        ctx = context or b""
        for key in keys:
            if key_id(key, ctx) != self.key_id:
                continue
            try:
                data_key = scell.decrypt(key, self.sealed_key, ctx)
            except IntegrityError:
                continue
            with data_key:
                return scell.decrypt_data(data_key.buffer, self.sealed_data, ctx)
        raise IntegrityError("the AcraBlock does not open with any of the keys")


def key_id(key: memoryview | bytearray | bytes, context: bytes = b"") -> bytes:
    """The 2-byte KEK id of ``key`` under ``context``."""
    digest = hashlib.sha256(key)
    digest.update(context)
    return digest.digest()[:2]


def parse(data: memoryview) -> AcraBlock:
    """Split an AcraBlock, checking its tag, backends and every length.

    Bytes after the block (by its rest length) are ignored, as Acra does; every
    other inconsistency is an :class:`IntegrityError`.
    """
    if len(data) < MIN_SIZE or data[: len(TAG)] != TAG:
        raise IntegrityError("not an AcraBlock: wrong begin tag or too short")
    _, rest, kek_backend, kek_id, data_backend, key_size = _HEAD.unpack_from(data)
    if kek_backend != SECURE_CELL or data_backend != SECURE_CELL:
        raise IntegrityError("not an AcraBlock: unknown encryption backend")
    end = len(TAG) + rest
    if rest < MIN_SIZE - len(TAG) or end > len(data):
        raise IntegrityError("not an AcraBlock: its length does not fit the value")
    data_start = MIN_SIZE + key_size
    if key_size <= scell.HEADER_SIZE or data_start + scell.HEADER_SIZE >= end:
        raise IntegrityError("not an AcraBlock: its data-key length does not fit the block")
    return AcraBlock(bytes(kek_id), data[MIN_SIZE:data_start], data[data_start:end])


def encrypt(
    key: memoryview | bytearray,
    plaintext: bytes | bytearray | memoryview,
    context: bytes | None = None,
    *,
    enveloped: bool = False,
) -> bytes:
    """A new AcraBlock of ``plaintext`` under the symmetric ``key`` (behind the crypto
    envelope with ``enveloped``), made with one copy of the data."""
    if len(plaintext) == 0:
        raise ConfigError("the value is empty: Acra's containers cannot hold an empty value")
    ctx = context or b""
    with SecretBytes.random(DATA_KEY_SIZE) as data_key:
        sealed_data = scell.seal_parts(data_key.buffer, plaintext, ctx)
        sealed_key = scell.encrypt(key, data_key.buffer, ctx)
    size = MIN_SIZE + len(sealed_key) + scell.HEADER_SIZE + len(plaintext)
    head = _HEAD.pack(
        TAG, size - len(TAG), SECURE_CELL, key_id(key, ctx), SECURE_CELL, len(sealed_key)
    )
    prefix = envelope.header(envelope.ACRABLOCK, size) if enveloped else b""
    return b"".join((prefix, head, sealed_key, *sealed_data))
