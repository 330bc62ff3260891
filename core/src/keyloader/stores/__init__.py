"""Key stores: the ``KeyStore`` contract and the built-in ``filesystem`` and ``memory`` stores.

Every name is imported on first access, so code that needs neither the contract
nor the stores (the plugin manager registering the built-in plugin,
``keyloader master-key check``) does not pay for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

if TYPE_CHECKING:
    from .base import KeyStore, StoredBlob
    from .filesystem import FilesystemKeyStore
    from .memory import MemoryKeyStore

__all__ = ["KeyStore", "StoredBlob", "FilesystemKeyStore", "MemoryKeyStore"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "KeyStore": ".base",
        "StoredBlob": ".base",
        "FilesystemKeyStore": ".filesystem",
        "MemoryKeyStore": ".memory",
    },
)
