"""``AuditEvent``: what the ``keyloader_audit_event`` hook receives."""

from __future__ import annotations

import time as _time
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["AUDIT_ACTIONS", "AuditAction", "AuditEvent"]

AuditAction = Literal[
    "master_key_loaded",
    "master_key_reloaded",
    "key_generated",
    "key_read",
    "key_used",
    "key_rotated",
    "key_destroyed",
    "key_rewrapped",
    "key_verified",
    "keys_exported",
    "keys_imported",
    "provider_login",
    "provider_token_renewed",
    "provider_relogin",
]

AUDIT_ACTIONS: tuple[str, ...] = AuditAction.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class AuditEvent:
    """One audited action. It never carries key material.

    ``key_id`` is the CLI key id (``client/<cid>/symmetric``) or ``None`` for
    events about the master key or the whole store; ``index`` is the history
    index (1 = current); ``fingerprint`` is the master key's fingerprint;
    ``ok`` is False when the action failed, and ``error_type`` then names the
    exception class; ``time`` is seconds since the epoch. The ``provider_*`` actions
    (a provider's own credentials: a login, a renewed token, a login again) carry the
    provider's name, the login ``method`` and the granted ``ttl`` in seconds (None:
    unknown or no expiry), never a credential.
    """

    action: AuditAction
    key_id: str | None = None
    index: int | None = None
    provider: str | None = None
    fingerprint: str | None = None
    store: str | None = None
    ok: bool = True
    error_type: str | None = None
    time: float = field(default_factory=_time.time)
    method: str | None = None
    ttl: float | None = None
