"""keyloader-vault: the ``vault`` master-key provider (HashiCorp Vault / OpenBao KV)."""

from __future__ import annotations

from .plugin import VaultProvider as VaultProvider

__all__ = ["VaultProvider"]
