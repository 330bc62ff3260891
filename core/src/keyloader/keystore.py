"""The key-store engine: Acra keystore v1 on any ``KeyStore``, with an optional cache."""

from __future__ import annotations

import builtins
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress

from .audit import AuditEvent
from .defaults import DEFAULT_CACHE_SIZE, DEFAULT_CACHE_TTL
from .engine import AUTO_RELOAD_INTERVAL, EngineBase
from .errors import (
    ConfigError,
    IntegrityError,
    KeyExistsError,
    KeyloaderError,
    KeyNotFoundError,
)
from .inventory import KeyInfo, VerifyResult, list_keys, location_of, verify_keys
from .keycache import (
    V2_UNSUPPORTED,
    MasterKeySource,
    unseal_under,
)
from .keyids import KeyId, KeyKind, key_id_of
from .keypairs import destroy_keypair, new_keypair_blobs, rotate_keypair
from .masterkey import MasterKey
from .secret import SecretBytes
from .stores.base import KeyStore, StoredBlob
from .themis import scell

__all__ = ["GENERATABLE_KINDS", "KeyInfo", "KeyManager", "VerifyResult", "MasterKeySource"]

log = logging.getLogger("keyloader.keystore")

SYMMETRIC_KEY_LENGTH = 32
GENERATABLE_KINDS = (
    KeyKind.SYMMETRIC,
    KeyKind.SEARCHABLE,
    KeyKind.STORAGE,
    KeyKind.AUDIT_LOG,
    KeyKind.POISON_RECORD_SYMMETRIC,
    KeyKind.POISON_RECORD,
)


class KeyManager(EngineBase):
    """Intermediate keys of one store, sealed with one master key (Acra keystore v1).

    The master key is loaded on first use (listing does not need it). Decrypted
    keys are :class:`SecretBytes`; :meth:`use` wipes them when its block ends.
    With ``previous``, blobs that fail under the current master key are tried
    under the previous one (a store half-way through a rewrap keeps working).
    Acra's data operations (``encrypt``, ``decrypt``, their bulk forms,
    ``search_hash``, poison records) use the keys without handing them out
    (:class:`~keyloader.dataops.DataOperations`, docs/data.md).

    One manager is meant to be shared by every thread of a process
    (docs/embedding.md): reads take no lock, the cache and the master key are
    thread safe, writers are serialized by the store's lock. After ``fork()``
    the child keeps the manager, with an empty cache and no
    lock held. :meth:`reload_master_key` picks up a new master key (after a
    rewrap) without reopening; with ``auto_reload`` a key that no longer
    decrypts makes the manager reload once from its provider and retry.
    """

    store: KeyStore

    def __init__(
        self,
        store: KeyStore,
        master_key: MasterKeySource,
        *,
        previous: MasterKeySource | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        emit: Callable[[AuditEvent], None] | None = None,
        provider_name: str | None = None,
        auto_reload: bool = False,
        wants: Callable[[str], bool] | None = None,
    ) -> None:
        super().__init__(
            master_key,
            previous=previous,
            cache_size=cache_size,
            cache_ttl=cache_ttl,
            emit=emit,
            provider_name=provider_name,
            auto_reload=auto_reload,
            wants=wants,
        )
        self.store = store
        self._listing: dict[str, StoredBlob] | None = None
        version = store.version()
        if version is not None and "v2" in version.lower():
            raise ConfigError(f"{store.location}: {V2_UNSUPPORTED}")

    # -- reading -----------------------------------------------------------------------

    def read_public(self, key_id: KeyId | str) -> bytes:
        """The plaintext public half of a keypair (``client/<cid>/storage``, ``poison-record``)."""
        kid = key_id_of(key_id)
        if kid.public_name is None:
            raise ConfigError(f"{kid} is a symmetric key: it has no public part")
        return self.store.get(kid.public_name)

    def cached(self, key_id: KeyId | str, index: int = 1) -> SecretBytes | None:
        """The key from the cache if getting it needs no I/O, else None; the caller wipes it.

        For callers that must not block (``keyloader.aio`` serves ``use()`` from here
        on the event loop): the master key is loaded, the store's revision check is
        cheap (``KeyStore.revision_is_cheap``) and the entry is valid. Not audited:
        the caller audits the use.
        """
        cache = self._cache
        if cache is None or not self._master.loaded or index != 1:
            return None
        if not self.store.revision_is_cheap:
            return None
        name = key_id_of(key_id).store_name
        return cache.get((name, None), self.store.revision(name, None))

    def _peek(self, kid: KeyId) -> SecretBytes | None:
        cache = self._cache
        if cache is None:
            return None
        name = kid.store_name
        return cache.peek((name, None), self.store.revision(name, None))

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
        secret = self.unseal(blob, kid.context, location_of(self.store, name, timestamp))
        if cache is not None:
            return cache.put(slot, revision, secret)
        return secret

    def unseal(self, blob: bytes, context: bytes, where: str) -> SecretBytes:
        """Open a sealed ``blob`` under the master key (the previous one as fallback).

        ``where`` names the blob in an :class:`IntegrityError`. The caller wipes the
        result. For engine code (rewrap, export/import) that reads blobs itself.
        With :attr:`auto_reload`, a blob that opens under neither key makes the
        manager reload the master key once (at most every
        ``AUTO_RELOAD_INTERVAL`` seconds) and try again.
        """
        before = self._master.current
        try:
            return self._unseal(blob, context, where)
        except IntegrityError as exc:
            failure = exc
        if self._master.current is before:
            self._auto_reload(before)
        if self._master.current is before:
            raise failure
        # a newer master key (this thread's reload, or another thread's meanwhile): once more
        return self._unseal(blob, context, where)

    def _auto_reload(self, before: MasterKey | None) -> None:
        """Reload once if allowed; threads that fail meanwhile wait for it, then retry."""
        if not self.auto_reload or not self._master.reloadable:
            return
        with self._reload_lock:  # only failing reads wait here, never the others
            if self._master.current is not before:
                return  # another thread reloaded while this one waited
            now = time.monotonic()
            if now - self._last_auto_reload < AUTO_RELOAD_INTERVAL:
                return
            self._last_auto_reload = now
            with suppress(KeyloaderError):  # audited; the blob's own error is the one to report
                self.reload_master_key()

    def _unseal(self, blob: bytes, context: bytes, where: str) -> SecretBytes:
        slot = self._previous
        load_previous = (lambda: slot.get(lambda _: None)) if slot is not None else None
        return unseal_under(
            self.master_key, load_previous, self._master.replaced, blob, context, where
        )

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

    def _rotated_count(self, kid: KeyId) -> int:
        return len(self._history(kid.store_name))

    def _has_current(self, kid: KeyId) -> bool:
        return any(blob.name == kid.store_name and blob.current for blob in self.store.list())

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Within the block, rotated keys are looked up in one listing of the store, not
        one per read (``keys migrate`` reads every version of every key)."""
        self._listing = {blob.name: blob for blob in self.store.list()}
        try:
            yield
        finally:
            self._listing = None

    def _history(self, name: str) -> tuple[str, ...]:
        listing = self._listing
        if listing is not None:
            found = listing.get(name)
            return found.history if found is not None else ()
        for blob in self.store.list():
            if blob.name == name:
                return blob.history
        return ()

    # -- listing -----------------------------------------------------------------------

    def list(self, *, rotated: bool = False, check: bool = False) -> builtins.list[KeyInfo]:
        """Every stored blob with what it is; ``check`` also tries to decrypt each one."""
        try:
            return list_keys(self, rotated=rotated, check=check)
        finally:
            if check:
                scell.scrub()

    # -- writing -----------------------------------------------------------------------

    def generate(
        self, kinds: Iterable[KeyKind | str], client_id: str | None = None
    ) -> builtins.list[KeyId]:
        """Generate new keys; ``KeyExistsError`` if any exists (either half of a keypair).

        Symmetric kinds get 32 random bytes; keypairs (``storage``,
        ``poison-record``) a new P-256 Themis keypair, the private half sealed and
        the public half plain (:mod:`keyloader.keypairs`). ``client_id`` applies to
        the per-client kinds among ``kinds`` (symmetric, searchable, storage); it
        is an error when none of them is asked for. Nothing is written unless
        every key can be generated.
        """
        wanted = [_kind(kind) for kind in kinds]
        if not wanted:
            raise ConfigError("nothing to generate: name at least one key kind")
        if client_id is not None and not any(kind.per_client for kind in wanted):
            raise ConfigError(
                "a client id applies only to client keys (symmetric, searchable, storage), "
                f"not to {', '.join(kind.value for kind in wanted)}"
            )
        kids = list(
            dict.fromkeys(
                _generatable(kind, client_id if kind.per_client else None) for kind in wanted
            )
        )
        key = self.master_key
        with self.store.lock(), _scrubbed():
            existing = {b.name for b in self.store.list() if b.current}
            for kid in kids:
                names = [kid.store_name, *([kid.public_name] if kid.public_name else [])]
                if any(name in existing for name in names):
                    raise KeyExistsError(f"{kid} already exists: use `keyloader keys rotate {kid}`")
            for kid in kids:
                if kid.public_name is None:
                    self.store.create(kid.store_name, _new_blob(key, kid))
                else:
                    sealed, public = new_keypair_blobs(key, kid)
                    self.store.create(kid.store_name, sealed)
                    self.store.create(kid.public_name, public, public=True)
                self.forget(kid.store_name)
                self.audit("key_generated", kid, 1)
        return kids

    def rotate(self, key_id: KeyId | str) -> KeyId:
        """Replace a key with a new random one; the old one becomes the newest history entry.

        A keypair gets a new keypair; both old halves go to history under one timestamp.
        """
        given = key_id_of(key_id)
        kid = _generatable(given.kind, given.client_id, action="rotate")
        key = self.master_key
        with self.store.lock(), _scrubbed():
            if kid.public_name is None:
                self.store.rotate(kid.store_name, _new_blob(key, kid))
            else:
                rotate_keypair(self.store, key, kid)
            self.forget(kid.store_name)
        self.audit("key_rotated", kid, 1)
        return kid

    def destroy(self, key_id: KeyId | str, index: int | None = None) -> None:
        """Delete the current key (history kept), or one history entry with ``index``.

        For a keypair both halves go: the current ones, or the history entry of each.
        """
        kid = key_id_of(key_id)
        with self.store.lock():
            timestamp = None if index is None or index == 1 else self._history_timestamp(kid, index)
            if kid.public_name is not None:
                destroy_keypair(self.store, kid, timestamp)
            elif timestamp is None:
                self.store.delete(kid.store_name)
            else:
                self.store.delete_history(kid.store_name, timestamp)
            self.forget(kid.store_name)
        self.audit("key_destroyed", kid, index or 1)

    # -- verification ------------------------------------------------------------------

    def verify(
        self, progress: Callable[[int, int], None] | None = None
    ) -> builtins.list[VerifyResult]:
        """Decrypt every key, current and history; one result per blob
        (:func:`keyloader.inventory.verify_keys`). Each key checked is reported to audit
        observers as ``key_verified``; unknown files are reported with ``ok=None``. A master
        key that cannot load, or is of the wrong keystore version, is raised."""
        _ = self.master_key
        try:
            return verify_keys(self, progress)
        finally:
            scell.scrub()

    # -- plumbing ----------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"<KeyManager store={self.store.name}:{self.store.location}>"


@contextmanager
def _scrubbed() -> Iterator[None]:
    """Scrub the registers when the block ends (it used keys), however it ends."""
    try:
        yield
    finally:
        scell.scrub()


def _kind(kind: KeyKind | str) -> KeyKind:
    try:
        return KeyKind(kind)
    except ValueError:
        known = ", ".join(k.value for k in GENERATABLE_KINDS)
        raise ConfigError(f"unknown key kind {str(kind)[:40]!r}: use one of {known}") from None


def _generatable(kind: KeyKind, client_id: str | None, action: str = "generate") -> KeyId:
    if kind not in GENERATABLE_KINDS:  # pragma: no cover - every kind is generatable
        raise ConfigError(f"keyloader does not {action} {kind.value} keys")
    if client_id is not None and not kind.per_client:
        raise ConfigError(f"a client id applies only to client keys, not to {kind.value}")
    return KeyId(kind, client_id)


def _new_blob(key: MasterKey, kid: KeyId) -> bytes:
    with SecretBytes.random(SYMMETRIC_KEY_LENGTH) as fresh:
        return scell.encrypt(key.encryption.buffer, fresh.buffer, kid.context)


def kinds_from_flags(flags: Sequence[tuple[bool, KeyKind]]) -> list[KeyKind]:
    """The kinds whose flag is set, or the symmetric storage key when none is."""
    chosen = [kind for flag, kind in flags if flag]
    return chosen or [KeyKind.SYMMETRIC]
