"""The ``redis`` key-store plugin: registers :class:`~keyloader_redis.store.RedisKeyStore`.

The store module is imported inside the hook, so commands that never ask for key
stores (``keyloader master-key check``) do not pay for it; redis-py itself loads
only when a store first talks to the server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keyloader import hookimpl

if TYPE_CHECKING:
    from keyloader.stores.base import KeyStore

__all__ = ["keyloader_key_stores"]


@hookimpl
def keyloader_key_stores() -> list[type[KeyStore]]:
    """The ``redis`` key store."""
    from .store import RedisKeyStore

    return [RedisKeyStore]
