"""Master keys: parsing, validation, generation and the fingerprint (docs/format.md, Master key).

A keystore v1 master key is one key of at least 32 bytes, used whole. A keystore
v2 master key is a pair: its text form is base64 of the JSON object
``{"encryption": b64, "signature": b64}`` (Acra's ``SerializedKeys``).

Text forms are decoded by hand into ``bytearray`` buffers that are wiped after
use: ``base64``/``binascii`` would leave immutable copies of the key behind
(``json`` still does, for the strings of a v2 pair: Python cannot wipe a ``str``).
Errors are raised outside ``except`` blocks (or ``from None``) so no exception
chain carries key material; messages give positions and lengths, never values.
"""

from __future__ import annotations

import hmac
from types import TracebackType
from typing import Any, Literal, NoReturn

from .errors import (
    ConfigError,
    InvalidMasterKeyError,
    MasterKeyError,
    MasterKeyNotFoundError,
)
from .masterkey_file import write_master_key_file
from .secret import SecretBytes
from .secret_base64 import (
    LINE_BREAKS,
    PAD,
    SEXTETS,
    bad_character_message,
    decode_base64,
    encode_base64,
    encode_base64_raw,
    wipe,
)

__all__ = [
    "MIN_KEY_LENGTH",
    "MasterKey",
    "encode_base64",
    "fingerprint",
    "generate_master_key",
    "master_key_from_bytes",
    "master_key_from_file_content",
    "master_key_from_raw",
    "parse_master_key",
    "write_master_key_file",
]

MIN_KEY_LENGTH = 32
"""The shortest master key accepted, in bytes (Acra's ``SymmetricKeyLength``)."""

KEYSTORE_VERSIONS = ("auto", "v1", "v2")

_FINGERPRINT_MESSAGE = b"keyloader fingerprint"
_FIX = "generate one with `keyloader master-key generate`"
_FIX_V2 = "generate a pair with `keyloader master-key generate --keystore-version v2`"
_FIX_FILE = "write one with `keyloader master-key generate --output FILE`"
_V2_FIELDS = ("encryption", "signature")

_WHITESPACE = b" \t\r\n\x0b\x0c"
_WHITESPACE_TEXT = _WHITESPACE.decode()
_Text = str | bytes | bytearray | memoryview | SecretBytes


def fingerprint(key: bytes | bytearray | memoryview) -> str:
    """The key's fingerprint, safe to print and log: 16 hex digits of an HMAC-SHA256."""
    return hmac.digest(key, _FINGERPRINT_MESSAGE, "sha256").hex()[:16]


class MasterKey:
    """A loaded master key: a v1 key, or a v2 encryption/signature pair.

    It takes ownership of the given buffers and wipes them on :meth:`close` (or
    at the end of a ``with`` block). Its ``repr`` shows only the version, the
    length and the fingerprint; it refuses pickling and hashing, and ``==``
    compares in constant time. Using the key material after ``close`` raises
    :class:`~keyloader.errors.MasterKeyError`.
    """

    __slots__ = ("__weakref__", "_closed", "_encryption", "_fingerprint", "_signature")

    def __init__(self, encryption: SecretBytes, signature: SecretBytes | None = None) -> None:
        if not isinstance(encryption, SecretBytes) or not (
            signature is None or isinstance(signature, SecretBytes)
        ):
            raise TypeError("MasterKey takes SecretBytes buffers")
        what = "the v2 encryption key" if signature is not None else "the master key"
        _check_length(encryption, what, "", _FIX_V2 if signature is not None else _FIX)
        if signature is not None:
            if hmac.compare_digest(encryption.buffer, signature.buffer):
                raise InvalidMasterKeyError(_equal_keys_message("the v2 master key"))
            _check_length(signature, "the v2 signature key", "", _FIX_V2)
        self._encryption = encryption.inherit_on_fork()  # a preloaded worker keeps it
        self._signature = signature.inherit_on_fork() if signature is not None else None
        self._fingerprint = fingerprint(encryption.buffer)
        self._closed = False

    @property
    def version(self) -> Literal["v1", "v2"]:
        """``"v2"`` for an encryption/signature pair, else ``"v1"``."""
        return "v1" if self._signature is None else "v2"

    @property
    def encryption(self) -> SecretBytes:
        """The key the keystore v1 engine seals with (for v1, the whole key)."""
        self._check_open()
        return self._encryption

    @property
    def signature(self) -> SecretBytes | None:
        """The v2 signature key, or ``None`` for a v1 key."""
        self._check_open()
        return self._signature

    @property
    def fingerprint(self) -> str:
        """16 hex digits identifying the (encryption) key; not secret, kept after close."""
        return self._fingerprint

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._closed

    def to_text(self) -> SecretBytes:
        """The base64 text form, without a newline (v2: base64 of the JSON pair)."""
        with self.to_bytes() as decoded:
            return SecretBytes.adopt(encode_base64_raw(decoded.buffer))

    def to_bytes(self) -> SecretBytes:
        """What the text form is base64 of: the raw key (v1) or the JSON pair (v2).

        This is the plaintext Acra encrypts with a KMS (``kms_encrypted_master_key``);
        :func:`master_key_from_bytes` reads it back.
        """
        self._check_open()
        if self._signature is None:
            return SecretBytes(self._encryption.buffer)
        encryption = encode_base64_raw(self._encryption.buffer)
        signature = encode_base64_raw(self._signature.buffer)
        document = bytearray(b'{"encryption":"')
        try:
            document += encryption
            document += b'","signature":"'
            document += signature
            document += b'"}'
            return SecretBytes(document)
        finally:
            for buffer in (encryption, signature, document):
                wipe(buffer)

    def close(self) -> None:
        """Wipe the key material. Idempotent."""
        self._encryption.wipe()
        if self._signature is not None:
            self._signature.wipe()
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise MasterKeyError(
                f"master key {self._fingerprint} was closed and wiped: load it again"
            )

    def __enter__(self) -> MasterKey:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MasterKey):
            return NotImplemented
        if self._closed or other._closed:
            return self is other
        same_encryption = hmac.compare_digest(self._encryption.buffer, other._encryption.buffer)
        mine = self._signature.buffer if self._signature is not None else b""
        theirs = other._signature.buffer if other._signature is not None else b""
        same_signature = hmac.compare_digest(mine, theirs)
        return same_encryption & same_signature & (self.version == other.version)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._encryption)} bytes"
        return f"MasterKey({self.version}, {state}, fingerprint {self._fingerprint})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("MasterKey cannot be pickled: key material stays in this process")

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("MasterKey cannot be pickled: key material stays in this process")


# -- parsing ------------------------------------------------------------------------------


def parse_master_key(
    text: _Text,
    *,
    keystore_version: str = "auto",
    source: str = "the master key",
) -> MasterKey:
    """Parse the base64 text form of a master key (v1 or v2).

    ``source`` names where the text came from ("environment variable
    ACRA_MASTER_KEY"); every error message starts with it. CR and LF are ignored.
    ``keystore_version``: ``auto`` makes a JSON object with both fields a v2 pair
    and anything else a v1 key; ``v1`` always yields a v1 key; ``v2`` demands a pair.
    ``text`` may also be a ``memoryview`` or ``SecretBytes`` (from :meth:`MasterKey.to_text`).
    Raises :class:`MasterKeyNotFoundError` for blank text, :class:`InvalidMasterKeyError`
    for malformed text, :class:`ConfigError` for an unknown ``keystore_version``.
    """
    version = _check_keystore_version(keystore_version)
    data = _text_buffer(text, source)
    try:
        decoded = decode_base64(data, source, _FIX_V2 if version == "v2" else _FIX)
    finally:
        wipe(data)
    try:
        return _from_decoded(decoded, version, source)
    finally:
        wipe(decoded)


def master_key_from_bytes(
    decoded: bytes | bytearray | memoryview, *, keystore_version: str = "auto", source: str
) -> MasterKey:
    """A master key from what its text form is base64 of (:meth:`MasterKey.to_bytes`).

    That is the raw v1 key or the JSON of a v2 pair: what Acra's
    ``kms_encrypted_master_key`` strategy gets back from KMS ``Decrypt``. The
    rules are :func:`parse_master_key`'s, after its base64 step. The bytes are
    copied; the caller wipes ``decoded`` if it is a ``bytearray``.
    """
    version = _check_keystore_version(keystore_version)
    if not decoded:
        raise MasterKeyNotFoundError(f"{source} is empty: {_FIX}")
    buffer = bytearray(decoded)
    try:
        return _from_decoded(buffer, version, source, verb="is")
    finally:
        wipe(buffer)


def _from_decoded(
    decoded: bytearray, version: str, source: str, *, verb: str = "decodes to"
) -> MasterKey:
    if version != "v1":
        pairs = _json_object(decoded)
        if version == "v2" or (pairs is not None and _has_both_fields(pairs)):
            return _v2_key(pairs, source)
    return _v1_key(decoded, source, verb)


def master_key_from_raw(raw: bytes | bytearray | memoryview, *, source: str) -> MasterKey:
    """A v1 master key from its raw bytes (a key file); only the length is checked.

    The bytes are copied; the caller wipes ``raw`` if it is a ``bytearray``.
    """
    if not raw:
        raise MasterKeyNotFoundError(f"{source} is empty: {_FIX_FILE}")
    key = SecretBytes(raw)
    try:
        _check_length(key, source, "holds", _FIX_FILE)
    except BaseException:
        key.wipe()
        raise
    return MasterKey(key)


def master_key_from_file_content(
    data: bytes | bytearray | memoryview, *, keystore_version: str = "auto", source: str
) -> MasterKey:
    """A master key from the content of a key file, as ``write_master_key_file`` writes it.

    A file holds raw v1 key bytes, or the text form of a v2 pair. Content that is
    a v2 text form is parsed like the text in a variable (``keystore_version``
    applies); anything else is raw v1 bytes, which ``keystore_version="v2"`` refuses.
    """
    version = _check_keystore_version(keystore_version)
    if _is_v2_text(data):
        return parse_master_key(data, keystore_version=version, source=source)
    if version == "v2":
        raise InvalidMasterKeyError(
            f"{source} holds raw key bytes, not a keystore v2 master key (keystore_version "
            f"is v2): write a pair with `keyloader master-key generate --keystore-version v2 "
            f"--output FILE`"
        )
    return master_key_from_raw(data, source=source)


def _check_keystore_version(value: str) -> str:
    if value not in KEYSTORE_VERSIONS:
        raise ConfigError(
            f"keystore_version must be one of {', '.join(KEYSTORE_VERSIONS)}, not {value!r}"
        )
    return value


def _text_buffer(text: _Text, source: str) -> bytearray:
    """The text as ASCII bytes; blank text is not found, non-ASCII is refused by position."""
    if isinstance(text, str) and text.isascii():  # the usual case, checked at C speed
        buffer = bytearray(text, "ascii")
        if not buffer or buffer.isspace():  # bytes.isspace(): exactly _WHITESPACE
            raise MasterKeyNotFoundError(_empty_message(source))
        return buffer
    if isinstance(text, str):
        if all(char in _WHITESPACE_TEXT for char in text):
            raise MasterKeyNotFoundError(_empty_message(source))
        position = next((i for i, char in enumerate(text) if not char.isascii()), None)
        if position is not None:
            raise InvalidMasterKeyError(bad_character_message(source, position + 1, _FIX))
        return bytearray(text, "ascii")
    if isinstance(text, SecretBytes):
        text = text.view
    if not isinstance(text, bytes | bytearray | memoryview):
        raise TypeError("the master key text must be str, bytes, bytearray or SecretBytes")
    buffer = bytearray(text)
    if not buffer or buffer.isspace():
        raise MasterKeyNotFoundError(_empty_message(source))
    return buffer


def _empty_message(source: str) -> str:
    return f"{source} is empty: set it to a base64 master key; {_FIX}"


class _Pairs(list[tuple[str, Any]]):
    """The key/value pairs of one decoded JSON object, duplicates kept."""


def _json_object(decoded: bytearray) -> _Pairs | None:
    """The top-level pairs if ``decoded`` is a JSON object, else ``None``."""
    first = next((char for char in decoded if char not in _WHITESPACE), None)
    if first != ord("{"):
        return None
    import json  # here: only a text that looks like a v2 pair needs it

    try:
        document = json.loads(decoded, object_pairs_hook=_Pairs)
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError
        document = None
    return document if isinstance(document, _Pairs) else None


def _has_both_fields(pairs: _Pairs) -> bool:
    names = {name.casefold() for name, _ in pairs}
    return all(field in names for field in _V2_FIELDS)


def _v2_key(pairs: _Pairs | None, source: str) -> MasterKey:
    """Validate a v2 pair in Acra's order: JSON, fields, base64, equal keys, lengths."""
    if pairs is None:
        raise InvalidMasterKeyError(
            f"{source} is not a keystore v2 master key: it does not decode to a JSON object "
            f'{{"encryption": ..., "signature": ...}} (keystore_version is v2); {_FIX_V2}'
        )
    texts: dict[str, str] = {}
    for field in _V2_FIELDS:
        values = [value for name, value in pairs if name.casefold() == field]
        where = f"field {field!r} of the keystore v2 master key in {source}"
        if not values:
            raise InvalidMasterKeyError(
                f"{source} is not a valid keystore v2 master key: its JSON object has no "
                f"{field!r} field; {_FIX_V2}"
            )
        if len(values) > 1:
            raise InvalidMasterKeyError(f"{where} appears {len(values)} times; {_FIX_V2}")
        if not isinstance(values[0], str):
            raise InvalidMasterKeyError(f"{where} is not a base64 string; {_FIX_V2}")
        texts[field] = values[0]
    keys: list[bytearray] = []
    try:
        for field in _V2_FIELDS:
            subject = f"field {field!r} of the keystore v2 master key in {source}"
            text = texts[field]
            position = next((i for i, char in enumerate(text) if not char.isascii()), None)
            if position is not None:
                raise InvalidMasterKeyError(bad_character_message(subject, position + 1, _FIX_V2))
            raw = bytearray(text, "ascii")
            try:
                keys.append(decode_base64(raw, subject, _FIX_V2))
            finally:
                wipe(raw)
        encryption, signature = keys
        if hmac.compare_digest(encryption, signature):
            raise InvalidMasterKeyError(_equal_keys_message(source))
        for field, key in zip(_V2_FIELDS, keys, strict=True):
            if len(key) < MIN_KEY_LENGTH:
                raise InvalidMasterKeyError(
                    f"{source}: the keystore v2 {field} key is {len(key)} bytes; at least "
                    f"{MIN_KEY_LENGTH} are needed; {_FIX_V2}"
                )
        return MasterKey(SecretBytes(encryption), SecretBytes(signature))
    finally:
        for key in keys:
            wipe(key)


def _v1_key(decoded: bytearray, source: str, verb: str = "decodes to") -> MasterKey:
    key = SecretBytes(decoded)
    try:
        _check_length(key, source, verb, _FIX)
    except BaseException:
        key.wipe()
        raise
    return MasterKey(key)


def _check_length(key: SecretBytes, subject: str, verb: str, fix: str) -> None:
    if len(key) < MIN_KEY_LENGTH:
        verb = verb or "is"
        raise InvalidMasterKeyError(
            f"{subject} {verb} {len(key)} bytes; a master key needs at least "
            f"{MIN_KEY_LENGTH}: {fix}"
        )


def _equal_keys_message(source: str) -> str:
    return (
        f"{source}: the keystore v2 encryption and signature keys are equal; they must be "
        f"two independent keys: {_FIX_V2}"
    )


def _is_v2_text(data: bytes | bytearray | memoryview) -> bool:
    """True if ``data`` is base64 (CR/LF aside) of a JSON object with both v2 fields."""
    if any(SEXTETS[char] < 0 and char != PAD and char not in LINE_BREAKS for char in data):
        return False
    decoded = bytearray()
    try:
        decoded = decode_base64(data, "", "")
    except InvalidMasterKeyError:
        return False
    try:
        pairs = _json_object(decoded)
        return pairs is not None and _has_both_fields(pairs)
    finally:
        wipe(decoded)


# -- generation and key files -------------------------------------------------------------


def generate_master_key(version: Literal["v1", "v2"] = "v1") -> MasterKey:
    """A new random master key: 32 bytes (v2: two independent 32-byte keys)."""
    if version not in ("v1", "v2"):
        raise ConfigError(f"keystore version must be v1 or v2, not {version!r}")

    encryption = SecretBytes.random(MIN_KEY_LENGTH)
    if version == "v1":
        return MasterKey(encryption)
    return MasterKey(encryption, SecretBytes.random(MIN_KEY_LENGTH))
