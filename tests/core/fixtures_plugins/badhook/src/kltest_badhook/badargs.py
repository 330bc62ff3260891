"""Implements ``keyloader_audit_event`` with an argument the spec does not have."""

from __future__ import annotations

from typing import Any

import keyloader


@keyloader.hookimpl
def keyloader_audit_event(event: Any, severity: int) -> None:
    raise AssertionError("never registered, so never called")
