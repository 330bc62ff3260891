"""The plugin manager: entry-point loading, guarded hook implementations, listings.

:func:`make_plugin_manager` builds a new :class:`KeyloaderPluginManager` each
time (there is no global one). It registers the hook specs and the built-in
stores at once; the ``keyloader`` entry points load lazily, on the first query,
each inside its own ``try``: a plugin that fails to load is recorded as a
:class:`PluginFailure` and never stops the others.

Every hook is called through pluggy (``pm.hook.<name>(...)``), so wrappers,
``tryfirst``/``trylast``, tracing and monitoring work as pluggy documents. A
plugin's failure stays its own because each of its implementations is guarded
when it registers (:mod:`keyloader.hook_guards`).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pluggy

from . import gate, hookspecs
from .errors import (
    PluginLoadError,
)
from .hook_guards import guard
from .plugin_audit import AUDIT_ACTIONS_HOOK, AUDIT_HOOK, AuditRouting
from .plugin_failures import FailureLog, describe_exception
from .plugin_lookups import PluginLookups
from .plugin_origin import UNKNOWN, Origin
from .providers import MasterKeyProvider
from .registry import (
    ALIASES,
    PLUGINS_VAR,
    check_classes,
)

if TYPE_CHECKING:
    import logging

    from ._entry_points import FoundEntryPoint
    from ._plugin_records import PluginFailure, PluginInfo, ProviderInfo
    from .stores.base import KeyStore

__all__ = [
    "ALIASES",
    "ENTERPRISE_NAMES",
    "ENTRY_POINT_GROUP",
    "BUILTIN_PLUGIN",
    "KeyloaderPluginManager",
    "PluginFailure",
    "PluginInfo",
    "ProviderInfo",
    "make_plugin_manager",
]

ENTERPRISE_NAMES = gate.ENTERPRISE_NAMES
ENTRY_POINT_GROUP = "keyloader"
"""The entry-point group plugins are published under (also pluggy's project name)."""

BUILTIN_PLUGIN = "builtin"
"""The name the built-in stores plugin is registered under."""

NO_AUTOLOAD_VAR = "KEYLOADER_DISABLE_PLUGIN_AUTOLOAD"

PROVIDERS_HOOK = "keyloader_master_key_providers"
STORES_HOOK = "keyloader_key_stores"
CLI_HOOK = "keyloader_cli_commands"
_LISTING_HOOKS = (PROVIDERS_HOOK, STORES_HOOK)
_CLI_LISTS = ("registered_commands", "registered_groups")


class KeyloaderPluginManager(PluginLookups, AuditRouting, pluggy.PluginManager):
    """A pluggy manager that loads ``keyloader`` entry points one by one and records failures.

    Build it with :func:`make_plugin_manager`. Every query loads the entry
    points first (once). The class-listing hooks run once per plugin: their
    results are kept until a plugin is registered or unregistered, and then
    only the new plugin's implementations run (the others answer as before).
    """

    def __init__(self, *, autoload: bool = True, allow: frozenset[str] | None = None) -> None:
        super().__init__(ENTRY_POINT_GROUP)
        self.add_hookspecs(hookspecs)
        self._autoload = autoload
        self._allow = allow
        self._entrypoints_loaded = False
        self._missing_allowed: tuple[str, ...] = ()
        self._origins: dict[str, Origin] = {}
        self.failure_log = FailureLog()
        self.entry_point_group = ENTRY_POINT_GROUP
        self._owners: dict[str, dict[type, str]] = {hook: {} for hook in _LISTING_HOOKS}
        self._listings: dict[str, list[tuple[str, Any]]] = {}
        self._forget_audit_routes()

    # -- registration ------------------------------------------------------------

    def register(self, plugin: object, name: str | None = None) -> str | None:
        """pluggy's ``register``; also guards the plugin's keyloader hook implementations."""
        registered = super().register(plugin, name)
        if registered is not None:
            self._guard(plugin)
            self._listings.clear()
            self._forget_audit_routes()
        return registered

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any | None:
        """pluggy's ``unregister``; also forgets what the plugin contributed and its errors."""
        if name is None and plugin is not None:
            name = self.get_name(plugin)
        removed = super().unregister(plugin, name)
        if name is not None:
            self._origins.pop(name, None)
            self.failure_log.forget(name)
            for owners in self._owners.values():
                for cls in [cls for cls, owner in owners.items() if owner == name]:
                    del owners[cls]
        self._listings.clear()
        self._forget_audit_routes()
        return removed

    def register_plugin(self, plugin: object, name: str | None = None) -> None:
        """Register ``plugin`` explicitly (embedding apps) and check its hooks.

        A plugin already registered is left as it is. A hook that no spec
        declares, or an implementation whose arguments do not match its spec,
        raises :class:`PluginLoadError` and leaves the manager unchanged.
        """
        if self.is_registered(plugin):
            return
        name = name or self.get_canonical_name(plugin)
        try:
            self._register_checked(plugin, name, None)
        except Exception as exc:
            raise PluginLoadError(
                f"plugin {name!r} cannot be registered: {describe_exception(exc)}"
            ) from exc

    def load_entrypoints(self) -> None:
        """Load the ``keyloader`` entry points, once; each failure is recorded, not raised."""
        if self._entrypoints_loaded:
            return
        self._entrypoints_loaded = True
        if not self._autoload:
            return
        from ._entry_points import find_entry_points

        seen: set[str] = set()
        for entry_point in find_entry_points(ENTRY_POINT_GROUP):
            seen.add(entry_point.name)
            if self._allow is None or entry_point.name in self._allow:
                self._load_entrypoint(entry_point)
        if self._allow is not None:
            self._missing_allowed = tuple(sorted(self._allow - seen))

    def _load_entrypoint(self, entry_point: FoundEntryPoint) -> None:
        origin = Origin(entry_point.name, found=entry_point)
        try:
            plugin = entry_point.load()
            if self.is_registered(plugin):  # registered explicitly, or by a second entry point
                return
            self._register_checked(plugin, entry_point.name, origin)
        except Exception as exc:
            failure = self.failure_log.loading_failed(
                entry_point.name, origin.distribution, origin.version, exc
            )
            _logger().debug("plugin %r failed to load: %s", entry_point.name, failure.error)

    def _register_checked(self, plugin: object, name: str, origin: Origin | None) -> None:
        """Register and ``check_pending``; on failure undo the registration and re-raise."""
        try:
            if self.register(plugin, name=name) is None:
                raise ValueError(f"plugin {name!r} is None or its name is blocked")
            self.check_pending()
        except Exception:
            if self.get_plugin(name) is plugin:
                self.unregister(name=name)
            raise
        self._origins[name] = origin or UNKNOWN

    def _guard(self, plugin: object) -> None:
        """Guard each of ``plugin``'s implementations of a keyloader hook (hook_guards)."""
        for caller in self.get_hookcallers(plugin) or ():
            for impl in caller.get_hookimpls():
                if impl.plugin is not plugin:
                    continue
                if caller.name in _LISTING_HOOKS:
                    hook = caller.name
                    check = self._listing_check(hook)
                    guard(impl, self._hook_failed(hook), check=check, once=True)
                elif caller.name == CLI_HOOK:
                    if not (impl.wrapper or impl.hookwrapper):
                        setattr(impl, "function", _rolling_back(impl.function))  # noqa: B010
                    guard(impl, self._hook_failed(CLI_HOOK))
                elif caller.name == AUDIT_HOOK:
                    guard(impl, _observer_failed)
                elif caller.name == AUDIT_ACTIONS_HOOK:
                    guard(impl, self._hook_failed(AUDIT_ACTIONS_HOOK))

    def _hook_failed(self, hook: str) -> Any:
        def on_error(plugin: str, exc: Exception, arguments: Mapping[str, Any]) -> None:
            failure = self.failure_log.hook_failed(
                plugin, self.origin(plugin), exc, providers_lost=hook == PROVIDERS_HOOK
            )
            _logger().debug("plugin %r failed: %s", plugin, failure.error)

        return on_error

    def _listing_check(self, hook: str) -> Any:
        """Validate a listing implementation's classes (or a wrapper's result) and note owners."""
        owners = self._owners[hook]

        def check(plugin: str, before: Any, after: Any) -> Any:
            base = _listing_base(hook)
            if before is None:  # a plain implementation: one list of classes
                classes = check_classes(after, base, hook, plugin)
                for cls in classes:
                    owners.setdefault(cls, plugin)
                return classes
            if not isinstance(after, list):
                raise TypeError(f"{hook}() wrapper of plugin {plugin!r} returned {after!r}")
            for result in after:
                for cls in check_classes(result, base, hook, plugin):
                    owners.setdefault(cls, plugin)  # a class the wrapper added is its own
            return after

        return check

    # -- the hooks ------------------------------------------------------------------

    def add_cli_commands(self, app: Any) -> None:
        """Call ``keyloader_cli_commands(app)``; an implementation that raises is a failure.

        What a failing plain implementation added before raising is taken back
        out of ``app`` (typer's ``registered_commands``/``registered_groups``).
        """
        self.load_entrypoints()
        self.hook.keyloader_cli_commands(app=app)

    def listing(self, hook: str) -> list[tuple[str, Any]]:
        """``(plugin, class)`` rows of a class-listing hook, in pluggy's result order."""
        self.load_entrypoints()
        rows = self._listings.get(hook)
        if rows is None:
            owners = self._owners[hook]
            results = getattr(self.hook, hook)()
            rows = [(owners.get(cls, "?"), cls) for result in results if result for cls in result]
            self._listings[hook] = rows
        return rows

    def provider_rows(self) -> list[tuple[str, type[MasterKeyProvider]]]:
        """``(plugin, class)`` rows of ``keyloader_master_key_providers``."""
        return self.listing(PROVIDERS_HOOK)

    def store_rows(self) -> list[tuple[str, type[KeyStore]]]:
        """``(plugin, class)`` rows of ``keyloader_key_stores``."""
        return self.listing(STORES_HOOK)

    # -- failures --------------------------------------------------------------------

    @property
    def failures(self) -> list[PluginFailure]:
        """Every plugin failure so far (entry points load first, provider and store hooks run)."""
        for hook in _LISTING_HOOKS:
            self.listing(hook)
        return list(self.failure_log.all)

    @property
    def load_failures(self) -> list[PluginFailure]:
        """The plugins that failed before they were registered (import, registration, check)."""
        return list(self.failure_log.load)

    def origin(self, plugin: str) -> Origin:
        """Where the registered plugin ``plugin`` came from."""
        return self._origins.get(plugin, UNKNOWN)

    def error(self, plugin: str) -> str | None:
        """The first error recorded against the registered plugin ``plugin``, if any."""
        return self.failure_log.error(plugin)

    def provider_failures(self) -> list[PluginFailure]:
        """Failures of plugins whose providers are missing: not loaded, or their hook raised."""
        self.listing(PROVIDERS_HOOK)
        return self.failure_log.provider_failures()

    # -- listings (reports: keyloader._plugin_records) ----------------------------

    def plugin_infos(self) -> list[PluginInfo]:
        """Every registered plugin and every plugin that failed to load, sorted by name."""
        from ._plugin_records import plugin_infos

        return plugin_infos(self)

    def provider_infos(self, *, enterprise: bool) -> list[ProviderInfo]:
        """Every provider with its gate status, plus an ``error`` row per failed plugin."""
        from ._plugin_records import provider_infos

        return provider_infos(self, enterprise=enterprise)

    def provider_info(self, name: str, *, enterprise: bool) -> ProviderInfo:
        """The listing row of one provider, found by name or alias (see :meth:`find_provider`)."""
        from ._plugin_records import provider_info

        cls = self.find_provider(name)
        return provider_info(self, self.chosen_providers()[cls.name][0], cls, enterprise=enterprise)

    def loading_hint(self) -> str:
        """Why fewer plugins than installed may be loaded (autoload off, an allow-list)."""
        if not self._autoload:
            return (
                f"; plugin autoload is off ({NO_AUTOLOAD_VAR} or autoload=False), so only "
                f"plugins registered explicitly are used"
            )
        if self._allow is not None:
            hint = f"; {PLUGINS_VAR} limits loading to: {', '.join(sorted(self._allow)) or 'none'}"
            if self._missing_allowed:
                hint += f" (no installed entry point is named {', '.join(self._missing_allowed)})"
            return hint
        return ""


def make_plugin_manager(
    *,
    autoload: bool | None = None,
    allow: Collection[str] | None = None,
    plugins: Iterable[object] = (),
    env: Mapping[str, str] | None = None,
) -> KeyloaderPluginManager:
    """A new plugin manager with the hook specs, the built-in stores and ``plugins`` registered.

    ``autoload`` (default: not ``KEYLOADER_DISABLE_PLUGIN_AUTOLOAD``) says
    whether ``keyloader`` entry points load; ``allow`` (default:
    ``KEYLOADER_PLUGINS``, comma-separated) limits them to those entry-point
    names. Explicit arguments win over ``env`` (default ``os.environ``).
    Entry points load lazily, on the first query.
    """
    from ._version import __version__
    from .stores import builtin

    environ = os.environ if env is None else env
    if autoload is None:
        autoload = not _env_flag(environ, NO_AUTOLOAD_VAR)
    if isinstance(allow, str):
        allowed: frozenset[str] | None = _names(allow)
    elif allow is not None:
        allowed = frozenset(name.strip() for name in allow)
    else:
        raw = environ.get(PLUGINS_VAR, "")
        allowed = _names(raw) if raw.strip() else None
    pm = KeyloaderPluginManager(autoload=autoload, allow=allowed)
    pm._register_checked(builtin, BUILTIN_PLUGIN, Origin(None, "keyloader", __version__))
    for plugin in plugins:
        pm.register_plugin(plugin)
    return pm


# -- helpers -------------------------------------------------------------------------


def _logger() -> logging.Logger:
    """The ``keyloader.plugins`` logger (``logging`` is imported when something is logged)."""
    import logging

    return logging.getLogger("keyloader.plugins")


def _observer_failed(plugin: str, exc: Exception, arguments: Mapping[str, Any]) -> None:
    event = arguments.get("event")
    action = getattr(event, "action", "an event")
    _logger().warning(
        "audit observer of plugin %r failed on %r and was ignored",
        plugin,
        action,
        exc_info=(type(exc), exc, exc.__traceback__),
    )


def _rolling_back(function: Any) -> Any:
    """``function`` taking back what it added to the app when it raises (CLI hook)."""
    import functools

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        app = kwargs.get("app", args[0] if args else None)
        before = {
            attr: list(getattr(app, attr))
            for attr in _CLI_LISTS
            if isinstance(getattr(app, attr, None), list)
        }
        try:
            return function(*args, **kwargs)
        except Exception:
            for attr, items in before.items():
                getattr(app, attr)[:] = items
            raise

    return call


def _listing_base(hook: str) -> type:
    if hook == PROVIDERS_HOOK:
        return MasterKeyProvider
    from .stores.base import KeyStore  # here: looking up a provider needs no store

    return KeyStore


def __getattr__(name: str) -> Any:
    """The report rows (imported on first use) and the module logger."""
    if name in _RECORDS:
        from . import _plugin_records

        value = getattr(_plugin_records, name)
        globals()[name] = value
        return value
    if name == "logger":  # the module-level logger of earlier versions
        return _logger()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_RECORDS = frozenset({"PluginFailure", "PluginInfo", "ProviderInfo"})


def _names(raw: str) -> frozenset[str]:
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def _env_flag(environ: Mapping[str, str], variable: str) -> bool:
    from .booleans import parse_bool

    return parse_bool(environ.get(variable, ""), variable, empty=False)
