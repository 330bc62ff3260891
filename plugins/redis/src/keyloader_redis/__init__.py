"""keyloader-redis: the ``redis`` key store (intermediate keys in Redis, Acra's layout)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .store import RedisKeyStore

__all__ = ["RedisKeyStore"]


def __getattr__(name: str) -> Any:
    if name == "RedisKeyStore":
        from .store import RedisKeyStore

        return RedisKeyStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
