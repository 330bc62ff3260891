"""The plugin contract. Every hook is declared here, and its docstring is its contract.

keyloader calls each hook through pluggy (``pm.hook.<name>(...)``), so wrappers
(``wrapper=True``, ``hookwrapper=True``), ``tryfirst``/``trylast``, tracing and
monitoring behave as pluggy documents. Each implementation is guarded when its
plugin registers (:mod:`keyloader.hook_guards`): what one raises is that
plugin's failure and never reaches the others. CONTRIBUTING.md ("How keyloader
calls hooks") gives the rules per hook.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .audit import AuditEvent
    from .providers import MasterKeyProvider
    from .stores.base import KeyStore

hookspec = pluggy.HookspecMarker("keyloader")


@hookspec
def keyloader_master_key_providers() -> list[type[MasterKeyProvider]]:
    """Return the master-key provider classes this plugin offers.

    Called once per plugin manager, when providers are first listed or looked
    up. Each class subclasses :class:`keyloader.MasterKeyProvider` and sets
    ``name`` (lower case, ``-`` allowed), ``description`` and ``options``. Two
    non-placeholder classes with one name raise ``DuplicateProviderError``; a
    placeholder yields to a non-placeholder of the same name. Must not import
    the provider's SDK: do that in ``load()``. Raising (here or in a wrapper) is
    recorded as this plugin's failure; the other plugins' providers remain.
    A plugin registered later adds its classes without this being called again.
    """


@hookspec
def keyloader_key_stores() -> list[type[KeyStore]]:
    """Return the key-store classes this plugin offers.

    Called once per plugin manager, when stores are first listed or looked up.
    Each class subclasses :class:`keyloader.KeyStore` and sets ``name``,
    ``description`` and ``options``. Two classes with one name raise
    ``DuplicateKeyStoreError``. Must not import the store's SDK at import time.
    Raising (here or in a wrapper) is recorded as this plugin's failure. The
    built-in stores come through this hook too (plugin ``builtin``).
    """


@hookspec
def keyloader_cli_commands(app: Any) -> None:
    """Add sub-commands to the ``keyloader`` CLI.

    Called at most once per CLI run, with the root ``typer.Typer`` app, when the
    command line names a command that is not built in (or shell completion
    runs); built-in commands never pay for it. Add commands or groups to the
    app (``app.command()(fn)``, ``app.add_typer(...)``); names of built-in
    commands cannot be replaced. Import typer inside the hook, never at module
    level. Raising here is recorded as a plugin failure and the CLI goes on
    without that plugin's commands.
    """


@hookspec
def keyloader_audit_event(event: AuditEvent) -> None:
    """Observe an audited action.

    Called after each action (``event.action``) with a frozen
    :class:`keyloader.AuditEvent`, which never contains key material. The
    return value is ignored. An observer (or wrapper) that raises is logged and
    ignored; it never fails the action. Called synchronously, in the thread
    that performed the action. A plugin that also implements
    :func:`keyloader_audit_actions` receives only the actions it lists; one
    that does not receives every action, a wrapper (``wrapper=True``) as much
    as a plain observer.
    """


@hookspec
def keyloader_audit_actions() -> Iterable[str] | None:
    """The audit actions this plugin's :func:`keyloader_audit_event` wants.

    Return names from ``keyloader.audit.AUDIT_ACTIONS`` (``key_rotated``,
    ``key_used``...), or ``None`` for every action (as without this hook). The
    declaration holds for the plugin's observer and for its wrapper alike: a
    wrapper-only plugin that declares nothing receives every action.
    Called once per plugin, when an action is first audited; the answer holds
    for the life of the plugin manager. An event no observer wants is never
    built: observers that leave out ``key_used`` cost ``use()`` nothing. An
    unknown name, or an implementation that raises, is that plugin's failure
    (``keyloader plugins``), and the plugin then receives every action.
    """
