"""Key stores: the ``KeyStore`` contract and the built-in ``filesystem`` and ``memory`` stores."""

from __future__ import annotations

from .base import KeyStore, StoredBlob
from .filesystem import FilesystemKeyStore
from .memory import MemoryKeyStore

__all__ = ["KeyStore", "StoredBlob", "FilesystemKeyStore", "MemoryKeyStore"]
