"""keyloader-env: the ``env`` master-key provider (an environment variable or a key file)."""

from __future__ import annotations

from .plugin import EnvProvider as EnvProvider

__all__ = ["EnvProvider"]
