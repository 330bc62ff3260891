"""The ``redis`` key store: intermediate keys in Redis, in Acra's own Redis layout.

Layout, checked against Acra (cossacklabs/acra at 47f5b02,
``keystore/filesystem/redisStorage.go`` and ``server_keystore.go``): Acra's
keystore v1 runs its filesystem code over a Redis "storage" in which a file
path is a Redis key and a file is a string value holding
``base64.StdEncoding`` of the file's bytes (``WriteFile``/``ReadFile``).
Paths are ``filepath.Join(keys_dir, name)``, so the current key
``client1_storage_sym`` of keys dir ``.acrakeys`` is the Redis key
``.acrakeys/client1_storage_sym``, the poison key
``.acrakeys/.poison_key/poison_key_sym``, and a rotated key (``Link`` is not
supported in Redis, so Acra ``Copy``s it with ``SETNX``)
``.acrakeys/client1_storage_sym.old/2006-01-02T15:04:05.999999999``.
Directories are not stored: Acra lists one with ``SCAN <dir>/*``. Acra keeps no
modification time (``ModTime`` is zero), so :attr:`StoredBlob.created` is None.
Acra's own writes go through a temp key (``<path><random digits>``) renamed
over the key; they take no lock, so run Acra's key tools only when no
keyloader writer runs.

keyloader adds one helper key, the writer lock ``<keys_dir>.keyloader-lock``,
beside the prefix rather than under it: Acra lists and backs up a keys dir with
``SCAN <keys_dir>/*`` and reads every key it finds, so nothing of keyloader's
lives there. Each write is one Lua script that checks the
lock token, so writes are atomic and a writer that lost its lock writes
nothing. The connection (:mod:`.connection`), the writer lock (:mod:`.lease`)
and listing (:mod:`.listing`) live in their own modules; redis-py is imported
only when the store first connects.
"""

from __future__ import annotations

import base64
import binascii
import builtins
from collections.abc import Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from keyloader.errors import (
    ConfigError,
    IntegrityError,
    KeyExistsError,
    KeyNotFoundError,
)
from keyloader.providers import Option
from keyloader.stores.base import BlobWrite, KeyStore, StoredBlob
from keyloader.stores.names import (
    HISTORY_SUFFIX,
    MAX_BLOB_SIZE,
    VERSION_FILE,
    check_blob_size,
    check_history_timestamp,
    check_name,
    check_public_flag,
    lock_timeout_option,
)
from keyloader.stores.timestamps import next_history_timestamp

from . import scripts
from .connection import RedisConnection
from .lease import WriterLease
from .listing import SCAN_COUNT, Lister, blobs_from_names
from .options import OPTIONS, RedisSettings

if TYPE_CHECKING:
    from .rings import RedisRings

__all__ = ["LOCK_SUFFIX", "SCAN_COUNT", "RedisKeyStore", "lock_key_for"]

LOCK_SUFFIX = ".keyloader-lock"
"""The writer lock is ``<keys_dir>.keyloader-lock``: outside ``<keys_dir>/``, which Acra scans."""
_OK, _EXISTS, _NOTFOUND = b"OK", b"EXISTS", b"NOTFOUND"


class RedisKeyStore(KeyStore):
    """Named blobs as base64 string values in Redis, shared by every server that connects.

    Reads are one command each (``GET``; listing is ``SCAN``). Writes hold the
    writer lock: a Redis key set with ``SET NX PX`` to a random token, whose lease
    (:attr:`lock_lease` seconds) a background thread renews while it is held;
    crashed writers' locks expire after the lease. The lock is re-entrant within
    one store object and thread safe. :meth:`revision` is the SHA-1 of the stored
    value, so the engine's cache notices every change, Acra's included.
    """

    name: ClassVar[str] = "redis"
    description: ClassVar[str] = (
        "Keys in Redis, Acra's Redis layout (<keys_dir>/<name> = base64 blob); many "
        "application servers share them."
    )
    options: ClassVar[tuple[Option, ...]] = OPTIONS
    lock_lease: ClassVar[float] = 10.0
    """Seconds the writer lock lives without renewal (renewed every third of it)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.settings = RedisSettings.from_options(self.config)
        self.lock_timeout = lock_timeout_option(self.config, self.name)
        prefix = self.settings.prefix
        self._base = prefix if prefix.endswith("/") else prefix + "/"
        self._lock_key = lock_key_for(prefix)
        self._keys: dict[str, str] = {}
        self.connection = RedisConnection(self.settings, self.name)
        self.lister = Lister(self.connection, route=self._lock_key)
        self.lease = WriterLease(
            self.connection, self._lock_key, self.lock_lease, self.lock_timeout, self.location
        )

    # -- where things are ----------------------------------------------------------------

    @property
    def location(self) -> str:
        """The server URL (never a password) followed by the key prefix."""
        return f"{self.settings.display_url}/{self.settings.prefix}"

    @property
    def lock_key(self) -> str:
        """The Redis key of the writer lock."""
        return self._lock_key

    def redis_key(self, name: str, timestamp: str | None = None) -> str:
        """The Redis key of ``name`` (current blob), or of its history entry ``timestamp``."""
        if timestamp is not None:
            check_name(name)
            return f"{self._base}{name}{HISTORY_SUFFIX}/{check_history_timestamp(timestamp)}"
        key = self._keys.get(name)
        if key is None:
            check_name(name)
            key = self._base + name
            if len(self._keys) < 65536:
                self._keys[name] = key
        return key

    # -- reading ---------------------------------------------------------------------------

    def _decode(self, value: bytes, key: str) -> bytes:
        what, where = f"Redis key {key}", self.settings.display_url
        if len(value) > 2 * MAX_BLOB_SIZE:  # far past any key's base64: not decoded at all
            check_blob_size(len(value) * 3 // 4, what, where)
        try:
            data = base64.b64decode(value.translate(None, b"\r\n"), validate=True)
        except (binascii.Error, ValueError):
            raise IntegrityError(
                f"Redis key {key} on {self.settings.display_url} is not base64: the value is "
                "corrupt or was not written by keyloader or Acra; restore it from a backup, or "
                "destroy and regenerate that key"
            ) from None
        check_blob_size(len(data), what, where)
        return data

    def version(self) -> str | None:
        key = self._base + VERSION_FILE
        value = self.connection.run(f"read {key}", lambda client, _: client.get(key))
        if value is None:
            return None
        return bytes(value).decode("utf-8", errors="replace").strip()

    def get(self, name: str) -> bytes:
        key = self._keys.get(name) or self.redis_key(name)
        value = self.connection.run(f"read {name}", lambda client, _: client.get(key), read=True)
        if value is None:
            raise KeyNotFoundError(f"{name} does not exist in {self.location}")
        return self._decode(value, key)

    def get_history(self, name: str, timestamp: str) -> bytes:
        key = self.redis_key(name, timestamp)
        value = self.connection.run(f"read {key}", lambda client, _: client.get(key), read=True)
        if value is None:
            raise KeyNotFoundError(
                f"history entry {timestamp} of {name} does not exist in {self.location}"
            )
        return self._decode(value, key)

    def revision(self, name: str, timestamp: str | None = None) -> Hashable | None:
        key = self.redis_key(name, timestamp)
        script = scripts.REVISION
        token = self.connection.run(
            f"check {key}",
            lambda client, _: self.connection.script(script)(keys=[key], client=client),
            read=True,
        )
        return None if token is None else bytes(token)

    def list(self) -> builtins.list[StoredBlob]:
        names = self.lister.names(self._base, f"list {self.location}")
        return blobs_from_names(names, self._base)

    def _history_of(self, name: str) -> set[str]:
        prefix = f"{self._base}{name}{HISTORY_SUFFIX}/"
        return set(self.lister.names(prefix, f"list the history of {name}"))

    # -- writing ---------------------------------------------------------------------------

    def _write(
        self, action: str, source: str, keys: Sequence[str], values: Sequence[bytes]
    ) -> bytes:
        """Run write script ``source`` under the writer lock (:meth:`.WriterLease.write`)."""
        return self.lease.write(action, source, keys, values)

    def create(self, name: str, data: bytes, *, public: bool = False) -> None:
        check_public_flag(name, public)
        key = self.redis_key(name)
        result = self._write(f"create {name}", scripts.CREATE, [key], [base64.b64encode(data)])
        if result == _EXISTS:
            raise KeyExistsError(f"{name} already exists in {self.location}")

    def put(self, name: str, data: bytes, *, public: bool = False) -> None:
        check_public_flag(name, public)
        key = self.redis_key(name)
        self._write(f"write {name}", scripts.PUT, [key], [base64.b64encode(data)])

    def rotate(self, name: str, data: bytes) -> str:
        key = self.redis_key(name)
        value = base64.b64encode(data)
        with self.lock():
            taken = self._history_of(name)
            while True:
                timestamp = next_history_timestamp(taken)
                history_key = self.redis_key(name, timestamp)
                result = self._write(f"rotate {name}", scripts.ROTATE, [key, history_key], [value])
                if result == _NOTFOUND:
                    raise KeyNotFoundError(
                        f"{name} does not exist in {self.location}: nothing to rotate"
                    )
                if result == _OK:
                    return timestamp
                taken.add(timestamp)  # EXISTS: an entry appeared (Acra?); take a later one

    def delete(self, name: str) -> None:
        key = self.redis_key(name)
        if self._write(f"delete {name}", scripts.DELETE, [key], []) == _NOTFOUND:
            raise KeyNotFoundError(f"{name} does not exist in {self.location}")

    def put_history(self, name: str, timestamp: str, data: bytes) -> None:
        key = self.redis_key(name, timestamp)
        what = f"history entry {timestamp} of {name}"
        result = self._write(f"write {what}", scripts.PUT_HISTORY, [key], [base64.b64encode(data)])
        if result == _NOTFOUND:
            raise KeyNotFoundError(f"{what} does not exist in {self.location}")

    def create_history(self, name: str, timestamp: str, data: bytes) -> None:
        key = self.redis_key(name, timestamp)
        what = f"history entry {timestamp} of {name}"
        result = self._write(
            f"create {what}", scripts.CREATE_HISTORY, [key], [base64.b64encode(data)]
        )
        if result == _EXISTS:
            raise KeyExistsError(f"{what} already exists in {self.location}")

    def delete_history(self, name: str, timestamp: str) -> None:
        key = self.redis_key(name, timestamp)
        what = f"history entry {timestamp} of {name}"
        if self._write(f"delete {what}", scripts.DELETE, [key], []) == _NOTFOUND:
            raise KeyNotFoundError(f"{what} does not exist in {self.location}")

    def put_many(self, writes: Sequence[BlobWrite]) -> None:
        """All or nothing: every write is checked, then one Lua script sets them all."""
        keys: builtins.list[str] = []
        seen: set[str] = set()
        for write in writes:
            check_public_flag(write.name, write.public)
            key = self.redis_key(write.name, write.timestamp)
            if key in seen:
                what = write.name if write.timestamp is None else f"{write.name} {write.timestamp}"
                raise ConfigError(f"{what} is written twice in one batch: give each blob once")
            seen.add(key)
            keys.append(key)
        if not keys:
            return
        values = [base64.b64encode(write.data) for write in writes]
        self._write(f"write {len(keys)} blobs", scripts.PUT_MANY, keys, values)

    # -- keystore v2 -----------------------------------------------------------------------

    def key_rings(self) -> RedisRings | None:
        """The Acra keystore v2 under ``keys_dir`` (:class:`.RedisRings`), or None: see
        :meth:`keyloader.stores.KeyStore.key_rings`."""
        from .rings import RedisRings

        return RedisRings.of(self)

    # -- the writer lock -------------------------------------------------------------------

    @contextmanager
    def lock(self) -> Iterator[None]:
        """The writer lock in Redis, re-entrant in this object; waits up to ``lock_timeout``."""
        with self.lease.hold():
            yield

    def close(self) -> None:
        """Close the connection pool. Idempotent; a later call reconnects."""
        self.connection.close()


def lock_key_for(prefix: str) -> str:
    """The Redis key of the writer lock of keys dir ``prefix``."""
    return prefix.rstrip("/") + LOCK_SUFFIX
