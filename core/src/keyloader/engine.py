"""What the engine of every keystore version shares (docs/architecture.md, "Keystore versions").

:class:`EngineBase` holds the master key (loaded on first use, reloadable), the cache of
decrypted keys, audit events, :meth:`~EngineBase.read` and :meth:`~EngineBase.use`, Acra's
data operations (:class:`~keyloader.dataops.DataOperations`) and closing. A keystore
version is a subclass that says where keys live and how they are sealed:
:class:`~keyloader.keystore.KeyManager` (Acra keystore v1 on any ``KeyStore``) and
:class:`~keyloader.keyrings.engine.RingKeyManager` (Acra keystore v2 rings). Each
implements ``_decrypt`` (a key by id and index, through the cache), ``_rotated_count``,
``_has_current``, ``read_public`` and ``cached``, and has a ``store`` with ``name``,
``location`` and ``close()``.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from .audit import AuditAction, AuditEvent
from .dataops import DataOperations
from .errors import ConfigError
from .keycache import KeyCache, MasterKeySlot, MasterKeySource
from .keyids import KeyId, key_id_of
from .masterkey import MasterKey
from .secret import SecretBytes
from .themis import scell

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from .inventory import KeyInfo, VerifyResult
    from .keyids import KeyKind

__all__ = ["AUTO_RELOAD_INTERVAL", "EngineBase"]

AUTO_RELOAD_INTERVAL = 1.0
"""Seconds between two automatic master-key reloads (a tampered file must not hammer Vault)."""


class EngineBase(DataOperations):
    """The engine of one key store and one master key, whatever the keystore version."""

    store: Any
    """The store: its ``name`` and ``location`` name it in audit events and messages."""
    keystore_version = "v1"
    """The Acra keystore version this engine keeps, and so the master key it needs."""

    def __init__(
        self,
        master_key: MasterKeySource,
        *,
        previous: MasterKeySource | None = None,
        cache_size: int,
        cache_ttl: float,
        emit: Callable[[AuditEvent], None] | None = None,
        provider_name: str | None = None,
        auto_reload: bool = False,
        wants: Callable[[str], bool] | None = None,
    ) -> None:
        if cache_size < 0:
            raise ConfigError(f"cache_size must be >= 0 (0 turns the cache off), not {cache_size}")
        version = self.keystore_version
        self._master = MasterKeySlot(master_key, provider_name, version)
        self._previous = MasterKeySlot(previous, None, version) if previous is not None else None
        self._cache = KeyCache(cache_size, cache_ttl) if cache_size > 0 else None
        self._emit = emit
        self._wants = wants
        self.auto_reload = auto_reload
        self._last_auto_reload = -AUTO_RELOAD_INTERVAL
        self._reload_lock = threading.Lock()

    @property
    def location(self) -> str:
        """Where the keys are, for messages."""
        return str(self.store.location)

    # -- master key --------------------------------------------------------------------

    @property
    def master_key(self) -> MasterKey:
        """The current master key, loaded on first access."""
        return self._master.get(self._on_master_loaded)

    @property
    def fingerprint(self) -> str:
        return self.master_key.fingerprint

    def _on_master_loaded(self, key: MasterKey) -> None:
        self.audit("master_key_loaded", fingerprint=key.fingerprint)

    def reload_master_key(self) -> bool:
        """Load the master key again from the provider; True if it changed.

        For a service that keeps running while its key store is rewrapped to a
        new master key: keys sealed with the new key decrypt from now on, and
        the key it replaced stays a fallback for keys not rewrapped yet (in
        memory, wipeable, wiped by :meth:`close`). The cache is dropped. Audited as
        ``master_key_reloaded``. A manager opened with a key rather than a
        provider cannot reload (:class:`ConfigError`).
        """
        try:
            key, changed = self._master.reload()
        except Exception as exc:
            self.audit("master_key_reloaded", ok=False, error=exc)
            raise
        if changed and self._cache is not None:
            self._cache.drop()
        self.audit("master_key_reloaded", fingerprint=key.fingerprint)
        return changed

    # -- reading -----------------------------------------------------------------------

    def read(self, key_id: KeyId | str, index: int = 1) -> SecretBytes:
        """Decrypt a key (``index`` 1 = current, 2 = oldest history ...). Caller wipes it."""
        kid = key_id_of(key_id)
        try:
            secret = self._decrypt(kid, index).detach()  # the caller's own: it may outlive us
        except Exception as exc:
            self.audit("key_read", kid, index, ok=False, error=exc)
            raise
        finally:
            scell.scrub()
        self.audit("key_read", kid, index)
        return secret

    def use(self, key_id: KeyId | str, index: int = 1) -> _KeyUse:
        """Decrypt a key for the duration of a ``with`` block, then wipe it::

        with keys.use("client/client1/symmetric") as key:  # SecretBytes
            ...
        """
        return _KeyUse(self, key_id_of(key_id), index)

    def cached(self, key_id: KeyId | str, index: int = 1) -> SecretBytes | None:
        """The key from the cache if getting it needs no I/O, else None; the caller wipes it
        (for callers that must not block: ``keyloader.aio`` serves ``use()`` from here)."""
        return None

    @property
    def audits_use(self) -> bool:
        """Whether any audit observer wants ``key_used`` events (asked each time: a plugin
        registered later may want them)."""
        return self._emit is not None and (self._wants is None or self._wants("key_used"))

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """For engine code that reads every key (``keys migrate``): within the block, what
        the store holds may be listed once and reused. Not for a shared manager."""
        yield

    # -- what each keystore version implements -----------------------------------------

    def _decrypt(self, kid: KeyId, index: int) -> SecretBytes:
        """Key ``kid`` at ``index`` (1 current, 2 the oldest rotated ...), through the cache."""
        raise NotImplementedError

    def _rotated_count(self, kid: KeyId) -> int:
        raise NotImplementedError

    def _has_current(self, kid: KeyId) -> bool:
        raise NotImplementedError

    def _peek(self, kid: KeyId) -> SecretBytes | None:
        """The current key of ``kid`` as the cache holds it (valid by the store's revision
        token), not a lease, else None: for the data operations' common case, which only
        reads what is derived from it and neither wipes nor keeps it."""
        return None

    def read_public(self, key_id: KeyId | str) -> bytes:
        """The plaintext public half of a keypair (``client/<cid>/storage``, ``poison-record``)."""
        raise NotImplementedError

    def list(self, *, rotated: bool = False, check: bool = False) -> builtins.list[KeyInfo]:
        """Every key with what it is; ``check`` also tries to decrypt each one."""
        raise NotImplementedError

    def verify(
        self, progress: Callable[[int, int], None] | None = None
    ) -> builtins.list[VerifyResult]:
        """Decrypt every key, current and rotated; one result per key."""
        raise NotImplementedError

    def generate(
        self, kinds: Iterable[KeyKind | str], client_id: str | None = None
    ) -> builtins.list[KeyId]:
        """Generate new keys; ``KeyExistsError`` if any exists."""
        raise NotImplementedError

    def rotate(self, key_id: KeyId | str) -> KeyId:
        """Replace a key with a new one; the old one becomes the newest rotated version."""
        raise NotImplementedError

    def destroy(self, key_id: KeyId | str, index: int | None = None) -> None:
        """Destroy the current key, or the rotated one at ``index``."""
        raise NotImplementedError

    # -- plumbing ----------------------------------------------------------------------

    def forget(self, name: str) -> None:
        """Drop what the cache holds for ``name`` (after the engine rewrote it)."""
        if self._cache is not None:
            self._cache.drop(name)

    def audit(
        self,
        action: AuditAction,
        kid: KeyId | None = None,
        index: int | None = None,
        *,
        ok: bool = True,
        error: BaseException | None = None,
        fingerprint: str | None = None,
    ) -> None:
        if self._emit is None or (self._wants is not None and not self._wants(action)):
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
        scell.scrub()
        self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _KeyUse:
    """The context manager :meth:`KeyManager.use` returns (a class: cheaper than a generator)."""

    __slots__ = ("_index", "_kid", "_manager", "_secret")

    def __init__(self, manager: EngineBase, kid: KeyId, index: int) -> None:
        self._manager = manager
        self._kid = kid
        self._index = index
        self._secret: SecretBytes | None = None

    def __enter__(self) -> SecretBytes:
        manager = self._manager
        try:
            self._secret = manager._decrypt(self._kid, self._index)
        except Exception as exc:
            manager.audit("key_used", self._kid, self._index, ok=False, error=exc)
            raise
        manager.audit("key_used", self._kid, self._index)  # returns at once if nobody wants it
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
        scell.scrub()  # the application's use of the key left it in the CPU's registers
