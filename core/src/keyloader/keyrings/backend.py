"""What the keystore v2 engine needs from where rings live: :class:`RingBackend`.

Acra keeps a v2 keystore behind one backend interface (``keystore/v2/keystore/
filesystem/backend/api``) with two implementations, a directory and Redis. keyloader
does the same: :class:`~keyloader.keyrings.directory.RingDirectory` for a directory,
``keyloader_redis.rings.RedisRings`` for Redis, and any store plugin may offer one
from :meth:`keyloader.stores.KeyStore.key_rings`. The contract every backend passes
is :class:`keyloader.testing.RingBackendContract`.
"""

from __future__ import annotations

from collections.abc import Hashable
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

__all__ = ["VERSION_TEXT", "RingBackend"]

VERSION_TEXT = b"Acra Keystore v2"
"""What Acra's ``version`` file (or Redis key) holds in a keystore v2."""


@runtime_checkable
class RingBackend(Protocol):
    """The rings of one keystore v2, by ring path (``client/<id>/storage-sym``).

    Every failure is a :class:`~keyloader.errors.KeyStoreError`. Rings are opaque
    bytes here; the engine signs, verifies and parses them.
    """

    name: str
    """The store's name in audit events and listings (``filesystem``, ``redis``)."""

    @property
    def location(self) -> str:
        """Where the keystore is, for messages (a path, or a URL without secrets)."""
        ...

    def locked(self, *, exclusive: bool) -> AbstractContextManager[None]:
        """Acra's lock of this keystore: ``exclusive`` around every read-modify-write, so
        keyloader and Acra exclude each other; shared (which a backend may make a no-op
        when a single read is atomic) around reads. Re-entrant within one thread; a write
        inside a read of the same backend is refused."""
        ...

    def read(self, path: str) -> bytes | None:
        """The bytes of ring ``path``, or None if it does not exist."""
        ...

    def write(self, path: str, data: bytes, *, sync_directory: bool = True) -> None:
        """Replace ring ``path`` with ``data`` atomically: a reader sees the old ring or the
        new one. Called with the exclusive lock held. ``sync_directory=False`` lets a
        caller that writes many rings make them durable once (a directory backend); a
        backend whose writes are durable at once ignores it."""
        ...

    def list(self) -> list[str]:
        """Every ring path, in Acra's listing order."""
        ...

    def revision(self, path: str) -> Hashable | None:
        """A token that changes whenever ring ``path`` is written (by anyone), or None
        if the ring does not exist. Called on every cached use: keep it to one stat or
        one round trip."""
        ...

    def where(self, path: str) -> str:
        """Where ring ``path`` lives, for listings and messages (a file, a Redis key)."""
        ...

    def close(self) -> None:
        """Release files or connections."""
        ...
