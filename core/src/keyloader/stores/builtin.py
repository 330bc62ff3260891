"""The built-in key-store plugin: registers ``filesystem`` and ``memory``.

The plugin manager factory registers this module itself, so the built-in
stores ignore ``KEYLOADER_PLUGINS`` and ``KEYLOADER_DISABLE_PLUGIN_AUTOLOAD``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import hookimpl

if TYPE_CHECKING:
    from .base import KeyStore

__all__ = ["keyloader_key_stores"]


@hookimpl
def keyloader_key_stores() -> list[type[KeyStore]]:
    """The stores shipped with the core (imported only when stores are asked for)."""
    from .filesystem import FilesystemKeyStore
    from .memory import MemoryKeyStore

    return [FilesystemKeyStore, MemoryKeyStore]
