"""Themis Secure Cell, Seal mode with a symmetric key: the at-rest format of intermediate keys.

Byte-compatible with Themis >= 0.10 (``themis_secure_cell_encrypt_seal`` in
``src/themis/secure_cell.c`` and ``src/themis/sym_enc_message.c`` of
github.com/cossacklabs/themis), so Acra keystore v1 files can be read and written.

A blob is (all integers unsigned 32-bit little-endian)::

    alg = 0x40010100 | iv_len = 12 | tag_len = 16 | msg_len | iv (12) | tag (16) | ciphertext

``alg`` is AES-GCM (0x40010000) | 256-bit key (0x100) | Soter KDF (0). The message
key is Soter KDF (ZRTP-style, RFC 6189 without the output length)::

    HMAC-SHA256(master_key, 00 00 00 01 || "Themis secure cell message key" || 00
                            || u32le(msg_len) || context)

and AES-256-GCM uses it with the iv and the context as associated data. The
Themis 0.9.6 KDF (64-bit length) is not supported: such blobs fail to authenticate.
"""

from __future__ import annotations

import hashlib
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import ConfigError, IntegrityError
from ..secret import SecretBytes, burn

__all__ = [
    "ALGORITHM",
    "DATA_KEY_SIZE",
    "HEADER_SIZE",
    "IV_SIZE",
    "TAG_SIZE",
    "SizedCell",
    "decrypt",
    "decrypt_data",
    "encrypt",
    "message_key",
    "open_key_then_data",
    "scrub",
    "seal_into",
    "seal_key_then_data",
    "seal_parts",
]

ALGORITHM = 0x40010100
"""Soter algorithm id of Themis Seal with a key: AES-GCM, 256-bit key, Soter KDF."""
IV_SIZE = 12
TAG_SIZE = 16
HEADER_SIZE = 4 * 4 + IV_SIZE + TAG_SIZE
"""Bytes before the ciphertext: four u32 fields, the iv and the tag."""

try:  # what hmac.digest calls, without its dispatch on the digest's name (0.15 µs a call)
    from _hashlib import hmac_digest as _hmac
except ImportError:  # a Python without OpenSSL's HMAC: the module's own
    from hmac import digest as _hmac  # type: ignore[assignment]

DATA_KEY_SIZE = 32
"""The size of the keys containers seal in a cell of their own (:func:`open_key_then_data`)."""
_MAX_MESSAGE = 0xFFFFFFFF
_FIELDS = struct.Struct("<4I")
_KEY_CELL_FIELDS = _FIELDS.pack(ALGORITHM, IV_SIZE, TAG_SIZE, DATA_KEY_SIZE)
_KEY_THEN_DATA = struct.Struct(f"<4I{IV_SIZE + TAG_SIZE + DATA_KEY_SIZE}x4I")
"""The fields of a cell holding a data key, and of the cell right after it."""
_U32 = struct.Struct("<I")
_KDF_PREFIX = b"\x00\x00\x00\x01Themis secure cell message key\x00"
_FIXED_FIELDS = struct.pack("<3I", ALGORITHM, IV_SIZE, TAG_SIZE)
_TAG_START = 4 * 4 + IV_SIZE
_FAILED = (
    "cannot decrypt the Secure Cell: wrong master key, tampered data, "
    "or a blob moved to another key's name"
)

Bytes = bytes | bytearray | memoryview


def encrypt(key: Bytes, plaintext: Bytes, context: Bytes = b"") -> bytes:
    """Seal ``plaintext`` under ``key``, bound to ``context``; a fresh random iv each call."""
    return b"".join(seal_parts(key, plaintext, context))


def seal_parts(
    key: Bytes, plaintext: Bytes, context: Bytes = b""
) -> tuple[bytes, memoryview, memoryview]:
    """The blob :func:`encrypt` makes, as (fields and iv, tag, ciphertext): a caller that
    builds a larger value (an AcraBlock) joins them once, with no copy in between."""
    secret = _key_bytes(key)
    aad = _context_bytes(context)
    data = plaintext
    if not isinstance(data, bytes | bytearray):
        data = _flat_view(data, ConfigError, "plaintext must be bytes-like")
    size = len(data)
    if size == 0:
        raise ConfigError("plaintext is empty: Secure Cell cannot seal an empty message")
    if size > _MAX_MESSAGE:
        raise ConfigError("plaintext is larger than 4 GiB, the Secure Cell limit")
    iv = os.urandom(IV_SIZE)
    message_key = _hmac(secret, b"".join((_KDF_PREFIX, _U32.pack(size), aad)), "sha256")
    try:
        sealed = memoryview(AESGCM(message_key).encrypt(iv, data, aad or None))
    except OverflowError as exc:
        raise ConfigError("plaintext or context is too large for AES-GCM (2 GiB)") from exc
    finally:
        burn(message_key)
    return (
        _FIELDS.pack(ALGORITHM, IV_SIZE, TAG_SIZE, size) + iv,
        sealed[-TAG_SIZE:],
        sealed[:-TAG_SIZE],
    )


def seal_into(key: Bytes, plaintext: Bytes, out: memoryview, context: Bytes = b"") -> None:
    """The blob :func:`encrypt` makes, written into ``out``: for large values, built in
    place with no copy of the ciphertext. ``out`` holds :data:`HEADER_SIZE` +
    ``len(plaintext)`` bytes, then :data:`TAG_SIZE` spare ones the caller drops (AES-GCM
    writes its tag after the ciphertext, Themis wants it before); without the spare
    bytes the ciphertext is moved once."""
    secret = _key_bytes(key)
    aad = _context_bytes(context)
    size = len(plaintext)
    end = HEADER_SIZE + size
    if not 0 < size <= _MAX_MESSAGE or len(out) not in (end, end + TAG_SIZE):
        raise ConfigError("seal_into takes 1 byte to 4 GiB and a buffer of the blob's size")
    spare = len(out) == end + TAG_SIZE
    iv = os.urandom(IV_SIZE)
    message_key = _hmac(secret, b"".join((_KDF_PREFIX, _U32.pack(size), aad)), "sha256")
    try:
        target = out[HEADER_SIZE:] if spare else out[_TAG_START:]
        AESGCM(message_key).encrypt_into(iv, plaintext, aad or None, target)
    except OverflowError as exc:
        raise ConfigError("plaintext or context is too large for AES-GCM (2 GiB)") from exc
    finally:
        burn(message_key)
    if spare:
        out[_TAG_START:HEADER_SIZE] = out[end:]
    else:
        tag = bytes(out[end - TAG_SIZE :])
        out[HEADER_SIZE:] = out[_TAG_START : end - TAG_SIZE]  # an overlapping move
        out[_TAG_START:HEADER_SIZE] = tag
    out[:_TAG_START] = _FIELDS.pack(ALGORITHM, IV_SIZE, TAG_SIZE, size) + iv


class SizedCell:
    """Seals of one plaintext size under one key and context, for many of them.

    Themis' KDF takes the key, the size and the context, not the iv: every Seal of
    ``size`` bytes under ``key`` and ``context`` has the same message key. It is derived
    once here (and burnt); the AES context made from it lives until :meth:`close` (or the
    end of a ``with`` block), which frees it (OpenSSL clears it). What an AcraBlock's
    data-key cells use, 32 bytes under the client's symmetric key.
    """

    __slots__ = ("_aead", "_head", "context", "size")

    def __init__(self, key: Bytes, size: int, context: Bytes = b"") -> None:
        self.context = bytes(_context_bytes(context))
        if not 0 < size <= _MAX_MESSAGE:
            raise ConfigError(f"a Secure Cell holds 1 byte to 4 GiB, not {size}")
        self.size = size
        self._head = _FIELDS.pack(ALGORITHM, IV_SIZE, TAG_SIZE, size)
        derived = _derive(_key_bytes(key), size, self.context)
        try:
            self._aead: AESGCM | None = AESGCM(derived)
        finally:
            burn(derived)

    @classmethod
    def keyed(cls, message_key: SecretBytes, size: int) -> SizedCell:
        """The cell of a message key derived earlier (:func:`message_key`), no context."""
        cell = cls.__new__(cls)
        cell.size, cell.context = size, b""
        cell._head = _FIELDS.pack(ALGORITHM, IV_SIZE, TAG_SIZE, size)
        cell._aead = AESGCM(message_key.buffer)
        return cell

    def seal(self, plaintext: Bytes) -> bytes:
        """The Seal of ``plaintext`` (exactly :attr:`size` bytes), as :func:`encrypt` makes it."""
        if len(plaintext) != self.size or self._aead is None:
            raise ConfigError(f"this cell seals {self.size} bytes, and only while open")
        iv = os.urandom(IV_SIZE)
        sealed = memoryview(self._aead.encrypt(iv, plaintext, self.context or None))
        return b"".join((self._head, iv, sealed[-TAG_SIZE:], sealed[:-TAG_SIZE]))

    def open(self, blob: Bytes) -> SecretBytes:
        """Open a Seal of :attr:`size` bytes into secret pages; ``IntegrityError`` if it fails."""
        plain = SecretBytes.zeroed(self.size)
        try:
            self.open_into(blob, plain.buffer)
        except BaseException:
            plain.wipe()
            raise
        return plain

    def open_into(self, blob: Bytes, out: memoryview) -> None:
        """Open a Seal of :attr:`size` bytes into ``out`` (:attr:`size` bytes in secret
        pages, reused for many); ``IntegrityError`` if it fails, ``out`` then undefined."""
        sealed = blob if type(blob) is bytes or _is_flat(blob) else _blob_view(blob)
        if len(sealed) != HEADER_SIZE + self.size or sealed[:16] != self._head:
            raise IntegrityError(_FAILED)
        aead = self._aead
        if aead is None:
            raise ConfigError("this cell is closed")
        data = b"".join((sealed[HEADER_SIZE:], sealed[_TAG_START:HEADER_SIZE]))
        try:
            aead.decrypt_into(sealed[16:_TAG_START], data, self.context or None, out)
        except (InvalidTag, ValueError):
            raise IntegrityError(_FAILED) from None

    def close(self) -> None:
        self._aead = None

    def __enter__(self) -> SizedCell:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def message_key(key: Bytes, size: int, context: Bytes = b"") -> SecretBytes:
    """The message key of every Seal of ``size`` bytes under ``key`` and ``context``, in
    secret pages: Themis' KDF takes no iv, so it can be derived once and kept with the
    key it comes from (a :class:`SizedCell` takes it as ``message_key``)."""
    derived = _derive(_key_bytes(key), size, _context_bytes(context))
    try:
        return SecretBytes(derived)
    finally:
        burn(derived)


def _derive(key: Bytes, size: int, context: Bytes) -> bytes:
    """Themis' KDF, as ``bytes`` the caller burns."""
    return _hmac(key, b"".join((_KDF_PREFIX, _U32.pack(size), context)), "sha256")


def decrypt(key: Bytes, blob: Bytes, context: Bytes = b"") -> SecretBytes:
    """Open a Seal ``blob`` into a new ``SecretBytes``; any failure is ``IntegrityError``.

    For key material: the plaintext goes straight into secret pages. The caller owns
    the result and must wipe it. A bad ``key`` or ``context`` argument (not
    bytes-like, empty key) is a ``ConfigError``: that is a caller bug, not bad data.
    """
    nonce, sealed, aad, message_key = _opening(key, blob, context)
    plain = SecretBytes.zeroed(len(sealed) - TAG_SIZE)
    try:
        AESGCM(message_key).decrypt_into(nonce, sealed, aad or None, plain.buffer)
    except (InvalidTag, ValueError, OverflowError):
        plain.wipe()
        raise IntegrityError(_FAILED) from None
    except BaseException:
        plain.wipe()
        raise
    finally:
        burn(message_key)
    return plain


def decrypt_data(key: Bytes, blob: Bytes, context: Bytes = b"") -> bytes:
    """Open a Seal ``blob`` whose plaintext is data, not a key: into ordinary ``bytes``."""
    nonce, sealed, aad, message_key = _opening(key, blob, context)
    try:
        return AESGCM(message_key).decrypt(nonce, sealed, aad or None)
    except (InvalidTag, ValueError, OverflowError):
        raise IntegrityError(_FAILED) from None
    finally:
        burn(message_key)


def seal_key_then_data(
    message_key: SecretBytes, key: memoryview, plaintext: Bytes, ivs: bytes
) -> tuple[bytes, ...]:
    """The two Seals :func:`open_key_then_data` opens, as parts to join: ``key``
    (:data:`DATA_KEY_SIZE` bytes in secret pages) sealed with ``message_key`` (derived
    for that size, no context), then ``plaintext`` sealed under ``key``; ``ivs`` is 24
    fresh random bytes, the first 12 for the key's cell. No context."""
    size = len(plaintext)
    if len(key) != DATA_KEY_SIZE or not 0 < size <= _MAX_MESSAGE or len(ivs) != 2 * IV_SIZE:
        raise ConfigError("seal_key_then_data takes a 32-byte key, 1 byte to 4 GiB, 24 iv bytes")
    key_iv, data_iv = ivs[:IV_SIZE], ivs[IV_SIZE:]
    sealed_key = AESGCM(message_key.buffer).encrypt(key_iv, key, None)
    data_message_key = _hmac(key, _KDF_PREFIX + _U32.pack(size), "sha256")
    try:
        sealed = AESGCM(data_message_key).encrypt(data_iv, plaintext, None)
    except OverflowError as exc:
        raise ConfigError("plaintext is too large for AES-GCM (2 GiB)") from exc
    finally:
        burn(data_message_key)
    return (
        _KEY_CELL_FIELDS,
        key_iv,
        sealed_key[DATA_KEY_SIZE:],
        sealed_key[:DATA_KEY_SIZE],
        _FIELDS.pack(ALGORITHM, IV_SIZE, TAG_SIZE, size),
        data_iv,
        sealed[size:],
        sealed[:size],
    )


def open_key_then_data(
    message_key: SecretBytes, value: Bytes, key_cell: int, data_cell: int, end: int, out: memoryview
) -> bytes:
    """Two Seals inside ``value`` (``bytes`` or a flat byte view), as containers nest them:
    the one at ``key_cell`` holds a key of ``len(out)`` (:data:`DATA_KEY_SIZE`) bytes and
    opens with ``message_key`` (:func:`message_key`, no context) into ``out``; that key
    opens the one from ``data_cell`` to ``end``, whose plaintext is returned. In one pass,
    nothing sliced out first. ``IntegrityError`` if either does not open; ``out`` is
    zeroed before returning either way."""
    size, data_size = len(out), end - data_cell - HEADER_SIZE
    if (
        size != DATA_KEY_SIZE
        or data_cell - key_cell != HEADER_SIZE + size
        or data_size <= 0
        or end > len(value)
        or _KEY_THEN_DATA.unpack_from(value, key_cell)
        != (ALGORITHM, IV_SIZE, TAG_SIZE, size, ALGORITHM, IV_SIZE, TAG_SIZE, data_size)
    ):
        raise IntegrityError(_FAILED)
    tag, data = key_cell + _TAG_START, key_cell + HEADER_SIZE
    sealed = b"".join((value[data:data_cell], value[tag:data]))
    try:
        AESGCM(message_key.buffer).decrypt_into(value[key_cell + 16 : tag], sealed, None, out)
        data_key = _hmac(out, _KDF_PREFIX + value[data_cell + 12 : data_cell + 16], "sha256")
    except (InvalidTag, ValueError):
        raise IntegrityError(_FAILED) from None
    finally:
        out[:] = bytes(size)
    tag, data = data_cell + _TAG_START, data_cell + HEADER_SIZE
    try:
        return AESGCM(data_key).decrypt(
            value[data_cell + 16 : tag], b"".join((value[data:end], value[tag:data])), None
        )
    except (InvalidTag, ValueError, OverflowError):
        raise IntegrityError(_FAILED) from None
    finally:
        burn(data_key)


def open_data_cell(key: memoryview, sealed: Bytes) -> bytes:
    """:func:`decrypt_data` for the hot path of a container, no context: ``key`` is a flat
    byte view (a data key in secret pages), ``sealed`` ``bytes`` or a flat byte view."""
    size = len(sealed) - HEADER_SIZE
    if size <= 0 or sealed[:12] != _FIXED_FIELDS or _U32.unpack_from(sealed, 12)[0] != size:
        raise IntegrityError(_FAILED)
    message_key = _hmac(key, _KDF_PREFIX + sealed[12:16], "sha256")
    try:
        return AESGCM(message_key).decrypt(
            sealed[16:_TAG_START],
            b"".join((sealed[HEADER_SIZE:], sealed[_TAG_START:HEADER_SIZE])),
            None,
        )
    except (InvalidTag, ValueError, OverflowError):
        raise IntegrityError(_FAILED) from None
    finally:
        burn(message_key)


def _opening(key: Bytes, blob: Bytes, context: Bytes) -> tuple[Bytes, bytes, Bytes, bytes]:
    """(nonce, ciphertext || tag, associated data, message key) of a checked blob."""
    secret = key if type(key) is bytes or _is_flat(key) else _key_bytes(key)
    if not secret:
        _key_bytes(secret)  # raises the error an empty key gets
    aad = context if type(context) is bytes else _context_bytes(context)
    sealed = blob if type(blob) is bytes or _is_flat(blob) else _blob_view(blob)
    size = len(sealed) - HEADER_SIZE
    if size <= 0 or sealed[:12] != _FIXED_FIELDS or _U32.unpack_from(sealed, 12)[0] != size:
        raise IntegrityError(_FAILED)
    message_key = _hmac(secret, b"".join((_KDF_PREFIX, sealed[12:16], aad)), "sha256")
    data = b"".join((sealed[HEADER_SIZE:], sealed[_TAG_START:HEADER_SIZE]))
    return sealed[16:_TAG_START], data, aad, message_key


def _is_flat(data: object) -> bool:
    """Whether ``data`` is a memoryview of plain bytes (what secret pages hand out)."""
    return type(data) is memoryview and data.format == "B" and data.ndim == 1 and data.c_contiguous


_ZERO_IV = bytes(IV_SIZE)
_ZERO_AAD = bytes(16)
_SCRUB_SIZE = 384
"""Bytes the scrub's AES-GCM handles: more than 256, so OpenSSL's AVX-512/VAES code takes
the path that fills zmm16-31 too (at 256 bytes or fewer it leaves the last round keys
of a larger operation in zmm30/31; measured with ptrace on an AVX-512 CPU)."""
_EMPTY_SHA256 = hashlib.sha256()
_scrubber: tuple[AESGCM, bytes, bytearray] | None = None


def scrub() -> None:
    """Overwrite the CPU registers a Secure Cell operation leaves key material in.

    AES round keys, the GHASH key, the SHA-256 state and the last blocks handled stay
    in vector registers after an operation and reach memory at the next register
    save (a signal frame, a context switch, a core dump's register notes). Running
    the same code once more on zeroes under an all-zero key replaces them: SHA-256
    (the digest of an empty message: one compression, which replaces the SHA-NI state
    of the last HMAC) and an AES-256-GCM decryption of :data:`_SCRUB_SIZE` bytes
    (round keys, GHASH powers, the AVX-512 registers). Neither half alone is enough.
    The engine calls it at the end of every operation that used a key; it costs
    about a microsecond.
    """
    global _scrubber
    scrubber = _scrubber
    if scrubber is None:
        aead = AESGCM(bytes(32))
        sealed = aead.encrypt(_ZERO_IV, bytes(_SCRUB_SIZE), _ZERO_AAD)
        scrubber = _scrubber = (aead, sealed, bytearray(_SCRUB_SIZE))
    _EMPTY_SHA256.digest()
    scrubber[0].decrypt_into(_ZERO_IV, scrubber[1], _ZERO_AAD, scrubber[2])


def _key_bytes(key: object) -> bytes | bytearray | memoryview:
    """``key`` as a flat byte buffer (no copy), refusing empty or non-bytes keys."""
    if not isinstance(key, bytes | bytearray):
        key = _flat_view(key, ConfigError, "the Secure Cell key must be bytes-like")
    if len(key) == 0:
        raise ConfigError("the Secure Cell key is empty (or was wiped): pass the master key bytes")
    return key


def _blob_view(blob: object) -> memoryview:
    """A flat byte view of any bytes-like ``blob``: no copy unless it is strided
    (ciphertext, not secret); anything else fails."""
    try:
        view = memoryview(blob)  # type: ignore[arg-type]
    except TypeError:
        raise IntegrityError(_FAILED) from None
    if view.format == "B" and view.ndim == 1 and view.c_contiguous:
        return view
    return memoryview(view.tobytes())


def _context_bytes(context: object) -> bytes | bytearray | memoryview:
    """``context`` as a flat byte buffer; text is refused so its encoding stays explicit."""
    if isinstance(context, bytes | bytearray):
        return context
    return _flat_view(context, ConfigError, "the Secure Cell context must be bytes, not text")


def _flat_view(data: object, error: type[Exception], message: str) -> memoryview:
    """A one-dimensional unsigned-byte view of ``data``, or ``error(message)``."""
    try:
        view = memoryview(data)  # type: ignore[arg-type]
        if view.format == "B" and view.ndim == 1 and view.c_contiguous:
            return view
        return view.cast("B")  # TypeError unless C-contiguous
    except (TypeError, ValueError):
        raise error(message) from None
