"""The built-in key-store plugin: registers ``filesystem`` and ``memory``.

The plugin manager factory registers this module itself, so the built-in
stores ignore ``KEYLOADER_PLUGINS`` and ``KEYLOADER_DISABLE_PLUGIN_AUTOLOAD``.
"""

from __future__ import annotations

from .. import hookimpl
from .base import KeyStore
from .filesystem import FilesystemKeyStore
from .memory import MemoryKeyStore

__all__ = ["keyloader_key_stores"]


@hookimpl
def keyloader_key_stores() -> list[type[KeyStore]]:
    """The stores shipped with the core."""
    return [FilesystemKeyStore, MemoryKeyStore]
