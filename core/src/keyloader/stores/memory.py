"""The ``memory`` key store: the filesystem store's semantics in a dict, for tests and embedding."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import KeyExistsError, KeyNotFoundError, KeyStoreError
from ..providers import Option
from .base import BlobWrite, KeyStore, StoredBlob
from .names import (
    check_blob_size,
    check_history_timestamp,
    check_name,
    check_public_flag,
    lock_timeout_option,
    non_negative_seconds,
)
from .timestamps import next_history_timestamp, parse_history_timestamp

__all__ = ["MemoryKeyStore"]


@dataclass
class _Entry:
    """One name: its current blob (if any), when it was written, and its history."""

    current: bytes | None = None
    created: float | None = None
    history: dict[str, bytes] = field(default_factory=dict)


class MemoryKeyStore(KeyStore):
    """Named blobs in a dict of this process; nothing touches the disk.

    Same names, errors and history rules as the ``filesystem`` store. Thread
    safe: :meth:`lock` is a re-entrant ``threading.RLock`` and each write takes
    it too. :meth:`revision` is a counter bumped on every write of a slot.
    """

    name: ClassVar[str] = "memory"
    description: ClassVar[str] = "Keys in this process's memory only (tests, embedding)."
    options: ClassVar[tuple[Option, ...]] = (
        Option(
            "keys_dir",
            "A label shown in locations (memory:<keys_dir>); nothing is written there.",
            type="path",
            default=".acrakeys",
        ),
        Option(
            "lock_timeout",
            "Seconds a thread waits for the writer lock before giving up.",
            type="float",
            default=30.0,
            validator=non_negative_seconds,
        ),
    )

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.label = str(self.config.get("keys_dir") or ".acrakeys")
        self.lock_timeout = lock_timeout_option(self.config, self.name)
        self._writer = threading.RLock()
        self._data_lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._revisions: dict[tuple[str, str | None], int] = {}
        self._counter = itertools.count(1)

    @property
    def location(self) -> str:
        return f"memory:{self.label}"

    def version(self) -> str | None:
        return None

    # -- reading ---------------------------------------------------------------------------

    def list(self) -> list[StoredBlob]:
        with self._data_lock:
            blobs = [
                StoredBlob(
                    name,
                    entry.current is not None,
                    tuple(sorted(entry.history, key=lambda ts: (parse_history_timestamp(ts), ts))),
                    entry.created if entry.current is not None else None,
                )
                for name, entry in self._entries.items()
                if entry.current is not None or entry.history
            ]
        return sorted(blobs, key=lambda blob: blob.name)

    def get(self, name: str) -> bytes:
        check_name(name)
        with self._data_lock:
            entry = self._entries.get(name)
            if entry is None or entry.current is None:
                raise KeyNotFoundError(f"{name} does not exist in {self.location}")
            check_blob_size(len(entry.current), name, self.location)
            return entry.current

    def get_history(self, name: str, timestamp: str) -> bytes:
        check_name(name)
        check_history_timestamp(timestamp)
        with self._data_lock:
            entry = self._entries.get(name)
            if entry is None or timestamp not in entry.history:
                raise KeyNotFoundError(
                    f"history entry {timestamp} of {name} does not exist in {self.location}"
                )
            data = entry.history[timestamp]
            check_blob_size(len(data), f"history entry {timestamp} of {name}", self.location)
            return data

    @property
    def revision_is_cheap(self) -> bool:
        return True

    def revision(self, name: str, timestamp: str | None = None) -> Hashable | None:
        check_name(name)
        if timestamp is not None:
            check_history_timestamp(timestamp)
        # one dict lookup is atomic: no lock (a contended lock would hand the GIL around)
        return self._revisions.get((name, timestamp))

    # -- writing ---------------------------------------------------------------------------

    def _bump(self, name: str, timestamp: str | None = None) -> None:
        self._revisions[(name, timestamp)] = next(self._counter)

    def create(self, name: str, data: bytes, *, public: bool = False) -> None:
        check_name(name)
        check_public_flag(name, public)
        blob = bytes(data)
        with self.lock(), self._data_lock:
            entry = self._entries.setdefault(name, _Entry())
            if entry.current is not None:
                raise KeyExistsError(f"{name} already exists in {self.location}")
            entry.current, entry.created = blob, time.time()
            self._bump(name)

    def put(self, name: str, data: bytes, *, public: bool = False) -> None:
        check_name(name)
        check_public_flag(name, public)
        blob = bytes(data)
        with self.lock(), self._data_lock:
            entry = self._entries.setdefault(name, _Entry())
            entry.current, entry.created = blob, time.time()
            self._bump(name)

    def rotate(self, name: str, data: bytes) -> str:
        check_name(name)
        blob = bytes(data)
        with self.lock(), self._data_lock:
            entry = self._entries.get(name)
            if entry is None or entry.current is None:
                raise KeyNotFoundError(
                    f"{name} does not exist in {self.location}: nothing to rotate"
                )
            timestamp = next_history_timestamp(entry.history)
            entry.history[timestamp] = entry.current
            self._bump(name, timestamp)
            entry.current, entry.created = blob, time.time()
            self._bump(name)
            return timestamp

    def delete(self, name: str) -> None:
        check_name(name)
        with self.lock(), self._data_lock:
            entry = self._entries.get(name)
            if entry is None or entry.current is None:
                raise KeyNotFoundError(f"{name} does not exist in {self.location}")
            entry.current = entry.created = None
            self._revisions.pop((name, None), None)
            self._forget_if_empty(name, entry)

    def put_history(self, name: str, timestamp: str, data: bytes) -> None:
        check_name(name)
        check_history_timestamp(timestamp)
        blob = bytes(data)
        with self.lock(), self._data_lock:
            entry = self._entries.get(name)
            if entry is None or timestamp not in entry.history:
                raise KeyNotFoundError(
                    f"history entry {timestamp} of {name} does not exist in {self.location}"
                )
            entry.history[timestamp] = blob
            self._bump(name, timestamp)

    def create_history(self, name: str, timestamp: str, data: bytes) -> None:
        check_name(name)
        check_history_timestamp(timestamp)
        blob = bytes(data)
        with self.lock(), self._data_lock:
            entry = self._entries.setdefault(name, _Entry())
            if timestamp in entry.history:
                raise KeyExistsError(
                    f"history entry {timestamp} of {name} already exists in {self.location}"
                )
            entry.history[timestamp] = blob
            self._bump(name, timestamp)

    def put_many(self, writes: Sequence[BlobWrite]) -> None:
        """All or nothing: every write is checked, then all are applied at once."""
        for write in writes:
            check_name(write.name)
            check_public_flag(write.name, write.public)
            if write.timestamp is not None:
                check_history_timestamp(write.timestamp)
        blobs = [(write, bytes(write.data)) for write in writes]
        with self.lock(), self._data_lock:
            for write, blob in blobs:
                entry = self._entries.setdefault(write.name, _Entry())
                if write.timestamp is None:
                    entry.current, entry.created = blob, time.time()
                else:
                    entry.history[write.timestamp] = blob
                self._bump(write.name, write.timestamp)

    def delete_history(self, name: str, timestamp: str) -> None:
        check_name(name)
        check_history_timestamp(timestamp)
        with self.lock(), self._data_lock:
            entry = self._entries.get(name)
            if entry is None or timestamp not in entry.history:
                raise KeyNotFoundError(
                    f"history entry {timestamp} of {name} does not exist in {self.location}"
                )
            del entry.history[timestamp]
            self._revisions.pop((name, timestamp), None)
            self._forget_if_empty(name, entry)

    def _forget_if_empty(self, name: str, entry: _Entry) -> None:
        if entry.current is None and not entry.history:
            del self._entries[name]

    # -- the writer lock -------------------------------------------------------------------

    @contextmanager
    def lock(self) -> Iterator[None]:
        """A re-entrant ``threading.RLock``; waiting over ``lock_timeout`` is ``KeyStoreError``."""
        if not self._writer.acquire(timeout=self.lock_timeout):
            raise KeyStoreError(
                f"timed out after {self.lock_timeout:g} s waiting for the lock of "
                f"{self.location}: another thread holds it; let it finish or raise lock_timeout"
            )
        try:
            yield
        finally:
            self._writer.release()

    def __repr__(self) -> str:
        return f"<MemoryKeyStore {self.location}>"
