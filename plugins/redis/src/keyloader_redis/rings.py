"""Acra keystore v2 in Redis, in the layout of Acra's own Redis backend.

Checked against cossacklabs/acra ``keystore/v2/keystore/filesystem/backend/redis.go`` and
the Redis dump Acra 0.96 wrote (``tests/acra_fixtures/redis``): under the root
``<keys_dir>``,

- ``<keys_dir>/version`` holds the 16 bytes ``Acra Keystore v2`` as they are (not base64);
- ring ``<path>`` is ``<keys_dir>/<path>.keyring``, a string holding
  ``base64.StdEncoding`` of the ring's DER;
- ``<keys_dir>/.lock`` is Acra's lock: ``SET NX`` with a 10 s expiry, taken by Acra's
  readers and writers alike (it has no shared mode), released with ``DEL``.

keyloader's writers take that same key with ``SET NX PX 10000`` (a random token instead of
Acra's ``locked``, so keyloader never deletes or renews a lock that is not its own; Acra
only tests that the key exists) and renew it while they hold it, so Acra and keyloader
exclude each other. Each ring write is one Lua script that checks the token, sets the ring
and drops a ``<ring>.new`` an Acra writer left when it died. keyloader's readers take no
lock: a ring is one Redis string, and both Acra (``SETNX`` of ``.new``, then ``RENAME``) and
keyloader replace it in one step, so a single ``GET`` never sees a torn ring.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from keyloader.errors import IntegrityError, KeyStoreError
from keyloader.keyrings.backend import VERSION_TEXT

from . import scripts
from .lease import WriterLease
from .listing import Lister

if TYPE_CHECKING:
    from .store import RedisKeyStore

__all__ = ["ACRA_LOCK_LEASE", "LOCK_KEY", "MAX_RING_SIZE", "RING_SUFFIX", "RedisRings"]

LOCK_KEY = ".lock"
VERSION_KEY = "version"
RING_SUFFIX = ".keyring"
_NEW_SUFFIX = ".new"
ACRA_LOCK_LEASE = 10.0
"""Seconds Acra's lock lives without renewal (Acra's ``maxLockDuration``)."""
MAX_RING_SIZE = 1 << 20
"""The largest ring read (a ring of thousands of keys is far below it)."""


class RedisRings:
    """The rings of the keystore v2 under ``store``'s ``keys_dir`` (a ``RingBackend``).

    Made by :meth:`RedisKeyStore.key_rings <keyloader_redis.RedisKeyStore.key_rings>`;
    shares the store's connection (Sentinel, Cluster, TLS and retries included) and
    closes it on :meth:`close`.
    """

    name = "redis"

    def __init__(self, store: RedisKeyStore) -> None:
        self.store = store
        self.connection = store.connection
        self.root = store.settings.prefix.rstrip("/")
        self._base = self.root + "/"
        self.lock_key = self._base + LOCK_KEY
        self.lease = WriterLease(
            self.connection, self.lock_key, ACRA_LOCK_LEASE, store.lock_timeout, store.location
        )
        self.lister = Lister(self.connection, route=self.lock_key)
        self._reading = threading.local()

    # -- finding and making one ------------------------------------------------------------

    @classmethod
    def of(cls, store: RedisKeyStore) -> RedisRings | None:
        """The keystore v2 of ``store``: when its ``version`` key says v2, or when nothing
        is under its ``keys_dir`` and its ``keystore_version`` option is v2 (then the
        ``version`` key is written, as Acra's ``CreateRedisBackend`` does); else None."""
        base = store.settings.prefix.rstrip("/") + "/"
        version_key = base + VERSION_KEY
        found = store.connection.run(
            f"read {version_key}", lambda client, _: client.get(version_key)
        )
        if found is not None:
            return cls(store) if bytes(found) == VERSION_TEXT else None
        if store.config.get("keystore_version") != "v2":
            return None
        if store.lister.names(base, f"list {store.location}"):
            return None  # keys of keystore v1 are there: the existing keystore wins
        store.connection.run(
            f"write {version_key}",
            lambda client, _: client.set(version_key, VERSION_TEXT, nx=True),
        )
        return cls.of(store)

    # -- RingBackend -----------------------------------------------------------------------

    @property
    def location(self) -> str:
        return self.store.location

    def where(self, path: str) -> str:
        return f"{self.store.settings.display_url}/{self._key(path)}"

    @contextmanager
    def locked(self, *, exclusive: bool) -> Iterator[None]:
        """Exclusive: Acra's lock, re-entrant in this object and renewed while held;
        waiting longer than ``lock_timeout`` is a ``KeyStoreError``. Shared: nothing to
        take (a ring is read in one ``GET``); a write inside it is refused, as on disk."""
        if not exclusive:
            depth = getattr(self._reading, "depth", 0)
            self._reading.depth = depth + 1
            try:
                yield
            finally:
                self._reading.depth = depth
            return
        writing = getattr(self._reading, "writing", False)
        if getattr(self._reading, "depth", 0) and not writing:
            raise KeyStoreError(f"{self.location}: a write inside a read of the same store")
        with self.lease.hold():
            self._reading.writing = True
            try:
                yield
            finally:
                self._reading.writing = writing

    def read(self, path: str) -> bytes | None:
        key = self._key(path)
        value = self.connection.run(
            f"read key ring {path}", lambda client, _: client.get(key), read=True
        )
        if value is None:
            return None
        return self._decode(bytes(value), key)

    def write(self, path: str, data: bytes, *, sync_directory: bool = True) -> None:
        """Replace ring ``path`` in one script under Acra's lock (``sync_directory`` is
        meaningless here: a write is on the server once the script answers)."""
        key = self._key(path)
        self.lease.write(
            f"write key ring {path}",
            scripts.PUT_RING,
            [key, key + _NEW_SUFFIX],
            [base64.b64encode(data)],
        )

    def list(self) -> list[str]:
        """Every ring path, sorted as Acra's ``ListAll`` sorts (by Redis key)."""
        names = self.lister.names(self._base, f"list {self.location}")
        rings = {name for name in names if name.endswith(RING_SUFFIX)}
        return [name[: -len(RING_SUFFIX)] for name in sorted(rings)]

    def revision(self, path: str) -> bytes | None:
        """The SHA-1 of the stored value (computed by the server), or None."""
        key = self._key(path)
        script = scripts.REVISION
        token = self.connection.run(
            f"check key ring {path}",
            lambda client, _: self.connection.script(script)(keys=[key], client=client),
            read=True,
        )
        return None if token is None else bytes(token)

    def close(self) -> None:
        self.store.close()

    # -- helpers ---------------------------------------------------------------------------

    def _key(self, path: str) -> str:
        parts = path.split("/")
        if not path or any(part in ("", ".", "..") for part in parts) or "\0" in path:
            raise KeyStoreError(f"invalid key ring path {path!r}")
        return self._base + path + RING_SUFFIX

    def _decode(self, value: bytes, key: str) -> bytes:
        where = self.store.settings.display_url
        if len(value) > 2 * MAX_RING_SIZE:
            raise KeyStoreError(f"Redis key {key} on {where} is too large for a key ring")
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise IntegrityError(
                f"Redis key {key} on {where} is not base64: the ring is corrupt or was not "
                "written by Acra or keyloader; restore it from a backup"
            ) from None
        if len(data) > MAX_RING_SIZE:
            raise KeyStoreError(f"Redis key {key} on {where} is too large for a key ring")
        return data

    def __repr__(self) -> str:
        return f"<RedisRings {self.location}>"
