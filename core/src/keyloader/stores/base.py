"""The ``KeyStore`` contract: named blobs with history, atomic writes, a lock."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from ..errors import KeyExistsError, KeyStoreError
from ..providers import Option

__all__ = ["BlobWrite", "KeyStore", "StoredBlob"]

if TYPE_CHECKING:
    from ..keyrings.backend import RingBackend


class StoredBlob(NamedTuple):
    """One name in a store: whether a current blob exists, and its history.

    ``history`` holds the history timestamps (Go layout, docs/format.md, Key directory), oldest
    first. ``created`` is the current blob's modification time (seconds since
    the epoch) when the store knows it. A named tuple, not a dataclass: a
    listing builds one per key, and tens of thousands of frozen dataclasses
    cost more than the store's own reads.
    """

    name: str
    current: bool
    history: tuple[str, ...] = ()
    created: float | None = None


@dataclass(frozen=True)
class BlobWrite:
    """One write of :meth:`KeyStore.put_many`: a current blob, or a history entry.

    ``timestamp`` None writes the current blob of ``name``; a timestamp writes
    (creates or replaces) that history entry. ``public`` marks a ``.pub`` file.
    Its ``repr`` never shows ``data``.
    """

    name: str
    data: bytes = field(repr=False)
    timestamp: str | None = None
    public: bool = False


class KeyStore(ABC):
    """Where encrypted intermediate keys live, as opaque named blobs.

    Names are Acra v1 store names relative to the keys directory, with ``/``
    as separator (``client1_storage_sym``, ``.poison_key/poison_key_sym``,
    ``client1_storage.pub``). A store never interprets blobs. Every write is
    atomic: a reader sees the old blob or the new one, never a torn one.
    Methods that write must be called while holding :meth:`lock`, which
    serializes writers across processes. Missing names raise
    :class:`~keyloader.errors.KeyNotFoundError`; I/O failures
    :class:`~keyloader.errors.KeyStoreError`.

    The constructor receives the resolved options, including ``keys_dir``
    (the directory, or the key prefix of a remote store).
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config: dict[str, Any] = dict(config)

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the store is, for messages and listings (a path or URL without secrets)."""

    @abstractmethod
    def version(self) -> str | None:
        """The keystore version marker (Acra's ``version`` file), or None if absent."""

    @abstractmethod
    def list(self) -> list[StoredBlob]:
        """Every name with a current blob or history, sorted by name. Helper files excluded."""

    @abstractmethod
    def get(self, name: str) -> bytes:
        """The current blob of ``name``; ``KeyNotFoundError`` if there is none.

        A stored value larger than any key (:data:`keyloader.stores.MAX_BLOB_SIZE`, 4096
        bytes) is a ``KeyStoreError`` naming it, never returned: call
        :func:`keyloader.stores.check_blob_size` before reading or returning it. Writes
        accept any size (the engine never writes such a value; a store does not judge).
        """

    @abstractmethod
    def create(self, name: str, data: bytes, *, public: bool = False) -> None:
        """Store a new blob; raise ``KeyExistsError`` if ``name`` already has one.

        ``public`` marks a public key (``.pub``), stored world-readable.
        """

    @abstractmethod
    def put(self, name: str, data: bytes, *, public: bool = False) -> None:
        """Atomically replace (or create) the current blob, keeping no history."""

    @abstractmethod
    def rotate(self, name: str, data: bytes) -> str:
        """Move the current blob into history and put ``data`` as current.

        Order (docs/format.md, Key directory): new blob written and synced, current blob linked into
        history, new blob renamed over the current one. Returns the history
        timestamp. Raises ``KeyNotFoundError`` when there is no current blob.
        """

    @abstractmethod
    def delete(self, name: str) -> None:
        """Delete the current blob, keeping its history."""

    @abstractmethod
    def get_history(self, name: str, timestamp: str) -> bytes:
        """One history blob of ``name``; the size limit of :meth:`get` applies."""

    @abstractmethod
    def put_history(self, name: str, timestamp: str, data: bytes) -> None:
        """Atomically replace an existing history blob (used by rewrap)."""

    @abstractmethod
    def delete_history(self, name: str, timestamp: str) -> None:
        """Delete one history blob."""

    def create_history(self, name: str, timestamp: str, data: bytes) -> None:
        """Create history entry ``timestamp`` of ``name`` (used by import).

        Raises ``KeyExistsError`` if that entry exists. The default raises
        ``KeyStoreError``: a store that can restore history entries overrides it.
        """
        raise KeyStoreError(
            f"key store {self.name!r} cannot create history entries ({name} at {timestamp}): "
            "import only current keys into it, or use a store that implements create_history"
        )

    def put_many(self, writes: Sequence[BlobWrite]) -> None:
        """Write several blobs (current or history), replacing existing ones.

        Stores that can make the batch all-or-nothing do so (the ``filesystem``
        store stages the files and renames them in; a crash is finished by the
        next writer). The default writes one blob at a time under :meth:`lock`
        with :meth:`put`, :meth:`put_history` and :meth:`create_history`: each
        write is atomic, the batch is not.
        """
        with self.lock():
            for write in writes:
                if write.timestamp is None:
                    self.put(write.name, write.data, public=write.public)
                    continue
                try:
                    self.create_history(write.name, write.timestamp, write.data)
                except KeyExistsError:
                    self.put_history(write.name, write.timestamp, write.data)

    @abstractmethod
    def lock(self) -> AbstractContextManager[None]:
        """The writer lock; waiting longer than ``lock_timeout`` is ``KeyStoreError``."""

    @property
    def revision_is_cheap(self) -> bool:
        """Whether :meth:`revision` answers from memory or a local disk, never a network.

        ``keyloader.aio`` then serves a cached key without leaving the event loop.
        The default, False, sends every use to a worker thread.
        """
        return False

    def revision(self, name: str, timestamp: str | None = None) -> Hashable | None:
        """A cheap token that changes when the blob changes, or None if unknown.

        The engine's cache revalidates entries with it; stores returning None
        are revalidated by ``cache_ttl`` instead.
        """
        return None

    def key_rings(self) -> RingBackend | None:
        """This store as an Acra keystore v2 backend, or None (the default: keystore v1).

        A store that can hold Acra's signed key rings returns its backend
        (:class:`~keyloader.keyrings.backend.RingBackend`) when its keystore is v2 (the
        ``version`` marker reads ``Acra Keystore v2``), or when it is new (empty) and its
        option ``keystore_version`` is ``v2`` (then it creates the marker, as Acra does).
        An existing keystore's own version always wins. ``open_keystore`` then runs the
        v2 engine on the backend, which owns the store's resources from then on: closing
        the backend closes them.
        """
        return None

    def close(self) -> None:
        """Release files or connections."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.location}>"
