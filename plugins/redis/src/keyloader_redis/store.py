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

keyloader adds one helper key, the writer lock ``<keys_dir>/.keyloader.lock``
(no ``_``, does not end in ``old``: Acra's listing ignores it, as it does the
filesystem store's lock file). Each write is one Lua script that checks the
lock token, so writes are atomic and a writer that lost its lock writes
nothing. This module imports redis-py only when the store first connects.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import itertools
import logging
import os
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from types import ModuleType
from typing import Any, ClassVar, TypeVar

from keyloader.errors import (
    AuthenticationError,
    ConfigError,
    IntegrityError,
    KeyExistsError,
    KeyloaderError,
    KeyNotFoundError,
    KeyStoreError,
)
from keyloader.providers import Option
from keyloader.stores.base import BlobWrite, KeyStore, StoredBlob
from keyloader.stores.names import (
    HELPER_PREFIX,
    HISTORY_SUFFIX,
    POISON_DIR,
    VERSION_FILE,
    check_history_timestamp,
    check_name,
    check_public_flag,
    lock_timeout_option,
)
from keyloader.stores.timestamps import next_history_timestamp, parse_history_timestamp

from . import scripts
from .options import OPTIONS, RedisSettings

__all__ = ["LOCK_NAME", "RedisKeyStore"]

log = logging.getLogger("keyloader.stores.redis")

T = TypeVar("T")

LOCK_NAME = ".keyloader.lock"
RETRIES = 2
"""Retries of one command after a connection error or timeout (so 3 attempts)."""
RETRY_BACKOFF = 0.05
"""Seconds before the first retry; doubled for each next one."""
SCAN_COUNT = 1000
_POLL_FIRST = 0.002
_POLL_MAX = 0.05
_OK, _EXISTS, _NOTFOUND, _LOCKLOST = b"OK", b"EXISTS", b"NOTFOUND", b"LOCKLOST"


def _glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis ``MATCH`` pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


_FLAT_HELPERS = frozenset({VERSION_FILE, POISON_DIR, ""})
_TRUE, _NO_HISTORY, _NONE = itertools.repeat(True), itertools.repeat(()), itertools.repeat(None)


def _is_helper(base: str) -> bool:
    """Keys of one directory level that are not key blobs: helpers, ``version``, ``*.old``."""
    return base.startswith(HELPER_PREFIX) or base.endswith(HISTORY_SUFFIX) or base in _FLAT_HELPERS


def _relative_names(keys: Sequence[bytes], skip: int) -> list[str]:
    """The UTF-8 keys without their first ``skip`` bytes; keys that are not UTF-8 are skipped."""
    joined = b"\0".join(key[skip:] for key in keys)
    if joined.count(b"\0") == len(keys) - 1:  # no NUL inside a key: decode all at once
        try:
            return joined.decode("utf-8").split("\0") if keys else []
        except UnicodeDecodeError:
            pass
    names = []
    for key in keys:
        try:
            names.append(key[skip:].decode("utf-8"))
        except UnicodeDecodeError:
            log.debug("ignoring Redis key %r: not UTF-8", key)
    return names


def _final_tls_failure(error: KeyloaderError, exc: BaseException) -> bool:
    """True when a TLS failure cannot go away by retrying: a missing TLS file or a refused
    certificate (a handshake cut short, e.g. by a restarting server, is retried)."""
    if isinstance(error, ConfigError):
        return True
    cause: BaseException | None = exc
    for _ in range(5):
        if cause is None or isinstance(cause, ssl.SSLCertVerificationError):
            break
        cause = cause.__cause__ or cause.__context__
    return isinstance(cause, ssl.SSLCertVerificationError)


def _scripts_refused(exc: BaseException) -> bool:
    """True when the listing script failed for a reason plain ``SCAN`` does not have.

    An ACL without ``EVALSHA`` (``NOPERM``), scripting disabled or renamed, a read-only
    replica that refuses scripts (``READONLY``, Redis 7): anything but an authentication
    failure, which plain ``SCAN`` would meet too.
    """
    return not str(exc).startswith(("NOAUTH", "WRONGPASS"))


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
        self._lock_key = self._base + LOCK_NAME
        self._keys: dict[str, str] = {}
        self._redis: ModuleType | None = None
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        self._server_scan = True  # False once the server refuses the listing script
        self._connect_lock = threading.Lock()
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._token: str | None = None
        self._renewer: threading.Thread | None = None
        self._renewer_stop = threading.Event()

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

    # -- the connection ------------------------------------------------------------------

    def _connect(self) -> Any:
        """The redis-py client (a connection pool), created on first use."""
        client = self._client
        if client is not None:
            return client
        with self._connect_lock:
            if self._client is None:
                import redis
                from redis.backoff import NoBackoff
                from redis.retry import Retry

                settings = self.settings
                kwargs: dict[str, Any] = {
                    "host": settings.host,
                    "port": settings.port,
                    "db": settings.db,
                    "username": settings.username,
                    "password": settings.password,
                    "socket_timeout": settings.timeout,
                    "socket_connect_timeout": settings.timeout,
                    "retry": Retry(NoBackoff(), 0),  # retries are ours: bounded, write-aware
                    "decode_responses": False,
                }
                if settings.tls:
                    kwargs.update(
                        ssl=True,
                        ssl_cert_reqs="required",
                        ssl_ca_certs=settings.ca_cert,
                        ssl_certfile=settings.client_cert,
                        ssl_keyfile=settings.client_key,
                    )
                client = redis.Redis(**kwargs)
                self._scripts = {
                    source: client.register_script(source)
                    for source in (
                        scripts.CREATE,
                        scripts.PUT,
                        scripts.ROTATE,
                        scripts.DELETE,
                        scripts.PUT_HISTORY,
                        scripts.PUT_MANY,
                        scripts.RENEW,
                        scripts.RELEASE,
                        scripts.REVISION,
                        scripts.SCAN_NAMES,
                    )
                }
                self._redis = redis
                self._client = client
        return self._client

    def _run(self, action: str, call: Callable[[Any, int], T]) -> T:
        """``call(client, attempt)`` with bounded retries on connection errors; typed errors."""
        attempt = 0
        while True:
            client = self._connect()
            try:
                return call(client, attempt)
            except KeyloaderError:
                raise
            except Exception as exc:
                redis = self._redis
                assert redis is not None
                errors = redis.exceptions
                if isinstance(exc, errors.AuthenticationError) or (
                    isinstance(exc, errors.ResponseError)
                    and str(exc).startswith(("NOAUTH", "WRONGPASS", "wrong number of arguments"))
                ):
                    raise self._auth_error(action) from exc
                transient = isinstance(exc, errors.ConnectionError | errors.TimeoutError)
                tls_error: KeyloaderError | None = None
                if self.settings.tls and isinstance(exc, errors.ConnectionError):
                    tls_error = self._tls_error(action, exc)
                    if tls_error is not None and _final_tls_failure(tls_error, exc):
                        raise tls_error from exc  # retrying cannot change the certificate
                if transient and attempt < RETRIES:
                    time.sleep(RETRY_BACKOFF * 2**attempt)
                    attempt += 1
                    continue
                if tls_error is not None:
                    raise tls_error from exc
                if isinstance(exc, errors.TimeoutError):
                    raise KeyStoreError(
                        f"cannot {action}: Redis at {self.settings.display_url} did not answer "
                        f"within {self.settings.timeout:g} s ({attempt + 1} attempts); check that "
                        "the server is up and reachable, or raise the 'timeout' option"
                    ) from exc
                if transient:
                    raise KeyStoreError(
                        f"cannot {action}: Redis at {self.settings.display_url} is unreachable "
                        f"({self._scrub(exc)}; {attempt + 1} attempts); check the 'url' option "
                        "and that the server runs"
                    ) from exc
                if isinstance(exc, errors.RedisError):
                    raise KeyStoreError(
                        f"cannot {action}: Redis at {self.settings.display_url} answered "
                        f"{self._scrub(exc)}"
                    ) from exc
                raise

    def _tls_error(self, action: str, exc: BaseException) -> KeyloaderError | None:
        """The typed error when connection error ``exc`` comes from TLS, else None."""
        settings = self.settings
        for option in ("ca_cert", "client_cert", "client_key"):
            path = getattr(settings, option)
            if path is not None and not (os.path.isfile(path) and os.access(path, os.R_OK)):
                return ConfigError(
                    f"option {option!r} of key store {self.name!r}: {path} is not a readable "
                    f"file, so keyloader cannot {action} on {settings.display_url}; point "
                    f"{option} at the PEM file"
                )
        cause: BaseException | None = exc
        for _ in range(5):  # redis-py raises its ConnectionError while handling the SSLError
            if cause is None or isinstance(cause, ssl.SSLError):
                break
            cause = cause.__cause__ or cause.__context__
        if not isinstance(cause, ssl.SSLError):
            return None
        where = f"cannot {action}: TLS with Redis at {settings.display_url} failed"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return KeyStoreError(
                f"{where}: the server certificate was refused ({cause.verify_message}); set "
                "'ca_cert' to the CA that signed it (default: the system CAs) and use a host in "
                "'url' that the certificate names"
            )
        return KeyStoreError(
            f"{where} ({cause.reason or cause}); if the server requires client certificates, "
            "set 'client_cert' and 'client_key' to ones its CA signed; check that it speaks TLS "
            "on this port and that 'ca_cert' is a PEM CA bundle"
        )

    def _scrub(self, exc: BaseException) -> str:
        """The error's text with the password (if any) masked."""
        text = f"{type(exc).__name__}: {exc}"
        password = self.settings.password
        return text.replace(password, "***") if password else text

    def _auth_error(self, action: str) -> AuthenticationError:
        user = self.settings.username or "default"
        if self.settings.password is None:
            hint = (
                "the server requires a password: set KEYLOADER_STORE_REDIS_PASSWORD or the "
                "'password_file' option"
            )
        else:
            hint = (
                "check the password (KEYLOADER_STORE_REDIS_PASSWORD, 'password' or "
                "'password_file') and the 'username' option"
            )
        return AuthenticationError(
            f"cannot {action}: Redis at {self.settings.display_url} refused authentication "
            f"as user {user!r}; {hint}"
        )

    def _script(self, client: Any, source: str) -> Any:
        del client  # scripts are bound to the client at connect time
        return self._scripts[source]

    # -- reading ---------------------------------------------------------------------------

    def _decode(self, value: bytes, key: str) -> bytes:
        try:
            return base64.b64decode(value.translate(None, b"\r\n"), validate=True)
        except (binascii.Error, ValueError):
            raise IntegrityError(
                f"Redis key {key} on {self.settings.display_url} is not base64: the value is "
                "corrupt or was not written by keyloader or Acra; restore it from a backup, or "
                "destroy and regenerate that key"
            ) from None

    def version(self) -> str | None:
        key = self._base + VERSION_FILE
        value = self._run(f"read {key}", lambda client, _: client.get(key))
        if value is None:
            return None
        return bytes(value).decode("utf-8", errors="replace").strip()

    def get(self, name: str) -> bytes:
        key = self._keys.get(name) or self.redis_key(name)
        value = self._run(f"read {name}", lambda client, _: client.get(key))
        if value is None:
            raise KeyNotFoundError(f"{name} does not exist in {self.location}")
        return self._decode(value, key)

    def get_history(self, name: str, timestamp: str) -> bytes:
        key = self.redis_key(name, timestamp)
        value = self._run(f"read {key}", lambda client, _: client.get(key))
        if value is None:
            raise KeyNotFoundError(
                f"history entry {timestamp} of {name} does not exist in {self.location}"
            )
        return self._decode(value, key)

    def revision(self, name: str, timestamp: str | None = None) -> Hashable | None:
        key = self.redis_key(name, timestamp)
        script = scripts.REVISION
        token = self._run(
            f"check {key}", lambda client, _: self._script(client, script)(keys=[key])
        )
        return None if token is None else bytes(token)

    def _scan_names(self, prefix: str, what: str) -> builtins.list[str]:
        """The keys starting with ``prefix``, without it (UTF-8 only; other keys are skipped).

        One ``SCAN`` walk. Each step runs as the read-only :data:`scripts.SCAN_NAMES`, which
        answers one NUL-joined string instead of a thousand replies; where scripts are
        refused (an ACL without ``EVALSHA``) the store falls back to plain ``SCAN`` for good.
        """
        pattern = _glob_escape(prefix) + "*"

        def scan(client: Any, _: int) -> builtins.list[str]:
            if self._server_scan:
                try:
                    return self._scan_steps(client, pattern, prefix)
                except self._redis.exceptions.ResponseError as exc:  # type: ignore[union-attr]
                    if not _scripts_refused(exc):
                        raise
                    log.debug("listing with plain SCAN: scripts refused (%s)", self._scrub(exc))
                    self._server_scan = False
            keys = list(client.scan_iter(match=pattern, count=SCAN_COUNT))
            return _relative_names(keys, len(prefix.encode()))

        return self._run(what, scan)

    def _scan_steps(self, client: Any, pattern: str, prefix: str) -> builtins.list[str]:
        """The ``SCAN_NAMES`` walk; a step whose joined answer does not split cleanly (a key
        holding a NUL byte, or not UTF-8) is scanned again plainly, key by key."""
        script = self._scripts[scripts.SCAN_NAMES]
        skip = len(prefix)  # every key starts with the prefix: cut it from the decoded text
        names: builtins.list[str] = []
        cursor: bytes | int = 0
        while True:
            step = cursor
            cursor, count, joined = script(args=[step, pattern, SCAN_COUNT])
            keys: builtins.list[str] = []
            if count:
                with suppress(UnicodeDecodeError):
                    keys = bytes(joined).decode("utf-8").split("\0")
            if len(keys) == count:
                names += [key[skip:] for key in keys]
            else:
                plain = client.scan(cursor=step, match=pattern, count=SCAN_COUNT)[1]
                names += _relative_names(plain, len(prefix.encode()))
            if int(cursor) == 0:
                return names

    def list(self) -> builtins.list[StoredBlob]:
        names = self._scan_names(self._base, f"list {self.location}")
        # Most keys are current blobs at the top level: plain names, set-deduplicated (SCAN
        # may return a key twice); only the few that could be helpers are checked one by one.
        current = {name for name in names if "/" not in name}
        maybe_helpers = [
            name
            for name in current
            if "." in name or name in _FLAT_HELPERS  # helpers start with "." or end in ".old"
        ]
        current.difference_update([name for name in maybe_helpers if _is_helper(name)])
        history: dict[str, builtins.list[tuple[int, str]]] = {}
        for rel in [name for name in names if "/" in name]:
            head, _, tail = rel.partition("/")
            if head == POISON_DIR:
                head, slash, tail = tail.partition("/")
                if not slash:
                    if not _is_helper(head):
                        current.add(f"{POISON_DIR}/{head}")
                    continue
                head = f"{POISON_DIR}/{head}"
            if head.endswith(HISTORY_SUFFIX) and "/" not in tail:
                self._add_history(history, head[: -len(HISTORY_SUFFIX)], tail)
            else:
                log.debug("ignoring Redis key %r: not a key store name", self._base + rel)
        if not history:
            return list(
                map(StoredBlob._make, zip(sorted(current), _TRUE, _NO_HISTORY, _NONE, strict=False))
            )
        return [
            StoredBlob(
                name,
                name in current,
                tuple(ts for _, ts in sorted(history.get(name, ()))),
                None,
            )
            for name in sorted(current | history.keys())
        ]

    @staticmethod
    def _add_history(
        history: dict[str, builtins.list[tuple[int, str]]], name: str, timestamp: str
    ) -> None:
        try:
            check_name(name)
            parsed = parse_history_timestamp(timestamp)
        except (ConfigError, ValueError):
            log.warning("ignoring history entry %r of %r: not a history timestamp", timestamp, name)
            return
        history.setdefault(name, []).append((parsed, timestamp))

    def _history_of(self, name: str) -> set[str]:
        prefix = f"{self._base}{name}{HISTORY_SUFFIX}/"
        return set(self._scan_names(prefix, f"list the history of {name}"))

    # -- writing ---------------------------------------------------------------------------

    def _write(
        self, action: str, source: str, keys: Sequence[str], values: Sequence[bytes]
    ) -> bytes:
        """Run write script ``source`` under the lock; ``KeyStoreError`` if the lock was lost."""
        with self.lock():
            token = self._token
            lease = str(int(self.lock_lease * 1000))

            def call(client: Any, attempt: int) -> bytes:
                script = self._script(client, source)
                args = [token, lease, "1" if attempt else "0", *values]
                return bytes(script(keys=[self._lock_key, *keys], args=args))

            result = self._run(action, call)
        if result == _LOCKLOST:
            raise KeyStoreError(
                f"cannot {action}: the writer lock {self._lock_key} on "
                f"{self.settings.display_url} was lost (its lease expired or another writer "
                "took it); nothing was written, run the operation again"
            )
        return result

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

    # -- the writer lock -------------------------------------------------------------------

    @contextmanager
    def lock(self) -> Iterator[None]:
        """The writer lock in Redis, re-entrant in this object; waits up to ``lock_timeout``."""
        if not self._thread_lock.acquire(timeout=self.lock_timeout):
            raise KeyStoreError(
                f"timed out after {self.lock_timeout:g} s waiting for the lock of "
                f"{self.location}: another thread of this process holds it; let it finish or "
                "raise lock_timeout"
            )
        try:
            if self._depth == 0:
                self._acquire()
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._release()
        finally:
            self._thread_lock.release()

    def _acquire(self) -> None:
        token = secrets.token_hex(16)
        lease = int(self.lock_lease * 1000)
        lock_key = self._lock_key

        def take(client: Any, attempt: int) -> bool:
            if client.set(lock_key, token, nx=True, px=lease):
                return True
            # a retry: the first SET may have landed before the connection broke
            return attempt > 0 and client.get(lock_key) == token.encode()

        deadline = time.monotonic() + self.lock_timeout
        delay = _POLL_FIRST
        while not self._run(f"take the writer lock {lock_key}", take):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise KeyStoreError(
                    f"timed out after {self.lock_timeout:g} s waiting for the writer lock "
                    f"{lock_key} on {self.settings.display_url}: another writer holds it; let "
                    f"it finish or raise lock_timeout (a crashed writer's lock expires within "
                    f"{self.lock_lease:g} s)"
                )
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, _POLL_MAX)
        self._token = token
        self._renewer_stop = threading.Event()
        self._renewer = threading.Thread(
            target=self._renew,
            args=(token, self._renewer_stop),
            name=f"keyloader-redis-lock-{lock_key}",
            daemon=True,
        )
        self._renewer.start()

    def _renew(self, token: str, stop: threading.Event) -> None:
        """Renew the lease every third of it until ``stop``; give up once the lock is lost."""
        lease = int(self.lock_lease * 1000)
        while not stop.wait(self.lock_lease / 3):
            try:
                still_ours = self._run(
                    f"renew the writer lock {self._lock_key}",
                    lambda client, _: self._script(client, scripts.RENEW)(
                        keys=[self._lock_key], args=[token, lease]
                    ),
                )
            except KeyloaderError as exc:
                log.warning("%s", exc)
                continue
            if not still_ours:
                log.warning(
                    "the writer lock %s on %s was lost; writes under it will be refused",
                    self._lock_key,
                    self.settings.display_url,
                )
                return

    def _release(self) -> None:
        token, self._token = self._token, None
        renewer, self._renewer = self._renewer, None
        self._renewer_stop.set()
        if renewer is not None:
            renewer.join()
        try:
            self._run(
                f"release the writer lock {self._lock_key}",
                lambda client, _: self._script(client, scripts.RELEASE)(
                    keys=[self._lock_key], args=[token]
                ),
            )
        except KeyloaderError as exc:  # the lease expires on its own
            log.warning("%s (it expires within %g s)", exc, self.lock_lease)

    def close(self) -> None:
        """Close the connection pool. Idempotent; a later call reconnects."""
        with self._connect_lock:
            client, self._client = self._client, None
            self._scripts = {}
        if client is not None:
            client.close()
            client.connection_pool.disconnect()
