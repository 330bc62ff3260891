"""Options of the ``redis`` key store and their checked form, :class:`RedisSettings`.

Nothing here imports redis-py: options are declared, converted and checked
before any connection is made.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

from keyloader.errors import ConfigError
from keyloader.providers import Option

__all__ = ["DEFAULT_URL", "OPTIONS", "RedisSettings", "hash_tag", "key_prefix"]

STORE = "redis"
DEFAULT_URL = "redis://127.0.0.1:6379/0"
DEFAULT_TIMEOUT = 5.0
PASSWORD_ENV = "KEYLOADER_STORE_REDIS_PASSWORD"  # noqa: S105 - a variable name
SENTINEL_PASSWORD_ENV = "KEYLOADER_STORE_REDIS_SENTINEL_PASSWORD"  # noqa: S105 - a variable name
DEFAULT_SENTINEL_PORT = 26379


def _positive(value: float) -> None:
    if value <= 0:
        raise ValueError(f"must be more than 0 seconds, not {value}")


def _non_negative(value: float) -> None:
    if value < 0:
        raise ValueError(f"must be 0 or more seconds, not {value}")


def _wait_replicas(value: str) -> None:
    if value != "auto" and not (value.isdigit() and int(value) <= 64):
        raise ValueError(f"must be auto or a number of replicas from 0 to 64, not {value!r}")


def _db_number(value: int) -> None:
    if value < 0:
        raise ValueError(f"must be a database number, 0 or more, not {value}")


OPTIONS: tuple[Option, ...] = (
    Option(
        "url",
        "Redis server: redis://host:port/db or rediss://host:port/db (TLS); default "
        f"{DEFAULT_URL}. No password in the URL: use password_file or {PASSWORD_ENV}. "
        "Not with sentinels.",
    ),
    Option(
        "sentinels",
        "Redis Sentinel mode: the sentinels as host:port,host:port (instead of url); "
        "keyloader asks them for the current master of service_name.",
    ),
    Option("service_name", "The master's name in Sentinel (sentinel monitor <name> ...)."),
    Option("sentinel_username", "ACL user name on the sentinels, if they require one."),
    Option(
        "sentinel_password",
        f"Password of the sentinels. Secret: environment ({SENTINEL_PASSWORD_ENV}) or config "
        "file only.",
        secret=True,
    ),
    Option("sentinel_password_file", "File holding the sentinels' password.", type="path"),
    Option(
        "cluster",
        "Redis Cluster mode: url names any node (the seed). keys_dir must hold a hash tag, "
        "such as {acrakeys}, so one keystore sits in one hash slot.",
        type="bool",
        default=False,
    ),
    Option(
        "tls",
        "Sentinel mode: TLS to the data nodes, checked with ca_cert (client_cert and "
        "client_key for mutual TLS); otherwise rediss:// in url says it.",
        type="bool",
        default=False,
    ),
    Option(
        "sentinel_tls",
        "Sentinel mode: TLS to the sentinels too, with the same ca_cert, client_cert, client_key.",
        type="bool",
        default=False,
    ),
    Option(
        "read_from_replicas",
        "Sentinel mode: serve use()/read from a replica (may lag the master; see docs/redis.md).",
        type="bool",
        default=False,
    ),
    Option(
        "wait_replicas",
        "Replicas that must acknowledge each write (Redis WAIT): auto (1 when the master has "
        "replicas, else 0), or a number; 0 turns it off.",
        default="auto",
        validator=_wait_replicas,
    ),
    Option(
        "wait_timeout",
        "Seconds a write waits for its replica acknowledgements before it is reported unconfirmed.",
        type="float",
        default=2.0,
        validator=_positive,
    ),
    Option(
        "failover_timeout",
        "Sentinel mode: seconds a command keeps retrying while the master changes.",
        type="float",
        default=30.0,
        validator=_positive,
    ),
    Option(
        "db",
        "Database number; overrides the /db part of the URL (Acra: --redis_db_keys).",
        type="int",
        validator=_db_number,
    ),
    Option("username", "ACL user name (Redis 6+); without it the password is for 'default'."),
    Option(
        "password",
        "Password (Acra: --redis_password). Secret: environment or config file only.",
        secret=True,
    ),
    Option(
        "password_file",
        "File holding the password (one trailing newline is ignored).",
        type="path",
    ),
    Option("ca_cert", "CA bundle that verifies the server (rediss:// only).", type="path"),
    Option("client_cert", "Client certificate for mutual TLS (rediss:// only).", type="path"),
    Option("client_key", "Private key of client_cert (rediss:// only).", type="path"),
    Option(
        "timeout",
        "Seconds to connect and for each command before the server counts as unreachable.",
        type="float",
        default=DEFAULT_TIMEOUT,
        validator=_positive,
    ),
    Option(
        "keys_dir",
        "Key prefix: a key's Redis key is <keys_dir>/<name>, as Acra's --keys_dir.",
        default=".acrakeys",
    ),
    Option(
        "lock_timeout",
        "Seconds a writer waits for the writer lock (<keys_dir>.keyloader-lock; "
        "<keys_dir>/.lock on keystore v2) before giving up.",
        type="float",
        default=30.0,
        validator=_non_negative,
    ),
    Option(
        "keystore_version",
        "Acra keystore version of a new keys_dir: v1 (a key per Redis key) or v2 (signed "
        "key rings); an existing one keeps its own.",
        default="v1",
        choices=("v1", "v2"),
    ),
)


def key_prefix(keys_dir: object) -> str:
    """The Redis key prefix for ``keys_dir``: cleaned like Go's ``filepath.Join`` does."""
    if isinstance(keys_dir, os.PathLike):
        keys_dir = os.fspath(keys_dir)
    if not isinstance(keys_dir, str) or not keys_dir:
        raise ConfigError(
            f"option 'keys_dir' of key store {STORE!r}: {keys_dir!r} is not a key prefix "
            "(a non-empty string such as .acrakeys)"
        )
    if "\0" in keys_dir or any(c in keys_dir for c in "\r\n"):
        raise ConfigError(
            f"option 'keys_dir' of key store {STORE!r}: control characters are not allowed"
        )
    cleaned = posixpath.normpath(keys_dir)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned


def _option(config: Mapping[str, Any], name: str) -> Any:
    value = config.get(name)
    return None if value is None or value == "" else value


def _read_password_file(path: Path, option: str = "password_file") -> str:
    try:
        data = Path(os.path.expanduser(path)).read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"option {option!r} of key store {STORE!r}: {path} does not exist; "
            f"create it or point {option} at the file holding the password"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"option {option!r} of key store {STORE!r}: cannot read {path} ({exc.strerror})"
        ) from None
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    if not data:
        raise ConfigError(
            f"option {option!r} of key store {STORE!r}: {path} is empty; write the password in it"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(
            f"option {option!r} of key store {STORE!r}: {path} is not UTF-8 text"
        ) from None


def _password(config: Mapping[str, Any], secret: str, file_option: str) -> str | None:
    password = _option(config, secret)
    path = _option(config, file_option)
    if password is not None and path is not None:
        raise ConfigError(
            f"key store {STORE!r}: both {secret!r} and {file_option!r} are set; keep one"
        )
    return _read_password_file(Path(path), file_option) if path is not None else password


def _sentinel_addresses(text: object) -> tuple[tuple[str, int], ...]:
    """``host:port,host:port`` (port 26379 when left out) as address pairs."""
    where = f"option 'sentinels' of key store {STORE!r}"
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{where}: give the sentinels as host:port,host:port")
    addresses: list[tuple[str, int]] = []
    for raw in text.split(","):
        item = raw.strip()
        if item.startswith("["):  # [::1]:26379
            host, _, rest = item[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else ""
            bad_rest = bool(rest) and not rest.startswith(":")
        else:
            host, _, port = item.rpartition(":") if ":" in item else (item, "", "")
            bad_rest = False
        if not host or bad_rest or any(c in host for c in "/@?#[] "):
            raise ConfigError(f"{where}: {item!r} is not host:port")
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise ConfigError(f"{where}: {item!r} has no valid port (1 to 65535)")
        addresses.append((host, int(port) if port else DEFAULT_SENTINEL_PORT))
    return tuple(addresses)


@dataclass(frozen=True)
class RedisSettings:
    """The checked connection settings. ``repr`` and :attr:`display_url` never show the password."""

    host: str
    port: int
    db: int
    tls: bool
    prefix: str
    timeout: float
    lock_timeout: float
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    sentinels: tuple[tuple[str, int], ...] = ()
    service_name: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)
    read_from_replicas: bool = False
    wait_replicas: int | None = None  # None: auto
    wait_timeout: float = 2.0
    failover_timeout: float = 30.0
    cluster: bool = False
    sentinel_tls: bool = False

    @property
    def display_url(self) -> str:
        """The server URL for messages: scheme, user (no password), host(s), port, db."""
        user = f"{self.username}@" if self.username else ""
        if self.sentinels:
            hosts = ",".join(f"{_bracketed(h)}:{p}" for h, p in self.sentinels)
            return f"redis+sentinel://{user}{hosts}/{self.service_name}/{self.db}"
        if self.cluster:
            scheme = "rediss+cluster" if self.tls else "redis+cluster"
            return f"{scheme}://{user}{_bracketed(self.host)}:{self.port}"
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{user}{_bracketed(self.host)}:{self.port}/{self.db}"

    @classmethod
    def from_options(cls, config: Mapping[str, Any]) -> RedisSettings:
        """Check the options together; ``ConfigError`` naming the option and the fix."""
        sentinel_text = _option(config, "sentinels")
        url = _option(config, "url")
        if sentinel_text is not None and url is not None:
            raise ConfigError(
                f"key store {STORE!r}: 'url' and 'sentinels' are both set; Sentinel finds the "
                "master itself: keep 'sentinels' (with 'service_name'), or 'url' for one server"
            )
        sentinels = _sentinel_addresses(sentinel_text) if sentinel_text is not None else ()
        service_name = _option(config, "service_name")
        cluster = bool(config.get("cluster"))
        if cluster and sentinels:
            raise ConfigError(
                f"key store {STORE!r}: 'cluster' and 'sentinels' are both set; a Redis Cluster "
                "fails over by itself: keep 'cluster' with 'url' naming any node"
            )
        if sentinels and not service_name:
            raise ConfigError(
                f"key store {STORE!r}: 'sentinels' needs 'service_name', the master's name in "
                "Sentinel (sentinel monitor <name> ...)"
            )
        if not sentinels:
            for name in (
                "service_name",
                "sentinel_username",
                "sentinel_password",
                "sentinel_password_file",
            ):
                if _option(config, name) is not None:
                    raise ConfigError(
                        f"key store {STORE!r}: {name!r} is set but 'sentinels' is not; give "
                        "the sentinels as host:port,host:port"
                    )
            for name in ("read_from_replicas", "tls", "sentinel_tls"):
                if config.get(name):
                    hint = (
                        "; for one server or a cluster, use a rediss:// url"
                        if name == "tls"
                        else ""
                    )
                    raise ConfigError(
                        f"key store {STORE!r}: {name!r} needs Sentinel mode ('sentinels'){hint}"
                    )
        url = url or DEFAULT_URL
        if not isinstance(url, str):
            raise ConfigError(f"option 'url' of key store {STORE!r}: {url!r} is not a URL")
        parts = _split_url(url)
        tls = parts.scheme == "rediss" if not sentinels else bool(config.get("tls"))
        sentinel_tls = bool(config.get("sentinel_tls"))
        db = _option(config, "db")
        if db is None:
            db = _url_db(parts) if not sentinels else 0
        prefix = key_prefix(config.get("keys_dir") or ".acrakeys")
        if cluster:
            if int(db) != 0:
                raise ConfigError(
                    f"key store {STORE!r}: a Redis Cluster has only database 0, not {db}; "
                    "drop 'db' (and the /db of the url)"
                )
            if hash_tag(prefix) is None:
                raise ConfigError(
                    f"option 'keys_dir' of key store {STORE!r}: {prefix!r} has no hash tag, so "
                    "a Redis Cluster would spread one keystore over many hash slots (its Lua "
                    "scripts and batches need one); put the tag in keys_dir, such as "
                    "'{acrakeys}' or '{acrakeys}/.acrakeys', and give Acra the same keys_dir"
                )
        password = _password(config, "password", "password_file")
        tls_files = {
            name: _option(config, name) for name in ("ca_cert", "client_cert", "client_key")
        }
        if not (tls or sentinel_tls) and any(value is not None for value in tls_files.values()):
            given = ", ".join(name for name, value in tls_files.items() if value is not None)
            if sentinels:
                raise ConfigError(
                    f"key store {STORE!r}: {given} set but neither 'tls' nor 'sentinel_tls' is; "
                    "set tls=true (data nodes) and/or sentinel_tls=true (sentinels)"
                )
            raise ConfigError(
                f"key store {STORE!r}: {given} set but url {_safe(parts)} is not TLS; "
                "use a rediss:// URL"
            )
        if (tls_files["client_cert"] is None) != (tls_files["client_key"] is None):
            raise ConfigError(
                f"key store {STORE!r}: mutual TLS needs both 'client_cert' and 'client_key'"
            )
        timeout = float(_option(config, "timeout") or DEFAULT_TIMEOUT)
        # WAIT is a command: it must end before the socket timeout that bounds every command
        wait_timeout = min(float(config.get("wait_timeout") or 2.0), 0.8 * timeout)
        lock_timeout = config.get("lock_timeout")
        wait = str(config.get("wait_replicas") or "auto")
        return cls(
            host=(parts.hostname or "127.0.0.1") if not sentinels else sentinels[0][0],
            port=(parts.port or 6379) if not sentinels else sentinels[0][1],
            db=int(db),
            tls=tls,
            prefix=prefix,
            timeout=timeout,
            lock_timeout=30.0 if lock_timeout is None else float(lock_timeout),
            username=_option(config, "username") or (parts.username if not sentinels else None),
            password=password,
            ca_cert=_path_text(tls_files["ca_cert"]),
            client_cert=_path_text(tls_files["client_cert"]),
            client_key=_path_text(tls_files["client_key"]),
            sentinels=sentinels,
            service_name=str(service_name) if service_name else None,
            sentinel_username=_option(config, "sentinel_username"),
            sentinel_password=_password(config, "sentinel_password", "sentinel_password_file"),
            read_from_replicas=bool(config.get("read_from_replicas")),
            wait_replicas=None if wait == "auto" else int(wait),
            wait_timeout=wait_timeout,
            failover_timeout=float(config.get("failover_timeout") or 30.0),
            cluster=cluster,
            sentinel_tls=sentinel_tls,
        )


def hash_tag(key: str) -> str | None:
    """The hash tag Redis Cluster hashes ``key`` by: the text of its first ``{...}``, or None."""
    start = key.find("{")
    if start < 0:
        return None
    end = key.find("}", start + 1)
    if end <= start + 1:
        return None
    return key[start + 1 : end]


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _path_text(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str | os.PathLike):
        raise ConfigError(f"key store {STORE!r}: {value!r} is not a path")
    return os.path.expanduser(str(os.fspath(value)))


def _safe(parts: SplitResult) -> str:
    """The URL without its user-info (so never a password)."""
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}"


def _split_url(url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigError(
            f"option 'url' of key store {STORE!r}: not a valid URL; expected "
            "redis://host:port/db or rediss://host:port/db"
        ) from None
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ConfigError(
            f"option 'url' of key store {STORE!r}: {_safe(parts)!r} is not a Redis URL; "
            "expected redis://host:port/db or rediss://host:port/db (unix sockets are not "
            "supported)"
        )
    if parts.password is not None:
        raise ConfigError(
            f"option 'url' of key store {STORE!r}: the URL {_safe(parts)} carries a password, "
            "which leaks through the command line and listings; remove it and use "
            f"password_file or {PASSWORD_ENV}"
        )
    if parts.query or parts.fragment:
        raise ConfigError(
            f"option 'url' of key store {STORE!r}: URL query parameters are not supported; "
            "use the store options (db, timeout, ca_cert, ...)"
        )
    if port == 0:
        raise ConfigError(f"option 'url' of key store {STORE!r}: port 0 is not a server port")
    return parts


def _url_db(parts: SplitResult) -> int:
    path = parts.path.strip("/")
    if not path:
        return 0
    if not path.isdigit():
        raise ConfigError(
            f"option 'url' of key store {STORE!r}: {path!r} in {_safe(parts)} is not a "
            "database number; use redis://host:port/<number>"
        )
    return int(path)
