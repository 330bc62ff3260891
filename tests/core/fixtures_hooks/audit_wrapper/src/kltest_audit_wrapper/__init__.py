"""An audit plugin written as a wrapper of ``keyloader_audit_event`` and nothing else: it
records the action of every event that passes through it in ``SEEN``."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import keyloader

SEEN: list[str] = []


@keyloader.hookimpl(wrapper=True)
def keyloader_audit_event(event: Any) -> Generator[None, Any, Any]:
    SEEN.append(event.action)
    return (yield)
