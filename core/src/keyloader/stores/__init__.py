"""Key stores: the ``KeyStore`` contract and the built-in ``filesystem`` and ``memory`` stores.

Every name is imported on first access, so code that needs neither the contract
nor the stores (the plugin manager registering the built-in plugin,
``keyloader master-key check``) does not pay for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import KeyStore, StoredBlob
    from .filesystem import FilesystemKeyStore
    from .memory import MemoryKeyStore

__all__ = ["KeyStore", "StoredBlob", "FilesystemKeyStore", "MemoryKeyStore"]

_LAZY = {
    "KeyStore": ".base",
    "StoredBlob": ".base",
    "FilesystemKeyStore": ".filesystem",
    "MemoryKeyStore": ".memory",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
