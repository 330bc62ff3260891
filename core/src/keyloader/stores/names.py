"""Acra keystore v1 names, for every key store: what a store name may be, and option helpers.

A key store (filesystem, Redis, or a third-party one) holds blobs under Acra's
file names (``client1_storage_sym``, ``.poison_key/poison_key_sym``, ...). Each
store method that takes a name checks it with :func:`check_name`, each that
takes a history timestamp with :func:`check_history_timestamp`; a bad name or
timestamp is a :class:`~keyloader.errors.ConfigError` (the caller passed a
value that cannot be a key). See docs/plugins.md, "Writing a key store".
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from ..errors import ConfigError, KeyStoreError
from .timestamps import parse_history_timestamp

__all__ = [
    "HELPER_PREFIX",
    "HISTORY_SUFFIX",
    "POISON_DIR",
    "PUBLIC_SUFFIX",
    "MAX_BLOB_SIZE",
    "VERSION_FILE",
    "check_blob_size",
    "check_history_timestamp",
    "check_name",
    "check_public_flag",
    "lock_timeout_option",
    "non_negative_seconds",
]

POISON_DIR = ".poison_key"
"""The one sub-directory of a keys directory (Acra's poison-record keys)."""
HISTORY_SUFFIX = ".old"
"""``<name>.old/<timestamp>`` holds the rotated copies of ``<name>``."""
PUBLIC_SUFFIX = ".pub"
"""Public halves of keypairs: ``<name>.pub``, stored unencrypted."""
VERSION_FILE = "version"
"""Acra's keystore version marker (``Acra Keystore v2`` directories are refused)."""
HELPER_PREFIX = ".keyloader"
"""Names keyloader reserves for its own helpers; never a key."""
MAX_BLOB_SIZE = 4096
"""The largest stored blob a store reads: Acra v1 key files are under 100 bytes."""


def non_negative_seconds(value: float) -> None:
    """An ``Option`` validator: refuse a negative number of seconds."""
    if value < 0:
        raise ValueError(f"must be 0 or more seconds, not {value}")


def lock_timeout_option(config: Mapping[str, Any], store: str) -> float:
    """The ``lock_timeout`` option in seconds (default 30); ``ConfigError`` if not >= 0."""
    value = config.get("lock_timeout")
    if value is None:
        return 30.0
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if isinstance(value, bool) or not seconds >= 0:
        raise ConfigError(
            f"option 'lock_timeout' of key store {store!r}: must be 0 or more seconds, "
            f"not {value!r}"
        )
    return seconds


def check_name(name: str) -> tuple[str, ...]:
    """Split a store name into its path parts; ``ConfigError`` if it is not a safe key name.

    Allowed: ``<file>`` or ``.poison_key/<file>``, where ``<file>`` is not a
    keyloader helper name (``.keyloader*``), not ``version``, and does not end
    in ``.old`` (those are history directories).
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"invalid key store name {name!r}: it must be a non-empty string")
    return _checked(str(name))


@lru_cache(maxsize=4096)
def _checked(name: str) -> tuple[str, ...]:
    """:func:`check_name` of a ``str``, remembered: every store call checks its name, and a
    name that passed once always passes (a failure raises and is not remembered)."""
    if "\0" in name:
        raise ConfigError(f"invalid key store name {name!r}: it contains a NUL character")
    if name.startswith("/"):
        raise ConfigError(
            f"invalid key store name {name!r}: names are relative to the keys directory"
        )
    parts = tuple(name.split("/"))
    if any(part in ("", ".", "..") for part in parts):
        raise ConfigError(
            f"invalid key store name {name!r}: empty, '.' and '..' path components are refused"
        )
    if len(parts) > 2 or (len(parts) == 2 and parts[0] != POISON_DIR):
        raise ConfigError(
            f"invalid key store name {name!r}: the only sub-directory of a key store is "
            f"{POISON_DIR}/"
        )
    base = parts[-1]
    if base.startswith(HELPER_PREFIX):
        raise ConfigError(f"invalid key store name {name!r}: {HELPER_PREFIX}* names are reserved")
    if base.endswith(HISTORY_SUFFIX):
        raise ConfigError(
            f"invalid key store name {name!r}: names ending in {HISTORY_SUFFIX} are history "
            "directories"
        )
    if len(parts) == 1 and base in (VERSION_FILE, POISON_DIR):
        raise ConfigError(f"invalid key store name {name!r}: {base!r} is reserved")
    return parts


def check_history_timestamp(timestamp: str) -> str:
    """``timestamp`` if it is a Go-layout history timestamp, else ``ConfigError``."""
    try:
        parse_history_timestamp(timestamp)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return timestamp


def check_public_flag(name: str, public: bool) -> None:
    """Public blobs are ``.pub`` files; refuse ``public=True`` for another name."""
    if public and not name.endswith(PUBLIC_SUFFIX):
        raise ConfigError(
            f"key store name {name!r} is marked public but does not end in .pub: only public "
            "keys (<name>.pub) are stored world-readable"
        )


def check_blob_size(size: int, what: str, location: str) -> None:
    """Refuse to read a stored value larger than any key could be (:data:`MAX_BLOB_SIZE`)."""
    if size > MAX_BLOB_SIZE:
        raise KeyStoreError(
            f"{what} in {location} is {size} bytes, larger than any key could be "
            f"({MAX_BLOB_SIZE} bytes at most): it is not a key; move it out of the key store"
        )
