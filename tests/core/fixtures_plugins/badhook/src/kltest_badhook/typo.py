"""Implements ``keyloader_master_key_provider`` (no final s): no spec, so check_pending fails."""

from __future__ import annotations

import keyloader


@keyloader.hookimpl
def keyloader_master_key_provider() -> list[type]:
    return []
