"""An audit observer: every ``AuditEvent`` as one JSON line appended to a file.

The file is named by the environment variable ``KEYLOADER_COMMAND_AUDIT_LOG``;
unset or empty, nothing is written. A line holds exactly the event's fields
(``action``, ``key_id``, ``index``, ``provider``, ``fingerprint``, ``store``,
``ok``, ``error_type``, ``time``): names and a fingerprint, never key material.
A write that fails is logged (once per file and error) and never fails the
action that was audited.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keyloader.audit import AuditEvent

__all__ = ["AUDIT_LOG_VAR", "append_event", "audit_record", "log_configured", "record_event"]

AUDIT_LOG_VAR = "KEYLOADER_COMMAND_AUDIT_LOG"
"""The environment variable naming the audit file (created with mode 0600)."""

logger = logging.getLogger("keyloader_command.audit")
_reported: set[tuple[str, str]] = set()


def audit_record(event: AuditEvent) -> dict[str, object]:
    """The event's fields as a JSON-ready mapping (all of them, nothing else)."""
    return {item.name: getattr(event, item.name) for item in fields(event)}


def append_event(event: AuditEvent, path: Path) -> None:
    """Append ``event`` to ``path`` as one JSON line; raises ``OSError``.

    One ``write`` in ``O_APPEND`` mode per line, so lines of concurrent
    processes do not interleave.
    """
    line = json.dumps(audit_record(event), separators=(",", ":")) + "\n"
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
    fd = os.open(path, flags, 0o600)
    try:
        data = line.encode()
        written = 0
        while written < len(data):
            written += os.write(fd, data[written:])
    finally:
        os.close(fd)


def log_configured(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``KEYLOADER_COMMAND_AUDIT_LOG`` names a file."""
    return bool((os.environ if environ is None else environ).get(AUDIT_LOG_VAR, "").strip())


def record_event(event: AuditEvent, environ: Mapping[str, str] | None = None) -> bool:
    """Append ``event`` to the file ``KEYLOADER_COMMAND_AUDIT_LOG`` names, if it names one.

    Returns True when a line was written. Never raises for a failed write: it
    logs a warning naming the file and the reason, once per file and reason.
    """
    raw = (os.environ if environ is None else environ).get(AUDIT_LOG_VAR, "")
    if not raw.strip():
        return False
    path = Path(raw).expanduser()
    try:
        append_event(event, path)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if (str(path), reason) not in _reported:
            _reported.add((str(path), reason))
            logger.warning(
                "cannot append audit events to %s (%s): %s; the audited actions are not "
                "affected. Fix the path or unset %s",
                path,
                AUDIT_LOG_VAR,
                reason,
                AUDIT_LOG_VAR,
            )
        return False
    return True
