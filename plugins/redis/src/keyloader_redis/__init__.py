"""keyloader-redis: the ``redis`` key store (intermediate keys in Redis, Acra's layout)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keyloader.lazy import lazy_exports

if TYPE_CHECKING:
    from .store import RedisKeyStore

__all__ = ["RedisKeyStore"]

__getattr__, __dir__ = lazy_exports(__name__, {"RedisKeyStore": ".store"})
