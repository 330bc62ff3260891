"""Key stores: the ``KeyStore`` contract, the built-in ``filesystem`` and ``memory`` stores,
and the helpers every store needs (Acra names: :mod:`.names`; history timestamps:
:mod:`.timestamps`).

Every name is imported on first access, so code that needs neither the contract
nor the stores (the plugin manager registering the built-in plugin,
``keyloader master-key check``) does not pay for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

if TYPE_CHECKING:
    from .base import BlobWrite, KeyStore, StoredBlob
    from .filesystem import FilesystemKeyStore
    from .memory import MemoryKeyStore
    from .names import (
        MAX_BLOB_SIZE,
        check_blob_size,
        check_history_timestamp,
        check_name,
        check_public_flag,
        lock_timeout_option,
        non_negative_seconds,
    )
    from .reentrant import ReentrantHold
    from .timestamps import history_timestamp, next_history_timestamp, parse_history_timestamp

__all__ = [
    "KeyStore",
    "StoredBlob",
    "BlobWrite",
    "FilesystemKeyStore",
    "MemoryKeyStore",
    # helpers for store authors
    "ReentrantHold",
    "MAX_BLOB_SIZE",
    "check_blob_size",
    "check_name",
    "check_history_timestamp",
    "check_public_flag",
    "lock_timeout_option",
    "non_negative_seconds",
    "history_timestamp",
    "next_history_timestamp",
    "parse_history_timestamp",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "KeyStore": ".base",
        "StoredBlob": ".base",
        "BlobWrite": ".base",
        "ReentrantHold": ".reentrant",
        "MAX_BLOB_SIZE": ".names",
        "check_blob_size": ".names",
        "check_name": ".names",
        "check_history_timestamp": ".names",
        "check_public_flag": ".names",
        "lock_timeout_option": ".names",
        "non_negative_seconds": ".names",
        "history_timestamp": ".timestamps",
        "next_history_timestamp": ".timestamps",
        "parse_history_timestamp": ".timestamps",
        "FilesystemKeyStore": ".filesystem",
        "MemoryKeyStore": ".memory",
    },
)
