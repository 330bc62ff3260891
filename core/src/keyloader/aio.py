"""asyncio: the embedding API for services that run an event loop.

::

    import keyloader

    async with keyloader.aio.open_keystore(keys_dir=".acrakeys") as keys:
        async with keys.use("client/client1/symmetric") as key:  # a SecretBytes
            ...

Blocking work (file and network I/O, a Vault or KMS load, a lock wait) runs in
worker threads, never on the event loop. A cached key whose revision check is
cheap (a local disk, the memory store: ``KeyStore.revision_is_cheap``) is served
inline, with no thread hop. Cancelling an await never leaves anything half
done: the operation finishes (or fails) atomically in its thread, as it would
without asyncio, and a key decrypted for a cancelled ``use()`` or ``read()`` is
wiped when it arrives. Every method mirrors :class:`~keyloader.keystore.KeyManager`.
trio and other loops: call the sync API through their own thread helpers.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from .api import export_keystore as _export_keystore
from .api import import_keystore as _import_keystore
from .api import load_master_key as _load_master_key
from .api import open_keystore as _open_keystore
from .api import rewrap_keystore as _rewrap_keystore
from .keyids import key_id_of
from .secret import SecretBytes
from .themis import scell

if TYPE_CHECKING:
    from .bundle import ExportReport, ImportReport
    from .config import Settings
    from .dataops import Value
    from .engine import EngineBase as KeyManager  # either keystore version's engine
    from .inventory import KeyInfo, VerifyResult
    from .keyids import KeyId, KeyKind
    from .keyrings.bundle import RingExportReport, RingImportReport
    from .masterkey import MasterKey
    from .rewrap import RewrapReport

__all__ = [
    "AsyncKeyManager",
    "export_keystore",
    "import_keystore",
    "load_master_key",
    "open_keystore",
    "rewrap_keystore",
]

WORKERS = 8
"""Worker threads of one :class:`AsyncKeyManager` (its blocking operations run there)."""

_T = TypeVar("_T")


_shared: ThreadPoolExecutor | None = None
_shared_lock = threading.Lock()


def _shared_executor() -> ThreadPoolExecutor:
    """The worker threads of the module-level functions (made on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="keyloader-aio")
        return _shared


async def _run(
    executor: ThreadPoolExecutor | None,
    fn: Callable[..., _T],
    *args: Any,
    discard: Callable[[_T], None] | None = None,
    **kwargs: Any,
) -> _T:
    """``fn(*args, **kwargs)`` in a worker thread.

    If the await is cancelled before the thread starts, it never runs; if the
    thread is running, it finishes and ``discard`` gets its result (a key is
    wiped, a manager closed), so nothing secret is left behind unowned.
    """
    future = (executor or _shared_executor()).submit(functools.partial(fn, *args, **kwargs))
    try:
        return await asyncio.wrap_future(future)
    except asyncio.CancelledError:
        if discard is not None:
            future.add_done_callback(lambda done: _discard(done, discard))
        raise


def _discard(done: Future[_T], discard: Callable[[_T], None]) -> None:
    if not done.cancelled() and done.exception() is None:
        discard(done.result())


def _wipe(secret: SecretBytes) -> None:
    secret.wipe()


def _close(manager: KeyManager) -> None:
    manager.close()


class AsyncKeyManager:
    """A :class:`~keyloader.keystore.KeyManager` for asyncio: the same operations, awaited."""

    def __init__(self, manager: KeyManager, *, workers: int = WORKERS) -> None:
        self.sync = manager
        """The synchronous manager underneath (for code that runs in a thread already)."""
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="keyloader")

    async def _call(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        return await _run(self._executor, fn, *args, **kwargs)

    # -- keys ----------------------------------------------------------------------------

    def use(self, key_id: KeyId | str, index: int = 1) -> _AsyncKeyUse:
        """``async with keys.use(key_id) as key``: the key for the block, then wiped."""
        return _AsyncKeyUse(self, key_id, index)

    async def read(self, key_id: KeyId | str, index: int = 1) -> SecretBytes:
        """Decrypt a key; the caller wipes it (``with await keys.read(...) as key``)."""
        return await _run(self._executor, self.sync.read, key_id, index, discard=_wipe)

    async def read_public(self, key_id: KeyId | str) -> bytes:
        return await self._call(self.sync.read_public, key_id)

    async def generate(
        self, kinds: Iterable[KeyKind | str], client_id: str | None = None
    ) -> builtins.list[KeyId]:
        return await self._call(self.sync.generate, list(kinds), client_id)

    async def rotate(self, key_id: KeyId | str) -> KeyId:
        return await self._call(self.sync.rotate, key_id)

    async def destroy(self, key_id: KeyId | str, index: int | None = None) -> None:
        await self._call(self.sync.destroy, key_id, index)

    async def list(self, *, rotated: bool = False, check: bool = False) -> builtins.list[KeyInfo]:
        return await self._call(self.sync.list, rotated=rotated, check=check)

    async def verify(
        self, progress: Callable[[int, int], None] | None = None
    ) -> builtins.list[VerifyResult]:
        return await self._call(self.sync.verify, progress)

    # -- data (Acra's containers; docs/data.md) ---------------------------------------------

    async def encrypt(
        self,
        key_id: KeyId | str,
        data: Value,
        *,
        context: bytes | None = None,
        envelope: bool = True,
        searchable: bool = False,
    ) -> bytes:
        return await self._call(
            self.sync.encrypt,
            key_id,
            data,
            context=context,
            envelope=envelope,
            searchable=searchable,
        )

    async def encrypt_many(
        self,
        key_id: KeyId | str,
        values: Iterable[Value],
        *,
        context: bytes | None = None,
        envelope: bool = True,
        searchable: bool = False,
    ) -> builtins.list[bytes]:
        return await self._call(
            self.sync.encrypt_many,
            key_id,
            builtins.list(values),
            context=context,
            envelope=envelope,
            searchable=searchable,
        )

    async def decrypt(
        self,
        key_id: KeyId | str,
        data: Value,
        *,
        context: bytes | None = None,
        searchable: bool = False,
    ) -> bytes:
        return await self._call(
            self.sync.decrypt, key_id, data, context=context, searchable=searchable
        )

    async def decrypt_many(
        self,
        key_id: KeyId | str,
        values: Iterable[Value],
        *,
        context: bytes | None = None,
        searchable: bool = False,
    ) -> builtins.list[bytes]:
        return await self._call(
            self.sync.decrypt_many,
            key_id,
            builtins.list(values),
            context=context,
            searchable=searchable,
        )

    async def search_hash(self, client_id: str, data: Value) -> bytes:
        return await self._call(self.sync.search_hash, client_id, data)

    async def make_poison_record(
        self, kind: str = "acrastruct", data_length: int | None = None
    ) -> bytes:
        return await self._call(self.sync.make_poison_record, kind, data_length)

    async def is_poison_record(self, data: Value) -> bool:
        return await self._call(self.sync.is_poison_record, data)

    # -- the master key ----------------------------------------------------------------

    async def fingerprint(self) -> str:
        """The master key's fingerprint (loads the key, in a thread, on first use)."""
        return await self._call(lambda: self.sync.fingerprint)

    async def reload_master_key(self) -> bool:
        return await self._call(self.sync.reload_master_key)

    # -- lifetime ------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the manager (wipes keys and cache) once its running operations are done."""
        executor, manager = self._executor, self.sync

        def close() -> None:
            executor.shutdown(wait=True)
            manager.close()

        await _run(None, close)

    async def __aenter__(self) -> AsyncKeyManager:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<AsyncKeyManager {self.sync!r}>"


class _AsyncKeyUse:
    """What :meth:`AsyncKeyManager.use` returns: an async context manager."""

    __slots__ = ("_index", "_key_id", "_manager", "_secret")

    def __init__(self, manager: AsyncKeyManager, key_id: KeyId | str, index: int) -> None:
        self._manager = manager
        self._key_id = key_id
        self._index = index
        self._secret: SecretBytes | None = None

    async def __aenter__(self) -> SecretBytes:
        manager = self._manager
        sync = manager.sync
        secret = sync.cached(self._key_id, self._index)  # inline: no I/O, no thread hop
        if secret is not None:
            sync.audit("key_used", key_id_of(self._key_id), self._index)
        else:
            use = sync.use(self._key_id, self._index)
            secret = await _run(manager._executor, use.__enter__, discard=_wipe)
        self._secret = secret
        return secret

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._secret is not None:
            self._secret.wipe()
            self._secret = None
        scell.scrub()  # the application's use of the key left it in this thread's registers


class _Opening:
    """``open_keystore(...)``: ``await`` it, or ``async with`` it (closed at the end)."""

    def __init__(self, settings: Settings | None, kwargs: dict[str, Any]) -> None:
        self._settings = settings
        self._kwargs = kwargs
        self._opened: AsyncKeyManager | None = None

    async def _open(self) -> AsyncKeyManager:
        manager = await _run(None, _open_keystore, self._settings, discard=_close, **self._kwargs)
        return AsyncKeyManager(manager)

    def __await__(self) -> Any:
        return self._open().__await__()

    async def __aenter__(self) -> AsyncKeyManager:
        self._opened = await self._open()
        return self._opened

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        opened, self._opened = self._opened, None
        if opened is not None:
            await opened.aclose()


def open_keystore(settings: Settings | None = None, **kwargs: Any) -> _Opening:
    """:func:`keyloader.api.open_keystore` for asyncio: ``async with`` or ``await`` it.

    Takes the same arguments (``settings``, or the keyword arguments of
    :func:`keyloader.resolve`, and ``plugin_manager``). Opening runs in a thread.
    """
    return _Opening(settings, kwargs)


async def load_master_key(settings: Settings | None = None, **kwargs: Any) -> MasterKey:
    """:func:`keyloader.api.load_master_key` in a thread (a Vault or KMS load blocks)."""
    return await _run(None, _load_master_key, settings, discard=lambda key: key.close(), **kwargs)


async def rewrap_keystore(settings: Settings, *, to_provider: str, **kwargs: Any) -> RewrapReport:
    """:func:`keyloader.api.rewrap_keystore` in a thread (resumable, as always)."""
    return await _run(None, _rewrap_keystore, settings, to_provider=to_provider, **kwargs)


async def export_keystore(
    settings: Settings,
    key_ids: Iterable[str] | None,
    output: str | Path,
    secret_output: str | Path,
    **kwargs: Any,
) -> ExportReport | RingExportReport:
    """:func:`keyloader.api.export_keystore` in a thread."""
    return await _run(None, _export_keystore, settings, key_ids, output, secret_output, **kwargs)


async def import_keystore(
    settings: Settings, input: str | Path, secret: str | Path, **kwargs: Any
) -> ImportReport | RingImportReport:
    """:func:`keyloader.api.import_keystore` in a thread."""
    return await _run(None, _import_keystore, settings, input, secret, **kwargs)
