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

__all__ = ["DEFAULT_URL", "OPTIONS", "RedisSettings", "key_prefix"]

STORE = "redis"
DEFAULT_URL = "redis://127.0.0.1:6379/0"
DEFAULT_TIMEOUT = 5.0
PASSWORD_ENV = "KEYLOADER_STORE_REDIS_PASSWORD"  # noqa: S105 - a variable name


def _positive(value: float) -> None:
    if value <= 0:
        raise ValueError(f"must be more than 0 seconds, not {value}")


def _non_negative(value: float) -> None:
    if value < 0:
        raise ValueError(f"must be 0 or more seconds, not {value}")


def _db_number(value: int) -> None:
    if value < 0:
        raise ValueError(f"must be a database number, 0 or more, not {value}")


OPTIONS: tuple[Option, ...] = (
    Option(
        "url",
        "Redis server: redis://host:port/db or rediss://host:port/db (TLS). "
        "No password in the URL: use password_file or KEYLOADER_STORE_REDIS_PASSWORD.",
        default=DEFAULT_URL,
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
        "Seconds a writer waits for the writer lock (<keys_dir>.keyloader-lock) before giving up.",
        type="float",
        default=30.0,
        validator=_non_negative,
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


def _read_password_file(path: Path) -> str:
    try:
        data = Path(os.path.expanduser(path)).read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"option 'password_file' of key store {STORE!r}: {path} does not exist; "
            "create it or point password_file at the file holding the Redis password"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"option 'password_file' of key store {STORE!r}: cannot read {path} ({exc.strerror})"
        ) from None
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    if not data:
        raise ConfigError(
            f"option 'password_file' of key store {STORE!r}: {path} is empty; write the "
            "Redis password in it"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(
            f"option 'password_file' of key store {STORE!r}: {path} is not UTF-8 text"
        ) from None


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

    @property
    def display_url(self) -> str:
        """The server URL for messages: scheme, user (no password), host, port, db."""
        scheme = "rediss" if self.tls else "redis"
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{user}{host}:{self.port}/{self.db}"

    @classmethod
    def from_options(cls, config: Mapping[str, Any]) -> RedisSettings:
        """Check the options together; ``ConfigError`` naming the option and the fix."""
        url = _option(config, "url") or DEFAULT_URL
        if not isinstance(url, str):
            raise ConfigError(f"option 'url' of key store {STORE!r}: {url!r} is not a URL")
        parts = _split_url(url)
        tls = parts.scheme == "rediss"
        db = _option(config, "db")
        if db is None:
            db = _url_db(parts)
        password = _option(config, "password")
        password_file = _option(config, "password_file")
        if password is not None and password_file is not None:
            raise ConfigError(
                f"key store {STORE!r}: both 'password' and 'password_file' are set; keep one"
            )
        if password_file is not None:
            password = _read_password_file(Path(password_file))
        tls_files = {
            name: _option(config, name) for name in ("ca_cert", "client_cert", "client_key")
        }
        if not tls and any(value is not None for value in tls_files.values()):
            given = ", ".join(name for name, value in tls_files.items() if value is not None)
            raise ConfigError(
                f"key store {STORE!r}: {given} set but url {_safe(parts)} is not TLS; "
                "use a rediss:// URL"
            )
        if (tls_files["client_cert"] is None) != (tls_files["client_key"] is None):
            raise ConfigError(
                f"key store {STORE!r}: mutual TLS needs both 'client_cert' and 'client_key'"
            )
        timeout = float(_option(config, "timeout") or DEFAULT_TIMEOUT)
        lock_timeout = config.get("lock_timeout")
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 6379,
            db=int(db),
            tls=tls,
            prefix=key_prefix(config.get("keys_dir") or ".acrakeys"),
            timeout=timeout,
            lock_timeout=30.0 if lock_timeout is None else float(lock_timeout),
            username=_option(config, "username") or parts.username or None,
            password=password,
            ca_cert=_path_text(tls_files["ca_cert"]),
            client_cert=_path_text(tls_files["client_cert"]),
            client_key=_path_text(tls_files["client_key"]),
        )


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
