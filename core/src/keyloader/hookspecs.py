"""The plugin contract. Every hook is declared here, and its docstring is its contract.

keyloader calls each hook through pluggy (``pm.hook.<name>(...)``), so wrappers
(``wrapper=True``, ``hookwrapper=True``), ``tryfirst``/``trylast``, tracing and
monitoring behave as pluggy documents. Each implementation is guarded when its
plugin registers (:mod:`keyloader.hook_guards`): what one raises is that
plugin's failure and never reaches the others. CONTRIBUTING.md ("How keyloader
calls hooks") gives the rules per hook; its per-hook sections are these docstrings
(``tools/hook_reference.py`` writes them there, a test checks they agree).
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
    """Return the master-key provider classes the plugin offers.

    Called once per plugin manager, when providers are first listed or looked
    up. Each class subclasses ``keyloader.MasterKeyProvider`` and sets ``name``
    (lower case, ``-`` allowed), ``description`` and ``options``. Two
    non-placeholder classes with one name raise ``DuplicateProviderError``; a
    placeholder yields to a non-placeholder of the same name (of two placeholders,
    the first in pluggy's order wins). Do not import the provider's SDK here: do it
    in ``load()``. Raising (here or in a wrapper) is recorded as this plugin's
    failure; the other plugins' providers remain. A plugin registered later adds
    its classes without this being called again. Wrappers and ordering: see the
    table above.
    """


@hookspec
def keyloader_key_stores() -> list[type[KeyStore]]:
    """Return the key-store classes the plugin offers.

    Called once per plugin manager, when stores are first listed or looked up.
    Each class subclasses ``keyloader.KeyStore`` and sets ``name``,
    ``description`` and ``options``. Two classes with one name raise
    ``DuplicateKeyStoreError``. Do not import the store's SDK at import time.
    Raising (here or in a wrapper) is recorded as this plugin's failure. The
    built-in ``filesystem`` and ``memory`` stores are registered by the plugin
    manager factory through this same hook (plugin ``builtin``), so a wrapper sees
    them too.
    """


@hookspec
def keyloader_cli_commands(app: Any) -> None:
    """Add sub-commands to the ``keyloader`` CLI.

    Called at most once per CLI run, with the root ``typer.Typer`` app, when the
    command line names a command that is not built in (or shell completion
    runs), so built-in commands never pay for it. Add commands or groups to the
    app (``app.command()(fn)``, ``app.add_typer(...)``); names of built-in
    commands cannot be replaced. Import typer inside the hook, never at module
    level. Raising here is recorded as a plugin failure and the CLI goes on
    without that plugin's commands. ``tryfirst``/``trylast`` order the commands
    in ``--help``.
    """


@hookspec
def keyloader_audit_event(event: AuditEvent) -> None:
    """Observe an audited action.

    Called after each action with a frozen ``AuditEvent(action, key_id, index,
    provider, fingerprint, store, ok, error_type, time, method, ttl)``; actions
    are ``master_key_loaded``, ``master_key_reloaded``, ``key_generated``,
    ``key_read``, ``key_used``, ``key_rotated``, ``key_destroyed``,
    ``key_rewrapped``, ``key_verified`` (one per key ``keys verify`` checked:
    ``ok`` is its result and ``error_type`` why it failed), ``keys_exported``,
    ``keys_imported``, and a provider's own credentials
    (``MasterKeyProvider.audit(...)``, sent when the core built the provider):
    ``provider_login``, ``provider_token_renewed`` (``ok`` False: the server
    refused to renew), ``provider_relogin``, with the provider's name, the login
    ``method`` and the granted ``ttl`` in seconds. Never key material, never a
    credential. The return value is ignored. An observer (or a wrapper) that
    raises is logged and ignored; the action never fails because of it.
    Observers run in pluggy's order, synchronously in the thread that acted. A
    plugin that implements ``keyloader_audit_actions`` receives only the actions
    it lists; one that does not receives every action, a wrapper
    (``wrapper=True``) as much as a plain observer.
    """


@hookspec
def keyloader_audit_actions() -> Iterable[str] | None:
    """The actions this plugin's ``keyloader_audit_event`` wants, or ``None`` for all.

    ``None`` is the same as not implementing it. Return names from
    ``keyloader.audit.AUDIT_ACTIONS`` (``key_rotated``, ``key_used``...). Called
    once per plugin, when an action is first audited; the answer holds for the
    life of the plugin manager. keyloader then calls each action's observers
    through ``pm.subset_hook_caller(...)`` (pluggy's own subset caller), and an
    action nobody wants builds no event at all: an audit plugin that keeps
    ``key_used`` out of its list costs ``use()`` nothing
    (benchmarks/keystore_use.py). An unknown name, or an implementation that
    raises, is the plugin's failure (``keyloader plugins``) and the plugin
    receives every action. A wrapper of ``keyloader_audit_event``
    (``wrapper=True``) counts as its plugin's observer: it receives the actions
    its plugin declares, or every action when the plugin declares none, even
    with no plain observer installed.
    """
