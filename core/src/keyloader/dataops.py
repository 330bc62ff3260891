"""Acra's data operations on a store's keys: the key never leaves keyloader (docs/data.md).

:class:`DataOperations` is mixed into :class:`~keyloader.keystore.KeyManager`. The key
id picks the container: ``client/<id>/symmetric`` makes and opens AcraBlocks,
``client/<id>/storage`` AcraStructs (the public half encrypts, no master key needed;
the private halves decrypt). Decrypting tries the current key, then the rotated ones
(newest first), each unsealed at most once per call; the bulk forms unseal once for
many values. Every key is wiped before the call returns. Anything that does not
decrypt is one :class:`~keyloader.errors.DecryptionError` naming the key id.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable
from contextlib import closing
from typing import TYPE_CHECKING

from .containers import acrablock, acrastruct, poison, searchable
from .containers.envelope import ACRABLOCK, ACRASTRUCT, NAMES, unwrap
from .containers.envelope import TAG as ENVELOPE_TAG
from .datakeys import OpenedKeys, data_keys, draw, give_back, opening_slot, take_scratch
from .errors import (
    ConfigError,
    DecryptionError,
    IntegrityError,
    KeyloaderError,
    KeyNotFoundError,
)
from .keyids import KeyId, KeyKind, key_id_of
from .secret import SecretBytes
from .themis import keys as themis_keys
from .themis import scell

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

    from .audit import AuditAction

__all__ = ["DataOperations", "Value"]

Value = bytes | bytearray | memoryview
_CONTAINER = {KeyKind.SYMMETRIC: ACRABLOCK, KeyKind.STORAGE: ACRASTRUCT}
_POISON = {ACRABLOCK: KeyKind.POISON_RECORD_SYMMETRIC, ACRASTRUCT: KeyKind.POISON_RECORD}
_POISON_KIND = {"acrablock": ACRABLOCK, "acrastruct": ACRASTRUCT}


class DataOperations:
    """``encrypt``/``decrypt`` (and their bulk forms), ``search_hash`` and poison records."""

    if TYPE_CHECKING:  # given by the engine of each keystore version (keyloader.engine)

        @property
        def location(self) -> str: ...
        def _decrypt(self, kid: KeyId, index: int) -> SecretBytes: ...
        def _peek(self, kid: KeyId) -> SecretBytes | None: ...
        def _rotated_count(self, kid: KeyId) -> int: ...
        def _has_current(self, kid: KeyId) -> bool: ...
        def read_public(self, key_id: KeyId | str) -> bytes: ...
        def audit(
            self,
            action: AuditAction,
            kid: KeyId | None = None,
            index: int | None = None,
            *,
            ok: bool = True,
            error: BaseException | None = None,
        ) -> None: ...

    # -- encrypting --------------------------------------------------------------------

    def encrypt(
        self,
        key_id: KeyId | str,
        data: Value,
        *,
        context: bytes | None = None,
        envelope: bool = True,
        searchable: bool = False,
    ) -> bytes:
        """Encrypt ``data`` for ``key_id``: an AcraBlock (``client/<id>/symmetric``) or an
        AcraStruct (``client/<id>/storage``), enveloped as Acra services write it unless
        ``envelope=False``; with ``searchable``, behind the client's 33-byte search hash.
        ``context`` is something Acra services do not send (docs/data.md)."""
        kid, container = _data_key_id(key_id)
        if container == ACRABLOCK and context is None and not searchable:
            item = _value(data)
            if 0 < len(item) < acrablock.LARGE:  # the common case, without the bulk form's
                return self._encrypt_block(kid, item, envelope)
        return self.encrypt_many(
            kid, [data], context=context, envelope=envelope, searchable=searchable
        )[0]

    def encrypt_many(
        self,
        key_id: KeyId | str,
        values: Iterable[Value],
        *,
        context: bytes | None = None,
        envelope: bool = True,
        searchable: bool = False,
    ) -> builtins.list[bytes]:
        """:meth:`encrypt` for many values, with one key unseal for all of them."""
        kid, container = _data_key_id(key_id)
        items = [_value(value) for value in values]
        ctx = _context(context)
        with self._audited("key_used", kid):
            if container == ACRASTRUCT:
                public = self._public_key(kid)
                out = _each(
                    items,
                    lambda item, data_key: acrastruct.encrypt(
                        public, item, ctx, enveloped=envelope, data_key=data_key
                    ),
                )
            else:
                with self._decrypt(kid, 1) as key, acrablock.Kek.of(key, ctx) as kek:
                    out = _each(
                        items,
                        lambda item, data_key: acrablock.encrypt(
                            kek, item, enveloped=envelope, data_key=data_key
                        ),
                    )
            if searchable:
                hashes = self._search_hashes(KeyId(KeyKind.SEARCHABLE, kid.client_id), items)
                out = [found + value for found, value in zip(hashes, out, strict=True)]
        return out

    def search_hash(self, client_id: str, data: Value) -> bytes:
        """The 33-byte searchable hash of ``data`` (``7F`` | HMAC-SHA256 under the client's
        ``client/<id>/searchable`` key), as AcraServer matches it."""
        kid = KeyId(KeyKind.SEARCHABLE, client_id)
        with self._audited("key_used", kid):
            return self._search_hashes(kid, [_value(data)])[0]

    # -- decrypting --------------------------------------------------------------------

    def decrypt(
        self,
        key_id: KeyId | str,
        data: Value,
        *,
        context: bytes | None = None,
        searchable: bool = False,
    ) -> bytes:
        """The plaintext of an enveloped or bare container made for ``key_id``; with
        ``searchable``, of a searchable value whose hash is checked too."""
        kid, container = _data_key_id(key_id)
        if container == ACRABLOCK and context is None and not searchable:
            opened = self._decrypt_block(kid, _value(data))  # the common case
            if opened is not None:
                return opened
        return self.decrypt_many(kid, [data], context=context, searchable=searchable)[0]

    def decrypt_many(
        self,
        key_id: KeyId | str,
        values: Iterable[Value],
        *,
        context: bytes | None = None,
        searchable: bool = False,
    ) -> builtins.list[bytes]:
        """:meth:`decrypt` for many values; each key is unsealed at most once for all."""
        kid, container = _data_key_id(key_id)
        items = [_value(value) for value in values]
        ctx = _context(context)
        with self._audited("key_used", kid), OpenedKeys(self, kid) as keys:
            hashes: list[memoryview] = []
            if searchable:
                hashes, items = _split_searchable(kid, items)
            out = [_open(kid, container, item, keys, ctx) for item in items]
            if searchable:
                self._check_hashes(kid, hashes, out)
        return out

    # -- poison records ----------------------------------------------------------------

    def make_poison_record(self, kind: str = "acrastruct", data_length: int | None = None) -> bytes:
        """A new poison record, enveloped, as ``acra-poisonrecordmaker`` makes it: random
        data (1 to 99 bytes, or ``data_length``) as an AcraStruct to the poison keypair
        (``kind="acrastruct"``) or an AcraBlock under the poison symmetric key."""
        container = _POISON_KIND.get(kind)
        if container is None:
            raise ConfigError(
                f"unknown poison record type {kind[:40]!r}: use acrastruct or acrablock"
            )
        kid = KeyId(_POISON[container])
        data = poison.payload(data_length)
        with self._audited("key_used", kid):
            self._require(kid)
            if container == ACRASTRUCT:
                return acrastruct.encrypt(self._public_key(kid), data, enveloped=True)
            with self._decrypt(kid, 1) as key, acrablock.Kek.of(key) as kek:
                return acrablock.encrypt(kek, data, enveloped=True)

    def is_poison_record(self, data: Value) -> bool:
        """Whether ``data`` (enveloped or bare) decrypts with a poison key, current or
        rotated, of its container's kind. A value that is no container is not one."""
        try:
            container, inner = _container_of(memoryview(_value(data)))
        except (IntegrityError, ConfigError):
            return False
        if container is None:
            return False
        kid = KeyId(_POISON[container])
        self._require(kid)
        with self._audited("key_used", kid), OpenedKeys(self, kid) as keys:
            try:
                _open_inner(container, inner, keys, None)
            except IntegrityError:
                return False
        return True

    # -- one AcraBlock, the common case -------------------------------------------------

    def _encrypt_block(self, kid: KeyId, item: Value, envelope: bool) -> bytes:
        """One AcraBlock under the current key: its KEK is kept with the cached key, the
        data key and both ivs come from one CSPRNG read (:func:`draw`)."""
        failure: BaseException | None = None
        owned: SecretBytes | None = None
        scratch = take_scratch()
        try:  # what _Audited does, inline: a context manager is a tenth of this call
            key, owned = self._current_key(kid)
            ivs = draw(scratch.buffer, 2 * scell.IV_SIZE)
            kept = acrablock.kept_kek(key)
            return acrablock.seal_kept(kept, item, scratch.buffer, ivs, enveloped=envelope)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            give_back(scratch)
            if owned is not None:
                owned.wipe()
            scell.scrub()
            self.audit("key_used", kid, 1, ok=failure is None, error=failure)

    def _decrypt_block(self, kid: KeyId, item: Value) -> bytes | None:
        """The plaintext of one AcraBlock that the current key opens, audited; None, with
        nothing audited, whenever the value or the keys are anything else: the general
        path then decides (rotated keys, the error to raise)."""
        try:
            key, owned = self._current_key(kid)
        except KeyloaderError:
            return None
        try:
            opened = acrablock.open_kept(acrablock.kept_kek(key), item, opening_slot())
        finally:
            if owned is not None:
                owned.wipe()
        if opened is not None:
            scell.scrub()
            self.audit("key_used", kid, 1)
        return opened

    # -- plumbing ----------------------------------------------------------------------

    def _current_key(self, kid: KeyId) -> tuple[SecretBytes, SecretBytes | None]:
        """The current key of ``kid`` and, when it is not the cached one borrowed (no
        cache, or not cached yet), the same key again: the caller's to wipe."""
        key = self._peek(kid)
        if key is not None:
            return key, None
        key = self._decrypt(kid, 1)
        return key, key

    def _audited(self, action: AuditAction, kid: KeyId) -> _Audited:
        return _Audited(self, action, kid)

    def _public_key(self, kid: KeyId) -> ec.EllipticCurvePublicKey:
        try:
            public = self.read_public(kid)
        except KeyNotFoundError:
            raise KeyNotFoundError(self._missing(kid)) from None
        return themis_keys.load_public(public, f"{kid} (public half)")

    def _require(self, kid: KeyId) -> None:
        if not self._has_current(kid):
            raise KeyNotFoundError(self._missing(kid))

    def _missing(self, kid: KeyId) -> str:
        if kid.kind in (KeyKind.POISON_RECORD, KeyKind.POISON_RECORD_SYMMETRIC):
            return (
                f"{kid} does not exist in {self.location}: make the poison keys with "
                "`keyloader keys generate --poison-record`"
            )
        return f"{kid} does not exist in {self.location}"

    def _search_hashes(self, kid: KeyId, items: list[Value]) -> builtins.list[bytes]:
        with self._decrypt(kid, 1) as key:
            return [searchable.search_hash(key.buffer, item) for item in items]

    def _check_hashes(
        self, kid: KeyId, hashes: builtins.list[memoryview], plain: builtins.list[bytes]
    ) -> None:
        hmac_kid = KeyId(KeyKind.SEARCHABLE, kid.client_id)
        with OpenedKeys(self, hmac_kid) as keys:
            for found, data in zip(hashes, plain, strict=True):
                if not any(searchable.matches(found, key.buffer, data) for key in keys):
                    raise DecryptionError(
                        f"the searchable hash does not match the value decrypted with {kid} "
                        f"(checked with {hmac_kid})"
                    )


class _Audited:
    """Ends one data operation: scrubs the registers and audits it (``key_used``), failed
    or not."""

    __slots__ = ("_action", "_kid", "_ops")

    def __init__(self, ops: DataOperations, action: AuditAction, kid: KeyId) -> None:
        self._ops, self._action, self._kid = ops, action, kid

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        scell.scrub()
        self._ops.audit(self._action, self._kid, 1, ok=exc is None, error=exc)


def _open(kid: KeyId, container: int, item: Value, keys: OpenedKeys, ctx: bytes | None) -> bytes:
    try:
        found, inner = _container_of(memoryview(item))
        if found is not None and found != container:
            raise DecryptionError(
                f"the value is an {NAMES[found]}, but {kid} makes {NAMES[container]}s"
            )
        return _open_inner(container, inner, keys, ctx)
    except DecryptionError:
        raise
    except IntegrityError:
        raise DecryptionError(
            f"the value is not an {NAMES[container]} that a key of {kid} decrypts "
            "(malformed, truncated, tampered, or made with another key or context)"
        ) from None


def _open_inner(container: int, inner: memoryview, keys: OpenedKeys, ctx: bytes | None) -> bytes:
    if container == ACRABLOCK:
        return keys.open_block(acrablock.parse(inner), ctx)
    parsed = acrastruct.parse(inner)
    for private in keys.private_keys():
        try:
            return parsed.decrypt(private, ctx)
        except IntegrityError:
            continue
    raise IntegrityError("the AcraStruct does not open with any of the keys")


def _each(
    items: builtins.list[Value], make: Callable[[Value, memoryview | None], bytes]
) -> builtins.list[bytes]:
    """``make(item, data_key)`` for each item, each with a fresh random data key: one
    value's in this thread's scratch slot, many values' drawn at once."""
    if len(items) == 1:
        scratch = take_scratch()
        try:
            draw(scratch.buffer)
            return [make(items[0], scratch.buffer)]
        finally:
            give_back(scratch)
    with closing(data_keys(len(items))) as drawn:
        return [make(item, key) for item, key in zip(items, drawn, strict=False)]


def _container_of(data: memoryview) -> tuple[int | None, memoryview]:
    """The container kind of an enveloped or bare value (None: neither) and its bytes."""
    head = data[:8].tobytes()
    if head.startswith(ENVELOPE_TAG):
        return unwrap(data)
    if head == acrastruct.TAG:
        return ACRASTRUCT, data
    if head.startswith(acrablock.TAG):
        return ACRABLOCK, data
    return None, data


def _split_searchable(
    kid: KeyId, items: builtins.list[Value]
) -> tuple[builtins.list[memoryview], builtins.list[Value]]:
    hashes: list[memoryview] = []
    rest: list[Value] = []
    for item in items:
        try:
            found, container = searchable.split(memoryview(item))
        except IntegrityError:
            raise DecryptionError(
                f"the value is not a searchable value of {kid}: it does not start with the "
                "33-byte 7F hash"
            ) from None
        hashes.append(found)
        rest.append(container)
    return hashes, rest


def _data_key_id(key_id: KeyId | str) -> tuple[KeyId, int]:
    kid = key_id_of(key_id)
    container = _CONTAINER.get(kid.kind)
    if container is None:
        raise ConfigError(
            f"{kid} does not encrypt data: use client/<client-id>/symmetric (AcraBlock) or "
            "client/<client-id>/storage (AcraStruct)"
        )
    return kid, container


def _value(value: object) -> Value:
    """``value`` as bytes or a flat byte view; a view of another shape is cast to bytes if it
    is contiguous (its length then counts bytes, not items or rows), else refused."""
    if type(value) is bytes or type(value) is bytearray:
        return value
    if isinstance(value, memoryview):
        if value.format == "B" and value.ndim == 1 and value.c_contiguous:
            return value
        if value.c_contiguous:
            return value.cast("B")
        raise ConfigError("a memoryview value must be contiguous: pass bytes(view)")
    if isinstance(value, bytes | bytearray):
        return value
    raise ConfigError(f"values must be bytes-like, not {type(value).__name__}")


def _context(context: object) -> bytes | None:
    if context is None or isinstance(context, bytes):
        return context or None
    raise ConfigError("the context must be bytes (Acra services send none), not text")
