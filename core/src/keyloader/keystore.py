"""The key-store engine: Acra keystore v1 on any ``KeyStore``, with an optional cache."""

from __future__ import annotations

import builtins
import logging
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import scell
from .audit import AuditAction, AuditEvent
from .errors import ConfigError, IntegrityError, KeyExistsError, KeyNotFoundError
from .keyids import KeyId, KeyKind, classify
from .masterkey import MasterKey
from .providers import MasterKeyProvider
from .secret import SecretBytes
from .stores.base import KeyStore

__all__ = ["GENERATABLE_KINDS", "KeyInfo", "KeyManager", "VerifyResult", "MasterKeySource"]

log = logging.getLogger("keyloader.keystore")

SYMMETRIC_KEY_LENGTH = 32
GENERATABLE_KINDS = (
    KeyKind.SYMMETRIC,
    KeyKind.SEARCHABLE,
    KeyKind.AUDIT_LOG,
    KeyKind.POISON_RECORD_SYMMETRIC,
)
UNKNOWN_FILE = "unknown file: not an Acra keystore v1 key name (left untouched)"
V2_UNSUPPORTED = (
    "keystore v2 is not supported yet: keyloader manages Acra keystore v1 directories, "
    "sealed with a v1 master key (one base64 key of at least 32 bytes; "
    "generate one with `keyloader master-key generate`)"
)

MasterKeySource = MasterKeyProvider | MasterKey | Callable[[], MasterKey]
"""Where the engine gets a master key: a provider, a loaded key, or a loader function."""

KeyState = Literal["current", "rotated", "public", "unknown"]


@dataclass(frozen=True)
class KeyInfo:
    """One row of a listing: a stored blob and what it is (never its content)."""

    key_id: str | None
    purpose: str
    client_id: str | None
    index: int | None
    state: KeyState
    created: float | None
    path: str
    decrypts: bool | None = None


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of decrypting one blob (``error`` names the failure, never data).

    ``ok`` is True when the blob decrypts, False when it does not, and None for
    an unknown file, which is reported but is not a key.
    """

    key_id: str | None
    index: int | None
    path: str
    ok: bool | None
    error: str | None = None
    error_type: str | None = None


class _MasterKeySlot:
    """A master key loaded on first use, from a provider, a key or a loader."""

    def __init__(self, source: MasterKeySource, provider_name: str | None) -> None:
        self._source = source
        self._key: MasterKey | None = None
        self.provider_name = provider_name or (
            source.name if isinstance(source, MasterKeyProvider) else None
        )

    @property
    def loaded(self) -> bool:
        return self._key is not None

    def get(self, on_load: Callable[[MasterKey], None]) -> MasterKey:
        if self._key is None:
            source = self._source
            if isinstance(source, MasterKey):
                key = source
            elif isinstance(source, MasterKeyProvider):
                key = source.load()
            else:
                key = source()
            if key.version != "v1":
                key.close()
                raise ConfigError(V2_UNSUPPORTED)
            self._key = key
            on_load(key)
        return self._key

    def close(self) -> None:
        if self._key is not None:
            self._key.close()
        if isinstance(self._source, MasterKeyProvider):
            self._source.close()


class _BlobCache:
    """LRU of decrypted keys re-sealed under a random per-process key; never plaintext.

    Entries are AES-256-GCM under a key made for this cache (so a hit costs one
    AES-GCM open, no KDF), bound to their slot by the associated data, and
    revalidated on every hit with the store's revision token (or ``ttl``).
    """

    def __init__(self, size: int, ttl: float) -> None:
        self.size = size
        self.ttl = ttl
        key = bytearray(secrets.token_bytes(32))
        self._aead: AESGCM | None = AESGCM(key)
        key[:] = bytes(32)
        # slot -> (revision, time stored, associated data, nonce || ciphertext)
        self._entries: OrderedDict[tuple[str, str | None], tuple[object, float, bytes, bytes]] = (
            OrderedDict()
        )

    def get(self, slot: tuple[str, str | None], revision: object) -> SecretBytes | None:
        entry = self._entries.get(slot)
        if entry is None or self._aead is None:
            return None
        cached_revision, stamp, aad, blob = entry
        if revision is None:
            if time.monotonic() - stamp > self.ttl:
                del self._entries[slot]
                return None
        elif revision != cached_revision:
            del self._entries[slot]
            return None
        self._entries.move_to_end(slot)
        plain = SecretBytes.zeroed(len(blob) - _NONCE - _TAG)
        self._aead.decrypt_into(blob[:_NONCE], blob[_NONCE:], aad, plain.buffer)
        return plain

    def put(self, slot: tuple[str, str | None], revision: object, plain: SecretBytes) -> None:
        if self._aead is None:
            return
        aad = f"{slot[0]}\0{slot[1] or ''}".encode()
        nonce = os.urandom(_NONCE)
        blob = nonce + self._aead.encrypt(nonce, plain.buffer, aad)
        self._entries[slot] = (revision, time.monotonic(), aad, blob)
        self._entries.move_to_end(slot)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def drop(self, name: str | None = None) -> None:
        if name is None:
            self._entries.clear()
        else:
            for slot in [s for s in self._entries if s[0] == name]:
                del self._entries[slot]

    def close(self) -> None:
        self._entries.clear()
        self._aead = None


_NONCE = 12
_TAG = 16


class KeyManager:
    """Intermediate keys of one store, sealed with one master key (Acra keystore v1).

    The master key is loaded on first use (listing does not need it). Decrypted
    keys are :class:`SecretBytes`; :meth:`use` wipes them when its block ends.
    With ``previous``, blobs that fail under the current master key are tried
    under the previous one (a store half-way through a rewrap keeps working).
    """

    def __init__(
        self,
        store: KeyStore,
        master_key: MasterKeySource,
        *,
        previous: MasterKeySource | None = None,
        cache_size: int = 0,
        cache_ttl: float = 5.0,
        emit: Callable[[AuditEvent], None] | None = None,
        provider_name: str | None = None,
    ) -> None:
        if cache_size < 0:
            raise ConfigError(f"cache_size must be >= 0 (0 turns the cache off), not {cache_size}")
        self.store = store
        version = store.version()
        if version is not None and "v2" in version.lower():
            raise ConfigError(f"{store.location}: {V2_UNSUPPORTED}")
        self._master = _MasterKeySlot(master_key, provider_name)
        self._previous = _MasterKeySlot(previous, None) if previous is not None else None
        self._cache = _BlobCache(cache_size, cache_ttl) if cache_size > 0 else None
        self._emit = emit

    # -- master key --------------------------------------------------------------------

    @property
    def master_key(self) -> MasterKey:
        """The current master key, loaded on first access."""
        return self._master.get(self._on_master_loaded)

    @property
    def fingerprint(self) -> str:
        return self.master_key.fingerprint

    def _on_master_loaded(self, key: MasterKey) -> None:
        self._audit("master_key_loaded", fingerprint=key.fingerprint)

    # -- reading -----------------------------------------------------------------------

    def read(self, key_id: KeyId | str, index: int = 1) -> SecretBytes:
        """Decrypt a key (``index`` 1 = current, 2 = oldest history ...). Caller wipes it."""
        kid = _key_id(key_id)
        try:
            secret = self._decrypt(kid, index)
        except Exception as exc:
            self._audit("key_read", kid, index, ok=False, error=exc)
            raise
        self._audit("key_read", kid, index)
        return secret

    def read_public(self, key_id: KeyId | str) -> bytes:
        """The plaintext public half of a keypair (``client/<cid>/storage``, ``poison-record``)."""
        kid = _key_id(key_id)
        if kid.public_name is None:
            raise ConfigError(f"{kid} is a symmetric key: it has no public part")
        return self.store.get(kid.public_name)

    def use(self, key_id: KeyId | str, index: int = 1) -> _KeyUse:
        """Decrypt a key for the duration of a ``with`` block, then wipe it::

        with keys.use("client/client1/symmetric") as key:  # SecretBytes
            ...
        """
        return _KeyUse(self, _key_id(key_id), index)

    def _decrypt(self, kid: KeyId, index: int) -> SecretBytes:
        name = kid.store_name
        timestamp = self._history_timestamp(kid, index) if index != 1 else None
        cache = self._cache
        if cache is not None:
            revision = self.store.revision(name, timestamp)
            slot = (name, timestamp)
            cached = cache.get(slot, revision)
            if cached is not None:
                return cached
        blob = (
            self.store.get(name) if timestamp is None else self.store.get_history(name, timestamp)
        )
        secret = self._unseal(blob, kid.context, _where(self.store, name, timestamp))
        if cache is not None:
            cache.put(slot, revision, secret)
        return secret

    def _unseal(self, blob: bytes, context: bytes, where: str) -> SecretBytes:
        key = self.master_key
        try:
            return scell.decrypt(key.encryption.buffer, blob, context)
        except IntegrityError:
            if self._previous is None:
                raise IntegrityError(
                    f"{where}: cannot decrypt with master key {key.fingerprint}: wrong master "
                    "key, tampered file, or a file moved to another key's name"
                ) from None
        previous = self._previous.get(lambda k: None)
        try:
            return scell.decrypt(previous.encryption.buffer, blob, context)
        except IntegrityError:
            raise IntegrityError(
                f"{where}: cannot decrypt with master key {key.fingerprint} nor with the "
                f"previous master key {previous.fingerprint}: tampered file, or a file moved "
                "to another key's name"
            ) from None

    def _history_timestamp(self, kid: KeyId, index: int) -> str:
        if index < 1:
            raise ConfigError(f"index must be 1 (current) or more, not {index}")
        history = self._history(kid.store_name)
        if index - 2 >= len(history):
            raise KeyNotFoundError(
                f"{kid} has no index {index}: it has {len(history)} rotated "
                f"version{'s' if len(history) != 1 else ''} (indexes 2 to {len(history) + 1})"
                if history
                else f"{kid} has no rotated versions: only index 1 exists"
            )
        return history[index - 2]

    def _history(self, name: str) -> tuple[str, ...]:
        for blob in self.store.list():
            if blob.name == name:
                return blob.history
        return ()

    # -- listing -----------------------------------------------------------------------

    def list(self, *, rotated: bool = False, check: bool = False) -> list[KeyInfo]:
        """Every stored blob with what it is; ``check`` also tries to decrypt each one."""
        infos: list[KeyInfo] = []
        for blob in self.store.list():
            what = classify(blob.name)
            kid = what.key_id
            key_id = str(kid) if kid is not None else None
            purpose = kid.kind.value if kid is not None else "unknown"
            client = kid.client_id if kid is not None else None
            if kid is None:
                entries: list[tuple[int | None, KeyState, str | None]] = [(None, "unknown", None)]
            elif what.public:
                entries = [(None, "public", None)] if blob.current else []
            else:
                entries = [(1, "current", None)] if blob.current else []
                if rotated:
                    entries += [(i, "rotated", ts) for i, ts in enumerate(blob.history, start=2)]
            for index, state, ts in entries:
                decrypts = None
                if check and kid is not None and state in ("current", "rotated"):
                    decrypts = self._decrypts(kid, blob.name, ts)
                infos.append(
                    KeyInfo(
                        key_id=key_id,
                        purpose=purpose,
                        client_id=client,
                        index=index,
                        state=state,
                        created=blob.created if ts is None else _history_time(ts),
                        path=_where(self.store, blob.name, ts),
                        decrypts=decrypts,
                    )
                )
        return infos

    def _decrypts(self, kid: KeyId, name: str, timestamp: str | None) -> bool:
        try:  # a stored value the store cannot even decode (Redis: not base64) is no key either
            blob = (
                self.store.get(name)
                if timestamp is None
                else self.store.get_history(name, timestamp)
            )
            self._unseal(blob, kid.context, name).wipe()
        except IntegrityError:
            return False
        return True

    # -- writing -----------------------------------------------------------------------

    def generate(
        self, kinds: Iterable[KeyKind | str], client_id: str | None = None
    ) -> builtins.list[KeyId]:
        """Generate new keys (32 random bytes each); ``KeyExistsError`` if any exists.

        ``client_id`` applies to the per-client kinds among ``kinds`` (symmetric,
        searchable); it is an error when none of them is asked for. Nothing is
        written unless every key can be generated.
        """
        wanted = [_kind(kind) for kind in kinds]
        if not wanted:
            raise ConfigError("nothing to generate: name at least one key kind")
        if client_id is not None and not any(kind.per_client for kind in wanted):
            raise ConfigError(
                "a client id applies only to client keys (symmetric, searchable), "
                f"not to {', '.join(kind.value for kind in wanted)}"
            )
        kids = [_generatable(kind, client_id if kind.per_client else None) for kind in wanted]
        key = self.master_key
        with self.store.lock():
            existing = {b.name for b in self.store.list() if b.current}
            for kid in kids:
                if kid.store_name in existing:
                    raise KeyExistsError(f"{kid} already exists: use `keyloader keys rotate {kid}`")
            for kid in kids:
                self.store.create(kid.store_name, _new_blob(key, kid))
                self._drop(kid.store_name)
                self._audit("key_generated", kid, 1)
        return kids

    def rotate(self, key_id: KeyId | str) -> KeyId:
        """Replace a key with a new random one; the old one becomes the newest history entry."""
        given = _key_id(key_id)
        kid = _generatable(given.kind, given.client_id, action="rotate")
        key = self.master_key
        with self.store.lock():
            self.store.rotate(kid.store_name, _new_blob(key, kid))
            self._drop(kid.store_name)
        self._audit("key_rotated", kid, 1)
        return kid

    def destroy(self, key_id: KeyId | str, index: int | None = None) -> None:
        """Delete the current key (history kept), or one history entry with ``index``."""
        kid = _key_id(key_id)
        with self.store.lock():
            if index is None or index == 1:
                self.store.delete(kid.store_name)
            else:
                self.store.delete_history(kid.store_name, self._history_timestamp(kid, index))
            self._drop(kid.store_name)
        self._audit("key_destroyed", kid, index or 1)

    # -- verification ------------------------------------------------------------------

    def verify(
        self, progress: Callable[[int, int], None] | None = None
    ) -> builtins.list[VerifyResult]:
        """Decrypt every key, current and history; one result per blob.

        Each key checked is reported to audit observers as ``key_verified``
        (``ok`` its result, ``error_type`` why it failed). Unknown files (not
        Acra keystore v1 key names) are reported with ``ok=None``: they are not
        keys, so they are neither verified nor failures.
        ``progress(done, total)`` is called after each key.
        """
        results: list[VerifyResult] = []
        work: list[tuple[KeyId, str, int, str | None]] = []
        for blob in self.store.list():
            what = classify(blob.name)
            kid = what.key_id
            if kid is None:
                where = _where(self.store, blob.name, None)
                results.append(VerifyResult(None, None, where, None, UNKNOWN_FILE, "unknown"))
            elif not what.public:
                if blob.current:
                    work.append((kid, blob.name, 1, None))
                work += [(kid, blob.name, i, ts) for i, ts in enumerate(blob.history, start=2)]
        for done, (kid, name, index, ts) in enumerate(work, start=1):
            where = _where(self.store, name, ts)
            try:
                data = self.store.get(name) if ts is None else self.store.get_history(name, ts)
                self._unseal(data, kid.context, where).wipe()
            except (IntegrityError, KeyNotFoundError) as exc:
                results.append(
                    VerifyResult(str(kid), index, where, False, str(exc), type(exc).__name__)
                )
                self._audit("key_verified", kid, index, error=exc)
            else:
                results.append(VerifyResult(str(kid), index, where, True))
                self._audit("key_verified", kid, index)
            if progress is not None:
                progress(done, len(work))
        results.sort(key=lambda r: r.path)
        return results

    # -- plumbing ----------------------------------------------------------------------

    def _drop(self, name: str) -> None:
        if self._cache is not None:
            self._cache.drop(name)

    def _audit(
        self,
        action: AuditAction,
        kid: KeyId | None = None,
        index: int | None = None,
        *,
        ok: bool = True,
        error: BaseException | None = None,
        fingerprint: str | None = None,
    ) -> None:
        if self._emit is None:
            return
        if fingerprint is None and self._master.loaded:
            fingerprint = self.master_key.fingerprint
        self._emit(
            AuditEvent(
                action=action,
                key_id=str(kid) if kid is not None else None,
                index=index,
                provider=self._master.provider_name,
                fingerprint=fingerprint,
                store=self.store.name,
                ok=ok and error is None,
                error_type=type(error).__name__ if error is not None else None,
            )
        )

    def close(self) -> None:
        """Wipe the master keys and the cache, close the provider and the store."""
        if self._cache is not None:
            self._cache.close()
        self._master.close()
        if self._previous is not None:
            self._previous.close()
        self.store.close()

    def __enter__(self) -> KeyManager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<KeyManager store={self.store.name}:{self.store.location}>"


class _KeyUse:
    """The context manager :meth:`KeyManager.use` returns (a class: cheaper than a generator)."""

    __slots__ = ("_index", "_kid", "_manager", "_secret")

    def __init__(self, manager: KeyManager, kid: KeyId, index: int) -> None:
        self._manager = manager
        self._kid = kid
        self._index = index
        self._secret: SecretBytes | None = None

    def __enter__(self) -> SecretBytes:
        manager = self._manager
        try:
            self._secret = manager._decrypt(self._kid, self._index)
        except Exception as exc:
            manager._audit("key_used", self._kid, self._index, ok=False, error=exc)
            raise
        manager._audit("key_used", self._kid, self._index)
        return self._secret

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._secret is not None:
            self._secret.wipe()
            self._secret = None


_KEY_IDS: dict[str, KeyId] = {}


def _key_id(key_id: KeyId | str) -> KeyId:
    if isinstance(key_id, KeyId):
        return key_id
    kid = _KEY_IDS.get(key_id)
    if kid is None:
        kid = KeyId.parse(key_id)
        if len(_KEY_IDS) < 65536:
            _KEY_IDS[key_id] = kid
    return kid


def _kind(kind: KeyKind | str) -> KeyKind:
    try:
        return KeyKind(kind)
    except ValueError:
        known = ", ".join(k.value for k in GENERATABLE_KINDS)
        raise ConfigError(f"unknown key kind {str(kind)[:40]!r}: use one of {known}") from None


def _generatable(kind: KeyKind, client_id: str | None, action: str = "generate") -> KeyId:
    if kind not in GENERATABLE_KINDS:
        raise ConfigError(
            f"keyloader does not {action} {kind.value} keypairs; they are kept, listed, read "
            "and rewrapped as opaque blobs (create them with Acra's acra-keys)"
        )
    if client_id is not None and not kind.per_client:
        raise ConfigError(f"a client id applies only to client keys, not to {kind.value}")
    return KeyId(kind, client_id)


def _new_blob(key: MasterKey, kid: KeyId) -> bytes:
    with SecretBytes(secrets.token_bytes(SYMMETRIC_KEY_LENGTH)) as fresh:
        return scell.encrypt(key.encryption.buffer, fresh.buffer, kid.context)


def _where(store: KeyStore, name: str, timestamp: str | None) -> str:
    path = f"{store.location.rstrip('/')}/{name}"
    return path if timestamp is None else f"{path}.old/{timestamp}"


def _history_time(timestamp: str) -> float | None:
    from .stores.timestamps import parse_history_timestamp

    try:
        return parse_history_timestamp(timestamp) / 1e9
    except ValueError:
        return None


def kinds_from_flags(flags: Sequence[tuple[bool, KeyKind]]) -> list[KeyKind]:
    """The kinds whose flag is set, or the symmetric storage key when none is."""
    chosen = [kind for flag, kind in flags if flag]
    return chosen or [KeyKind.SYMMETRIC]
