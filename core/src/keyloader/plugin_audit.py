"""Routing audit events: each action goes to the observers that want it, or nowhere.

:class:`AuditRouting` is mixed into :class:`keyloader.plugins.KeyloaderPluginManager`.
An observer's (or a wrapper's) plugin may declare its actions with
``keyloader_audit_actions``; each action's observers and wrappers are then called through
pluggy's ``subset_hook_caller``, and an action nobody wants is never built
(:meth:`AuditRouting.audit_wants`). A plugin that declares nothing wants every action,
whether its implementation is a plain observer or a wrapper. Routes are
computed on first use and forgotten when a plugin registers or unregisters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .audit import AuditEvent
    from .plugin_failures import FailureLog
    from .plugin_origin import Origin

__all__ = ["AUDIT_ACTIONS_HOOK", "AUDIT_HOOK", "AuditRouting"]

AUDIT_HOOK = "keyloader_audit_event"
AUDIT_ACTIONS_HOOK = "keyloader_audit_actions"


class AuditRouting:
    """``emit`` and ``audit_wants`` over the audit hooks of a pluggy plugin manager."""

    failure_log: FailureLog
    _audit_callers: dict[str, Any]  # action -> hook caller, or None: nobody
    _audit_declared: dict[str, frozenset[str] | None]  # plugin -> its actions, None: all

    if TYPE_CHECKING:  # given by pluggy.PluginManager and KeyloaderPluginManager

        def subset_hook_caller(self, name: str, remove_plugins: Any) -> Any: ...
        def load_entrypoints(self) -> None: ...
        def origin(self, plugin: str) -> Origin: ...

    @property
    def _hooks(self) -> Any:
        """pluggy's ``pm.hook`` (declared ``Final`` there, so not redeclared here)."""
        return self.hook  # type: ignore[attr-defined]

    def emit(self, event: AuditEvent) -> None:
        """Call the ``keyloader_audit_event`` observers that want ``event.action``.

        One that raises is logged and ignored (its guard, keyloader.hook_guards).
        """
        caller = self._audit_caller(event.action)
        if caller is not None:
            caller(event=event)

    def audit_wants(self, action: str) -> bool:
        """Whether any observer or wrapper wants ``action`` (``keyloader_audit_actions``;
        None: all)."""
        return self._audit_caller(action) is not None

    def _forget_audit_routes(self) -> None:
        self._audit_callers = {}
        self._audit_declared = {}

    def _audit_caller(self, action: str) -> Any:
        try:
            return self._audit_callers[action]
        except KeyError:
            pass
        self.load_entrypoints()
        impls = self._hooks.keyloader_audit_event.get_hookimpls()
        unwanted = []
        for impl in impls:  # an observer or a wrapper: each wants what its plugin declared
            declared = self._declared_actions(impl)
            if declared is not None and action not in declared:
                unwanted.append(impl.plugin)
        caller: Any
        if len(unwanted) == len(impls):
            caller = None  # nobody wants it: no event is built
        elif not unwanted:
            caller = self._hooks.keyloader_audit_event
        else:
            caller = self.subset_hook_caller(AUDIT_HOOK, remove_plugins=unwanted)
        self._audit_callers[action] = caller
        return caller

    def _declared_actions(self, impl: Any) -> frozenset[str] | None:
        """What ``impl``'s plugin declared with ``keyloader_audit_actions`` (None: all)."""
        name = impl.plugin_name
        if name not in self._audit_declared:
            self._audit_declared[name] = self._ask_actions(impl.plugin, name)
        return self._audit_declared[name]

    def _ask_actions(self, plugin: object, name: str) -> frozenset[str] | None:
        declarers = [i.plugin for i in self._hooks.keyloader_audit_actions.get_hookimpls()]
        if not any(p is plugin for p in declarers):
            return None
        only = self.subset_hook_caller(
            AUDIT_ACTIONS_HOOK, remove_plugins=[p for p in declarers if p is not plugin]
        )
        answers = only()  # pluggy leaves out None answers (and a guarded failure's)
        if not answers:
            return None
        names: set[str] = set()
        for answer in answers:
            found = _action_names(answer)
            if found is None:
                self.failure_log.hook_failed(
                    name,
                    self.origin(name),
                    ValueError(
                        f"keyloader_audit_actions() returned {answer!r}: give names from "
                        f"keyloader.audit.AUDIT_ACTIONS, or None"
                    ),
                )
                return None
            names |= found
        return frozenset(names)


def _action_names(answer: object) -> set[str] | None:
    """The action names in ``answer``, or None if it is not an iterable of known names."""
    from .audit import AUDIT_ACTIONS

    if isinstance(answer, str | bytes) or not hasattr(answer, "__iter__"):
        return None
    names = set()
    for name in answer:
        if not isinstance(name, str) or name not in AUDIT_ACTIONS:
            return None
        names.add(name)
    return names
