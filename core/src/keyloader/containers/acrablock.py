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
from typing import NamedTuple

from .. import freshbytes
from ..errors import ConfigError, IntegrityError
from ..secret import SecretBytes
from ..themis import scell
from . import envelope

__all__ = [
    "MIN_SIZE",
    "TAG",
    "AcraBlock",
    "Kek",
    "encrypt",
    "kept_kek",
    "key_id",
    "open_kept",
    "parse",
    "seal_kept",
]

TAG = b'"' * 4
SECURE_CELL = 0
DATA_KEY_SIZE = 32
MIN_SIZE = 18
"""Tag, rest length, both backend bytes, KEK id and the data-key length."""
_HEAD = struct.Struct("<4sQB2sBH")
_ENVELOPE = struct.Struct("<3sQB")
_SEALED_KEY_SIZE = 76
"""A 32-byte data key sealed in a Secure Cell."""


class Kek:
    """A symmetric key as AcraBlocks use it under one context: its KEK id, and the Secure
    Cell that seals 32-byte data keys under it (its message key derived once, as Themis'
    KDF takes no iv). Made once for many blocks; :meth:`close` lets go of its AES context."""

    __slots__ = ("_cell", "context", "key_id", "open_into")

    def __init__(self, key: memoryview | bytearray | bytes, context: bytes | None = None) -> None:
        self._set(key_id(key, context or b""), scell.SizedCell(key, DATA_KEY_SIZE, context or b""))

    def _set(self, kek_id: bytes, cell: scell.SizedCell) -> None:
        self.context = cell.context
        self.key_id = kek_id
        self._cell = cell
        self.open_into = cell.open_into
        """Open a sealed data key into 32 bytes of secret pages (``IntegrityError`` if not)."""

    @classmethod
    def of(cls, key: SecretBytes, context: bytes | None = None) -> Kek:
        """The KEK of ``key``; without a context (what Acra services use) its KEK id and
        message key are derived once and kept with ``key`` (a cached key: for as long as
        the cache holds it, in secret pages), so a block costs no key derivation."""
        if context:
            return cls(key.buffer, context)
        kek_id, message_key = kept_kek(key)
        kek = cls.__new__(cls)
        kek._set(kek_id, scell.SizedCell.keyed(message_key, DATA_KEY_SIZE))
        return kek

    def seal(self, data_key: memoryview | bytearray) -> bytes:
        return self._cell.seal(data_key)

    def open(self, sealed_key: memoryview) -> SecretBytes:
        return self._cell.open(sealed_key)

    def close(self) -> None:
        self._cell.close()

    def __enter__(self) -> Kek:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AcraBlock(NamedTuple):
    """The parts of a parsed AcraBlock (views into the value, nothing copied)."""

    key_id: bytes
    sealed_key: memoryview
    sealed_data: memoryview

    def decrypt(self, keks: Iterable[Kek], scratch: memoryview | None = None) -> bytes:
        """The plaintext, opened with the first of ``keks`` whose KEK id matches and that
        opens the data key; :class:`IntegrityError` if none. The data key goes into
        ``scratch`` (32 bytes in secret pages, zeroed on return) or a slot of its own."""
        if scratch is None:
            with SecretBytes.zeroed(DATA_KEY_SIZE) as own:
                return self.decrypt(keks, own.buffer)
        try:
            for kek in keks:
                if kek.key_id != self.key_id:
                    continue
                try:
                    kek.open_into(self.sealed_key, scratch)
                except IntegrityError:
                    continue
                return scell.decrypt_data(scratch, self.sealed_data, kek.context)
        finally:
            scratch[:] = ZERO_KEY
        raise IntegrityError("the AcraBlock does not open with any of the keys")


ZERO_KEY = bytes(DATA_KEY_SIZE)
LARGE = 1 << 14
"""From this many bytes of data on, a block is written in place (:mod:`keyloader.freshbytes`)."""


def kept_kek(key: SecretBytes) -> tuple[bytes, SecretBytes]:
    """The KEK id and message key of ``key`` under no context, derived once and kept
    with ``key`` (in secret pages, wiped with it)."""
    return key._derived("acrablock kek", _derive_kek)


def seal_kept(
    kept: tuple[bytes, SecretBytes],
    plaintext: bytes | bytearray | memoryview,
    data_key: memoryview,
    ivs: bytes,
    *,
    enveloped: bool,
) -> bytes:
    """One AcraBlock of ``plaintext`` (1 byte to :data:`LARGE`) under the KEK ``kept``
    (:func:`kept_kek`: no context), the common case: ``data_key`` is 32 fresh bytes in
    secret pages (the caller zeroes them), ``ivs`` 24 fresh bytes for the two cells."""
    kek_id, message_key = kept
    size = len(plaintext)
    if not 0 < size < LARGE:
        raise ConfigError("seal_kept takes 1 byte to 16 KiB of data")
    parts = scell.seal_key_then_data(message_key, data_key, plaintext, ivs)
    rest = _SEALED_KEY_SIZE + MIN_SIZE - len(TAG) + scell.HEADER_SIZE + size
    head = _HEAD.pack(TAG, rest, SECURE_CELL, kek_id, SECURE_CELL, _SEALED_KEY_SIZE)
    if enveloped:
        head = envelope.header(envelope.ACRABLOCK, len(TAG) + rest) + head
    return b"".join((head, *parts))


def open_kept(
    kept: tuple[bytes, SecretBytes], value: bytes | bytearray | memoryview, scratch: memoryview
) -> bytes | None:
    """The plaintext of an AcraBlock (enveloped or bare) that the KEK ``kept`` (:func:`kept_kek`:
    no context) opens, else None (another container, another key, damaged: the caller's
    general path decides). The common case, in one pass over the value: the checks of
    :func:`~.envelope.unwrap` and :func:`parse`, then the two cells; the data key goes
    through ``scratch`` (32 bytes in secret pages, zeroed after)."""
    if type(value) is memoryview and not (value.format == "B" and value.c_contiguous):
        return None  # the general path decides (the data operations pass flat views)
    start, end = 0, len(value)
    if value[:3] == envelope.TAG:
        if end <= envelope.HEADER_SIZE:
            return None
        _, length, found = _ENVELOPE.unpack_from(value)
        if found != envelope.ACRABLOCK or not envelope.HEADER_SIZE < length <= end:
            return None
        start, end = envelope.HEADER_SIZE, length
    if end - start < MIN_SIZE:
        return None
    tag, rest, kek_backend, kek_id, data_backend, key_size = _HEAD.unpack_from(value, start)
    key_cell = start + MIN_SIZE
    data_cell = key_cell + _SEALED_KEY_SIZE
    stop = start + len(TAG) + rest
    if (
        tag != TAG
        or kek_backend
        or data_backend
        or key_size != _SEALED_KEY_SIZE
        or kek_id != kept[0]
        or not data_cell + scell.HEADER_SIZE < stop <= end
    ):
        return None
    try:
        return scell.open_key_then_data(kept[1], value, key_cell, data_cell, stop, scratch)
    except IntegrityError:
        return None


def _derive_kek(key: SecretBytes) -> tuple[bytes, SecretBytes]:
    return key_id(key.buffer), scell.message_key(key.buffer, DATA_KEY_SIZE)


def key_id(key: memoryview | bytearray | bytes, context: bytes = b"") -> bytes:
    """The 2-byte KEK id of ``key`` under ``context``."""
    digest = hashlib.sha256(key)
    if context:
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
    return _new_block(AcraBlock, (kek_id, data[MIN_SIZE:data_start], data[data_start:end]))


_new_block = tuple.__new__  # AcraBlock(...) without NamedTuple's Python-level __new__


def encrypt(
    kek: Kek,
    plaintext: bytes | bytearray | memoryview,
    *,
    enveloped: bool = False,
    data_key: memoryview | None = None,
) -> bytes:
    """A new AcraBlock of ``plaintext`` under ``kek`` (behind the crypto envelope with
    ``enveloped``), made with one copy of the data. ``data_key``: 32 random bytes in
    secret pages to use (a batch draws them at once), else drawn here."""
    if len(plaintext) == 0:
        raise ConfigError("the value is empty: Acra's containers cannot hold an empty value")
    fresh = SecretBytes.random(DATA_KEY_SIZE) if data_key is None else None
    key = fresh.buffer if fresh is not None else data_key
    assert key is not None
    size = len(plaintext)
    total = MIN_SIZE + scell.HEADER_SIZE + DATA_KEY_SIZE + scell.HEADER_SIZE + size
    prefix = envelope.header(envelope.ACRABLOCK, total) if enveloped else b""
    try:
        sealed_key = kek.seal(key)
        head = _HEAD.pack(
            TAG, total - len(TAG), SECURE_CELL, kek.key_id, SECURE_CELL, len(sealed_key)
        )
        if size < LARGE or not freshbytes.AVAILABLE:
            sealed_data = scell.seal_parts(key, plaintext, kek.context)
            return b"".join((prefix, head, sealed_key, *sealed_data))
        start = len(prefix) + MIN_SIZE + len(sealed_key)
        end = start + scell.HEADER_SIZE + size
        value, view = freshbytes.fresh(end + scell.TAG_SIZE)  # room for AES-GCM's tag
        with view:
            view[:start] = b"".join((prefix, head, sealed_key))
            scell.seal_into(key, plaintext, view[start:], kek.context)
        freshbytes.trim(value, end)
        return value
    finally:
        if fresh is not None:
            fresh.wipe()
