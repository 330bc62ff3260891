"""The Redis connection of the ``redis`` store: one client, bounded retries, typed errors.

redis-py is imported when the store first connects. Its own retries are off:
:meth:`RedisConnection.run` retries connection errors and timeouts a bounded
number of times (write scripts are told it is a retry, so they stay
idempotent) and turns every failure into a keyloader error that names the
server, never the password.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from types import ModuleType
from typing import Any, TypeVar

from keyloader.errors import AuthenticationError, ConfigError, KeyloaderError, KeyStoreError

from . import scripts
from .options import SENTINEL_PASSWORD_ENV, RedisSettings

__all__ = ["RETRIES", "RETRY_BACKOFF", "RedisConnection"]

log = logging.getLogger("keyloader.stores.redis")

T = TypeVar("T")

RETRIES = 2
"""Retries of one command after a connection error or timeout (so 3 attempts)."""
RETRY_BACKOFF = 0.05
"""Seconds before the first retry; doubled for each next one."""
FAILOVER_BACKOFF_CAP = 0.5
"""The longest pause between two attempts while a Sentinel failover is under way."""

_SCRIPTS = (
    scripts.CREATE,
    scripts.PUT,
    scripts.ROTATE,
    scripts.DELETE,
    scripts.PUT_HISTORY,
    scripts.PUT_MANY,
    scripts.PUT_RING,
    scripts.RENEW,
    scripts.RELEASE,
    scripts.REVISION,
    scripts.SCAN_NAMES,
)


class RedisConnection:
    """A redis-py client (a connection pool) for one store, created on first use."""

    def __init__(self, settings: RedisSettings, store: str) -> None:
        self.settings = settings
        self.store = store
        self._redis: ModuleType | None = None
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._sentinel: Any = None
        self._reader: Any = None

    @property
    def errors(self) -> Any:
        """``redis.exceptions`` (after the first connection)."""
        assert self._redis is not None
        return self._redis.exceptions

    def client(self) -> Any:
        """The client of the master, connecting on first use."""
        client = self._client
        if client is not None:
            return client
        with self._lock:
            if self._client is None:
                import redis
                from redis.backoff import NoBackoff
                from redis.retry import Retry

                settings = self.settings
                kwargs: dict[str, Any] = {
                    "db": settings.db,
                    "username": settings.username,
                    "password": settings.password,
                    "socket_timeout": settings.timeout,
                    "socket_connect_timeout": settings.timeout,
                    "retry": Retry(NoBackoff(), 0),  # retries are ours: bounded, write-aware
                    "decode_responses": False,
                }
                tls = {
                    "ssl": True,
                    "ssl_cert_reqs": "required",
                    "ssl_ca_certs": settings.ca_cert,
                    "ssl_certfile": settings.client_cert,
                    "ssl_keyfile": settings.client_key,
                }
                if settings.tls:
                    kwargs.update(tls)
                if settings.sentinels:
                    from redis.sentinel import Sentinel

                    sentinel_kwargs = {
                        "socket_timeout": settings.timeout,
                        "socket_connect_timeout": settings.timeout,
                        "username": settings.sentinel_username,
                        "password": settings.sentinel_password,
                        "retry": Retry(NoBackoff(), 0),
                        **(tls if settings.sentinel_tls else {}),
                    }
                    self._sentinel = Sentinel(
                        list(settings.sentinels), sentinel_kwargs=sentinel_kwargs
                    )
                    client = self._sentinel.master_for(settings.service_name, **kwargs)
                    if settings.read_from_replicas:
                        self._reader = self._sentinel.slave_for(settings.service_name, **kwargs)
                elif settings.cluster:
                    from redis.cluster import RedisCluster

                    kwargs.pop("db")
                    client = RedisCluster(host=settings.host, port=settings.port, **kwargs)
                else:
                    client = redis.Redis(host=settings.host, port=settings.port, **kwargs)
                self._scripts = {source: client.register_script(source) for source in _SCRIPTS}
                self._redis = redis
                self._client = client
        return self._client

    def reader(self) -> Any:
        """The client reads go to: a replica with ``read_from_replicas``, else the master."""
        client = self.client()
        return self._reader if self._reader is not None else client

    def node_client(self, client: Any, key: str) -> Any:
        """The client that talks to the node owning ``key``'s slot (a Cluster), or ``client``.

        Writes send their script and a ``WAIT`` down one connection of that node.
        """
        if not self.settings.cluster:
            return client
        return client.get_redis_connection(client.get_node_from_key(key))

    def wanted_acks(self, client: Any) -> int:
        """How many replicas must acknowledge a write (``wait_replicas``; auto: 1 if any)."""
        wanted = self.settings.wait_replicas
        if wanted is not None:
            return wanted
        replicas = client.info("replication").get("connected_slaves", 0)
        return 1 if int(replicas) > 0 else 0

    def script(self, source: str) -> Any:
        """The registered script of ``source`` (connect first)."""
        return self._scripts[source]

    def run(self, action: str, call: Callable[[Any, int], T], *, read: bool = False) -> T:
        """``call(client, attempt)`` with bounded retries on connection errors; typed errors.

        ``read``: the call only reads (it may go to a replica). In Sentinel mode a
        lost master (connection errors, ``READONLY`` from a demoted one) is retried
        until ``failover_timeout`` runs out, asking the sentinels again each time.
        """
        attempt = 0
        started = time.monotonic()
        while True:
            client = self.reader() if read else self.client()
            try:
                return call(client, attempt)
            except KeyloaderError:
                raise
            except Exception as exc:
                errors = self.errors
                if isinstance(exc, errors.AuthenticationError) or (
                    isinstance(exc, errors.ResponseError)
                    and str(exc).startswith(("NOAUTH", "WRONGPASS", "wrong number of arguments"))
                ):
                    raise self._auth_error(action) from exc
                if self.settings.cluster and _moved(exc):
                    with suppress(Exception):  # the slot moved meanwhile: learn the new layout
                        self.client().nodes_manager.initialize()
                    if attempt < RETRIES:
                        attempt += 1
                        continue
                if self.settings.sentinels and self._failing_over(exc, client):
                    if time.monotonic() - started < self.settings.failover_timeout:
                        time.sleep(min(FAILOVER_BACKOFF_CAP, RETRY_BACKOFF * 2**attempt))
                        attempt += 1
                        continue
                    raise KeyStoreError(
                        f"cannot {action}: no Redis master for {self.settings.service_name!r} "
                        f"answered within failover_timeout ({self.settings.failover_timeout:g} s, "
                        f"{attempt + 1} attempts) through the sentinels of "
                        f"{self.settings.display_url} ({_short(exc)}); check that the "
                        "sentinels run and agree on a master"
                    ) from None
                transient = isinstance(exc, errors.ConnectionError | errors.TimeoutError)
                tls_error: KeyloaderError | None = None
                uses_tls = self.settings.tls or self.settings.sentinel_tls
                if uses_tls and isinstance(exc, errors.ConnectionError):
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
                        f"({self.scrub(exc)}; {attempt + 1} attempts); check the 'url' option "
                        "and that the server runs"
                    ) from exc
                if isinstance(exc, errors.RedisError):
                    raise KeyStoreError(
                        f"cannot {action}: Redis at {self.settings.display_url} answered "
                        f"{self.scrub(exc)}"
                    ) from exc
                raise

    def _failing_over(self, exc: BaseException, client: Any) -> bool:
        """Whether ``exc`` says the master is changing (retry), not a configuration mistake."""
        from redis.sentinel import MasterNotFoundError

        errors = self.errors
        if isinstance(exc, MasterNotFoundError):
            said = str(exc)
            if any(word in said for word in _AUTH_WORDS):
                raise AuthenticationError(
                    f"the sentinels of {self.settings.display_url} refused authentication: set "
                    f"{SENTINEL_PASSWORD_ENV} or 'sentinel_password_file' (and "
                    "'sentinel_username' for an ACL user)"
                ) from None
            if "certificate verify failed" in said.lower():
                raise KeyStoreError(
                    f"TLS with the sentinels of {self.settings.display_url} failed: their "
                    "certificate was refused; set 'ca_cert' to the CA that signed it and use the "
                    "host names the certificate names in 'sentinels'"
                ) from None
            if self._service_known():
                return True
            raise KeyStoreError(
                f"no sentinel of {self.settings.display_url} monitors a master named "
                f"{self.settings.service_name!r}: check 'service_name' (sentinel monitor "
                "<name> ...)"
            ) from exc
        readonly = isinstance(exc, errors.ReadOnlyError) or (
            isinstance(exc, errors.ResponseError) and str(exc).startswith("READONLY")
        )
        if readonly or isinstance(exc, errors.ConnectionError | errors.TimeoutError):
            with suppress(Exception):
                client.connection_pool.disconnect()  # a demoted master: ask the sentinels again
            return True
        return False

    def _service_known(self) -> bool:
        """True if a sentinel knows the service (a failover may be under way), or none answers."""
        answered = False
        for sentinel in self._sentinel.sentinels:
            try:
                masters = sentinel.sentinel_masters()
            except Exception:  # noqa: S112 - an unreachable sentinel: ask the next one
                continue
            answered = True
            if self.settings.service_name in masters:
                return True
        return not answered

    def scrub(self, exc: BaseException) -> str:
        """The error's text with the password (if any) masked."""
        text = f"{type(exc).__name__}: {exc}"
        password = self.settings.password
        return text.replace(password, "***") if password else text

    def close(self) -> None:
        """Close the connection pool. Idempotent; a later call reconnects."""
        with self._lock:
            client, self._client = self._client, None
            reader, self._reader = self._reader, None
            sentinel, self._sentinel = self._sentinel, None
            self._scripts = {}
        for each in (client, reader):
            if each is not None:
                each.close()
                pool = getattr(each, "connection_pool", None)  # a RedisCluster has one per node
                if pool is not None:
                    pool.disconnect()
        if sentinel is not None:
            for node in sentinel.sentinels:
                node.close()

    def _tls_error(self, action: str, exc: BaseException) -> KeyloaderError | None:
        """The typed error when connection error ``exc`` comes from TLS, else None."""
        settings = self.settings
        for option in ("ca_cert", "client_cert", "client_key"):
            path = getattr(settings, option)
            if path is not None and not (os.path.isfile(path) and os.access(path, os.R_OK)):
                return ConfigError(
                    f"option {option!r} of key store {self.store!r}: {path} is not a readable "
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


_AUTH_WORDS = ("AuthenticationError", "NOAUTH", "WRONGPASS", "HELLO must be called")


def _short(exc: BaseException) -> str:
    """What went wrong, without the client reprs redis-py puts in sentinel errors."""
    from redis.sentinel import MasterNotFoundError

    if isinstance(exc, MasterNotFoundError):
        return "no sentinel named a master that answers"
    return type(exc).__name__


def _moved(exc: BaseException) -> bool:
    """A ``MOVED``/``ASK`` redirection that reached us (a write sent to one node's client)."""
    return str(exc).startswith(("MOVED ", "ASK ")) or type(exc).__name__ in (
        "MovedError",
        "AskError",
    )


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
