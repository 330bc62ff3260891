"""The hook implementations: the module the ``keyloader`` entry point names.

Keep this module light: the core imports it whenever it lists or looks up
providers, so every ``keyloader`` command pays for what it imports. Heavy
imports (an SDK, ``subprocess``, typer) go inside the hooks or ``load()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keyloader import hookimpl

if TYPE_CHECKING:
    from keyloader.audit import AuditEvent
    from keyloader.providers import MasterKeyProvider

__all__ = [
    "keyloader_audit_actions",
    "keyloader_audit_event",
    "keyloader_cli_commands",
    "keyloader_master_key_providers",
]


@hookimpl
def keyloader_master_key_providers() -> list[type[MasterKeyProvider]]:
    """The ``command`` provider."""
    from .provider import CommandProvider

    return [CommandProvider]


@hookimpl
def keyloader_audit_actions() -> list[str] | None:
    """Every action while ``$KEYLOADER_COMMAND_AUDIT_LOG`` is set, none otherwise.

    keyloader asks once per plugin manager, at its first audited action: with no
    log to write, the observer is never called and ``use()`` pays nothing for it.
    """
    from .audit import log_configured

    return None if log_configured() else []


@hookimpl
def keyloader_audit_event(event: AuditEvent) -> None:
    """Append the event to ``$KEYLOADER_COMMAND_AUDIT_LOG`` (if set) as a JSON line."""
    from .audit import record_event

    record_event(event)


@hookimpl
def keyloader_cli_commands(app: Any) -> None:
    """Add ``keyloader command-check`` to the root typer app."""
    import typer  # only here: the CLI is running, so typer is loaded already

    from .cli import command_check

    if not isinstance(app, typer.Typer):
        raise TypeError(f"keyloader_cli_commands expects the root typer.Typer, not {app!r}")
    app.command("command-check")(command_check)
