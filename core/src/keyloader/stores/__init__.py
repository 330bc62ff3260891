"""Key stores: the ``KeyStore`` contract and the built-in ``filesystem`` and ``memory`` stores.

The built-in stores are imported on first access, so code that needs only the
contract (the plugin manager, ``keyloader --help``) does not pay for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .base import KeyStore, StoredBlob

if TYPE_CHECKING:
    from .filesystem import FilesystemKeyStore
    from .memory import MemoryKeyStore

__all__ = ["KeyStore", "StoredBlob", "FilesystemKeyStore", "MemoryKeyStore"]

_LAZY = {"FilesystemKeyStore": ".filesystem", "MemoryKeyStore": ".memory"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
