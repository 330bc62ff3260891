"""The plugin manager: entry-point loading, per-plugin failures, allow-list, the enterprise gate.

:func:`make_plugin_manager` builds a new :class:`KeyloaderPluginManager` each
time (there is no global one). It registers the hook specs and the built-in
stores at once; the ``keyloader`` entry points load lazily, on the first query,
each inside its own ``try``: a plugin that fails is recorded as a
:class:`PluginFailure` and never stops the others (DESIGN §3).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy

from . import hookspecs
from .errors import (
    ConfigError,
    DuplicateKeyStoreError,
    DuplicateProviderError,
    EnterpriseFeatureError,
    KeyloaderError,
    PluginLoadError,
    ProviderNotFoundError,
    ProviderNotImplementedError,
)
from .providers import MasterKeyProvider, ProviderStatus

if TYPE_CHECKING:
    import logging

    from ._entry_points import FoundEntryPoint
    from ._plugin_records import PluginFailure, PluginInfo, ProviderInfo
    from .audit import AuditEvent
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

ALIASES: Mapping[str, str] = MappingProxyType(
    {"env_master_key": "env", "vault_master_key": "vault", "kms_encrypted_master_key": "aws-kms"}
)
"""Acra strategy names accepted as provider names."""

ENTERPRISE_NAMES: frozenset[str] = frozenset({"aws-kms", "gcp-kms", "keywhiz"})
"""Provider names the enterprise gate always applies to, whatever their class says."""

ENTRY_POINT_GROUP = "keyloader"
"""The entry-point group plugins are published under (also pluggy's project name)."""

BUILTIN_PLUGIN = "builtin"
"""The name the built-in stores plugin is registered under."""

PLUGINS_VAR = "KEYLOADER_PLUGINS"
NO_AUTOLOAD_VAR = "KEYLOADER_DISABLE_PLUGIN_AUTOLOAD"

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})
_PROVIDERS_HOOK = "keyloader_master_key_providers"
_STORES_HOOK = "keyloader_key_stores"
_ENABLE_HINT = (
    "enable it with KEYLOADER_ENTERPRISE=1, `enterprise = true` in keyloader.toml, "
    "--enterprise on the command line, or enterprise=True in the Python API"
)

_Registered = TypeVar("_Registered", bound=type)


class _Origin:
    """Where a registered plugin came from.

    An entry point's distribution name and version are read from its metadata
    only when something shows them (a listing, an error), not on every load.
    """

    __slots__ = ("_distribution", "_found", "_version", "entry_point")

    def __init__(
        self,
        entry_point: str | None,
        distribution: str | None = None,
        version: str | None = None,
        *,
        found: FoundEntryPoint | None = None,
    ) -> None:
        self.entry_point = entry_point
        self._distribution = distribution
        self._version = version
        self._found = found

    @property
    def distribution(self) -> str | None:
        self._read_dist()
        return self._distribution

    @property
    def version(self) -> str | None:
        self._read_dist()
        return self._version

    def _read_dist(self) -> None:
        found, self._found = self._found, None
        if found is not None:
            self._distribution, self._version = found.distribution()


class KeyloaderPluginManager(pluggy.PluginManager):
    """A pluggy manager that loads ``keyloader`` entry points one by one and records failures.

    Build it with :func:`make_plugin_manager`. Every query loads the entry
    points first (once). Provider and store hooks are called once per plugin,
    each separately, so one plugin that raises does not hide the others.
    """

    def __init__(self, *, autoload: bool = True, allow: frozenset[str] | None = None) -> None:
        super().__init__(ENTRY_POINT_GROUP)
        self.add_hookspecs(hookspecs)
        self._autoload = autoload
        self._allow = allow
        self._entrypoints_loaded = False
        self._missing_allowed: tuple[str, ...] = ()
        self._origins: dict[str, _Origin] = {}
        self._failures: list[PluginFailure] = []
        self._load_failures: list[PluginFailure] = []  # plugins that never got registered
        self._errors: dict[str, str] = {}  # registered plugin name -> its first error
        self._provider_hook_failed: set[str] = set()
        self._provider_rows: dict[str, tuple[type[MasterKeyProvider], ...]] = {}
        self._store_rows: dict[str, tuple[type[KeyStore], ...]] = {}

    # -- registration ------------------------------------------------------------

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any | None:
        """pluggy's ``unregister``; also forgets what the plugin contributed and its errors."""
        if name is None and plugin is not None:
            name = self.get_name(plugin)
        removed = super().unregister(plugin, name)
        if name is not None:
            self._origins.pop(name, None)
            self._errors.pop(name, None)
            self._provider_hook_failed.discard(name)
            self._provider_rows.pop(name, None)
            self._store_rows.pop(name, None)
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
            raise PluginLoadError(f"plugin {name!r} cannot be registered: {_describe(exc)}") from (
                exc
            )

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
        origin = _Origin(entry_point.name, found=entry_point)
        try:
            plugin = entry_point.load()
            if self.is_registered(plugin):  # registered explicitly, or by a second entry point
                return
            self._register_checked(plugin, entry_point.name, origin)
        except Exception as exc:
            from ._plugin_records import PluginFailure

            failure = PluginFailure(
                entry_point.name, origin.distribution, origin.version, _describe(exc)
            )
            self._failures.append(failure)
            self._load_failures.append(failure)
            _logger().debug("plugin %r failed to load: %s", entry_point.name, failure.error)

    def _register_checked(self, plugin: object, name: str, origin: _Origin | None) -> None:
        """Register and ``check_pending``; on failure undo the registration and re-raise."""
        try:
            if self.register(plugin, name=name) is None:
                raise ValueError(f"plugin {name!r} is None or its name is blocked")
            self.check_pending()
        except Exception:
            if self.get_plugin(name) is plugin:
                self.unregister(name=name)
            raise
        self._origins[name] = origin or _Origin(None, None, None)

    # -- failures and listings ---------------------------------------------------

    @property
    def failures(self) -> list[PluginFailure]:
        """Every plugin failure so far (entry points load first, provider and store hooks run)."""
        self.load_entrypoints()
        self._collect_providers()
        self._collect_stores()
        return list(self._failures)

    def plugin_infos(self) -> list[PluginInfo]:
        """Every registered plugin and every plugin that failed to load, sorted by name."""
        from ._plugin_records import PluginInfo

        self.load_entrypoints()
        providers = self._collect_providers()
        stores = self._collect_stores()
        infos: list[PluginInfo] = []
        for name, plugin in self.list_name_plugin():
            if plugin is None:  # blocked name
                continue
            origin = self._origins.get(name, _Origin(None, None, None))
            error = self._errors.get(name)
            infos.append(
                PluginInfo(
                    name=name,
                    entry_point=origin.entry_point,
                    distribution=origin.distribution,
                    version=origin.version,
                    hooks=tuple(sorted(c.name for c in self.get_hookcallers(plugin) or ())),
                    providers=tuple(cls.name for owner, cls in providers if owner == name),
                    stores=tuple(cls.name for owner, cls in stores if owner == name),
                    status="error" if error is not None else "ok",
                    error=error,
                )
            )
        for failure in self._load_failures:
            infos.append(
                PluginInfo(
                    name=failure.entry_point,
                    entry_point=failure.entry_point,
                    distribution=failure.distribution,
                    version=failure.version,
                    hooks=(),
                    providers=(),
                    stores=(),
                    status="error",
                    error=failure.error,
                )
            )
        return sorted(infos, key=lambda info: info.name)

    # -- providers ---------------------------------------------------------------

    def provider_classes(self) -> dict[str, type[MasterKeyProvider]]:
        """Canonical provider name -> class, sorted by name; placeholders yield.

        Raises :class:`DuplicateProviderError` when two non-placeholder
        providers (or two providers' aliases) claim one name.
        """
        chosen = self._chosen_providers()
        self._aliases(chosen)  # alias conflicts are duplicates too
        return {name: cls for name, (_, cls) in chosen.items()}

    def provider_infos(self, *, enterprise: bool) -> list[ProviderInfo]:
        """Every provider with its gate status, plus an ``error`` row per failed plugin."""
        from ._plugin_records import ProviderInfo

        chosen = self._chosen_providers()
        aliases = self._aliases(chosen)
        rows = [
            self._provider_info(plugin, cls, aliases, enterprise=enterprise)
            for plugin, cls in chosen.values()
        ]
        for failure in self._provider_failures():
            rows.append(
                ProviderInfo(
                    name=failure.entry_point,
                    plugin=failure.entry_point,
                    description=f"{failure.describe()} (its providers are missing)",
                    enterprise=False,
                    placeholder=False,
                    aliases=(),
                    status=ProviderStatus.ERROR,
                    cls=None,
                    error=failure.error,
                )
            )
        return sorted(rows, key=lambda row: (row.name, row.plugin))

    def provider_info(self, name: str, *, enterprise: bool) -> ProviderInfo:
        """The listing row of one provider, found by name or alias (see :meth:`find_provider`)."""
        cls = self.find_provider(name)
        chosen = self._chosen_providers()
        plugin, _ = chosen[cls.name]
        return self._provider_info(plugin, cls, self._aliases(chosen), enterprise=enterprise)

    def find_provider(self, name: str) -> type[MasterKeyProvider]:
        """The provider class registered as ``name`` or under that alias. No gate here.

        Missing: :class:`PluginLoadError` if some plugin failed to load (it may
        hold the provider), else :class:`ProviderNotFoundError`.
        """
        chosen = self._chosen_providers()
        aliases = self._aliases(chosen)
        canonical = name if name in chosen else aliases.get(name)
        if canonical is not None:
            return chosen[canonical][1]
        raise self._missing("master-key provider", name, sorted(chosen))

    def check_enterprise(self, cls: type[MasterKeyProvider], *, enterprise: bool) -> None:
        """The enterprise gate (DESIGN §6), checked by the core before a provider loads.

        Flag off and the provider is enterprise: :class:`EnterpriseFeatureError`.
        The class is a placeholder (flag on, or a non-enterprise placeholder):
        :class:`ProviderNotImplementedError`.
        """
        what = _what(cls)
        if _is_enterprise(cls) and not enterprise:
            raise EnterpriseFeatureError(
                f"provider {cls.name!r} ({what}) is an Enterprise Edition feature and the "
                f"enterprise flag is off; {_ENABLE_HINT}"
            )
        if cls.placeholder:
            owner = self._owner(cls)
            shipped = f" (plugin {owner!r})" if owner is not None else ""
            raise ProviderNotImplementedError(
                f"provider {cls.name!r} ({what}) is only a placeholder in the open-source "
                f"package{shipped}: install an Enterprise Edition implementation, a plugin in "
                f"the {ENTRY_POINT_GROUP!r} entry-point group that registers a non-placeholder "
                f"provider named {cls.name!r}"
            )

    def status(self, cls: type[MasterKeyProvider], *, enterprise: bool) -> ProviderStatus:
        """What the gate would do with ``cls``: available, locked or unavailable."""
        if _is_enterprise(cls) and not enterprise:
            return ProviderStatus.LOCKED
        if cls.placeholder:
            return ProviderStatus.UNAVAILABLE
        return ProviderStatus.AVAILABLE

    def _provider_info(
        self,
        plugin: str,
        cls: type[MasterKeyProvider],
        aliases: Mapping[str, str],
        *,
        enterprise: bool,
    ) -> ProviderInfo:
        from ._plugin_records import ProviderInfo

        return ProviderInfo(
            name=cls.name,
            plugin=plugin,
            description=cls.description,
            enterprise=_is_enterprise(cls),
            placeholder=bool(cls.placeholder),
            aliases=tuple(sorted(a for a, target in aliases.items() if target == cls.name)),
            status=self.status(cls, enterprise=enterprise),
            cls=cls,
            error=None,
        )

    def _chosen_providers(self) -> dict[str, tuple[str, type[MasterKeyProvider]]]:
        """Name -> (plugin, class) after placeholders yield; raises on duplicates."""
        self.load_entrypoints()
        chosen: dict[str, tuple[str, type[MasterKeyProvider]]] = {}
        for plugin, cls in self._collect_providers():
            current = chosen.get(cls.name)
            if current is None or (current[1].placeholder and not cls.placeholder):
                chosen[cls.name] = (plugin, cls)
            elif current[1] is not cls and not cls.placeholder and not current[1].placeholder:
                raise DuplicateProviderError(
                    f"two plugins register a master-key provider named {cls.name!r}: "
                    f"{self._label(current[0], current[1])} and {self._label(plugin, cls)}; "
                    f"uninstall one, or list the "
                    f"plugins to load in {PLUGINS_VAR}"
                )
        return dict(sorted(chosen.items()))

    def _aliases(self, chosen: Mapping[str, tuple[str, type[MasterKeyProvider]]]) -> dict[str, str]:
        """Alias -> canonical name: Acra's strategy names, then each class's ``aliases``.

        A class alias that is another provider's name, an Acra strategy name of
        another provider, or another class's alias raises DuplicateProviderError.
        """
        aliases = {alias: target for alias, target in ALIASES.items() if target in chosen}
        claimed: dict[str, str] = {}
        for plugin, cls in chosen.values():
            for alias in cls.aliases:
                if alias == cls.name or aliases.get(alias) == cls.name:
                    continue
                if alias in chosen:
                    other = f"the provider {alias!r} of {self._label(chosen[alias][0])}"
                elif alias in ALIASES:
                    other = f"Acra's strategy name for provider {ALIASES[alias]!r}"
                elif alias in claimed:
                    other = (
                        f"an alias of provider {aliases[alias]!r} of {self._label(claimed[alias])}"
                    )
                else:
                    aliases[alias] = cls.name
                    claimed[alias] = plugin
                    continue
                raise DuplicateProviderError(
                    f"provider {cls.name!r} of {self._label(plugin)} claims the alias {alias!r}, "
                    f"which is {other}; uninstall one, or list the plugins to load in "
                    f"{PLUGINS_VAR}"
                )
        return aliases

    def _owner(self, cls: type[MasterKeyProvider]) -> str | None:
        return next((plugin for plugin, row in self._collect_providers() if row is cls), None)

    def _provider_failures(self) -> list[PluginFailure]:
        """Failures of plugins whose providers are missing: not loaded, or their hook raised."""
        failed = list(self._load_failures)
        failed += [f for f in self._failures if f.entry_point in self._provider_hook_failed]
        unique: dict[str, PluginFailure] = {}
        for failure in failed:
            unique.setdefault(failure.entry_point, failure)
        return list(unique.values())

    # -- key stores --------------------------------------------------------------

    def key_store_classes(self) -> dict[str, type[KeyStore]]:
        """Store name -> class, sorted by name; two stores with one name raise.

        Raises :class:`DuplicateKeyStoreError`.
        """
        self.load_entrypoints()
        chosen: dict[str, tuple[str, type[KeyStore]]] = {}
        for plugin, cls in self._collect_stores():
            current = chosen.get(cls.name)
            if current is None:
                chosen[cls.name] = (plugin, cls)
            elif current[1] is not cls:
                raise DuplicateKeyStoreError(
                    f"two plugins register a key store named {cls.name!r}: "
                    f"{self._label(current[0], current[1])} and {self._label(plugin, cls)}; "
                    f"uninstall one, or list the "
                    f"plugins to load in {PLUGINS_VAR}"
                )
        return {name: cls for name, (_, cls) in sorted(chosen.items())}

    def find_key_store(self, name: str) -> type[KeyStore]:
        """The store class registered as ``name``; missing is typed like :meth:`find_provider`."""
        stores = self.key_store_classes()
        if name in stores:
            return stores[name]
        raise self._missing("key store", name, sorted(stores))

    # -- hooks called one plugin at a time -----------------------------------------

    def emit(self, event: AuditEvent) -> None:
        """Send ``event`` to every ``keyloader_audit_event`` observer; one that raises is logged."""
        self.load_entrypoints()
        arguments = {"event": event}
        for impl in reversed(self.hook.keyloader_audit_event.get_hookimpls()):
            if impl.hookwrapper or impl.wrapper:
                continue
            try:
                impl.function(*(arguments[name] for name in impl.argnames))
            except Exception:
                _logger().warning(
                    "audit observer of plugin %r failed on %r and was ignored",
                    impl.plugin_name,
                    event.action,
                    exc_info=True,
                )

    def add_cli_commands(self, app: Any) -> None:
        """Call each plugin's ``keyloader_cli_commands(app)``; one that raises is a failure.

        What a failing plugin added before raising is taken back out of ``app``
        (typer's ``registered_commands``/``registered_groups``).
        """
        self.load_entrypoints()
        for plugin, impls in self._impls_by_plugin("keyloader_cli_commands"):
            before = {
                attr: list(getattr(app, attr))
                for attr in ("registered_commands", "registered_groups")
                if isinstance(getattr(app, attr, None), list)
            }
            try:
                for impl in impls:
                    impl.function(*({"app": app}[name] for name in impl.argnames))
            except Exception as exc:
                for attr, items in before.items():
                    getattr(app, attr)[:] = items
                self._record(plugin, exc)

    # -- collection ----------------------------------------------------------------

    def _collect_providers(self) -> list[tuple[str, type[MasterKeyProvider]]]:
        return self._collect(_PROVIDERS_HOOK, self._provider_rows, MasterKeyProvider)

    def _collect_stores(self) -> list[tuple[str, type[KeyStore]]]:
        from .stores.base import KeyStore  # here: looking up a provider needs no store

        return self._collect(_STORES_HOOK, self._store_rows, KeyStore)

    def _collect(
        self,
        hook_name: str,
        cache: dict[str, tuple[_Registered, ...]],
        base: type,
    ) -> list[tuple[str, _Registered]]:
        """(plugin, class) rows of a class-listing hook in registration order, cached per plugin."""
        rows: list[tuple[str, _Registered]] = []
        for plugin, impls in self._impls_by_plugin(hook_name):
            if plugin not in cache:
                try:
                    cache[plugin] = tuple(
                        cls
                        for impl in impls
                        for cls in _classes(impl.function(), base, hook_name, plugin)
                    )
                except Exception as exc:
                    cache[plugin] = ()
                    self._record(plugin, exc)
                    if hook_name == _PROVIDERS_HOOK:
                        self._provider_hook_failed.add(plugin)
            rows += [(plugin, cls) for cls in cache[plugin]]
        return rows

    def _impls_by_plugin(self, hook_name: str) -> list[tuple[str, list[pluggy.HookImpl]]]:
        """The plain (non-wrapper) implementations of a hook, grouped by plugin, in order."""
        caller: pluggy.HookCaller = getattr(self.hook, hook_name)
        grouped: dict[str, list[pluggy.HookImpl]] = {}
        for impl in caller.get_hookimpls():
            if not (impl.hookwrapper or impl.wrapper):
                grouped.setdefault(impl.plugin_name, []).append(impl)
        return [(name, grouped[name]) for name, _ in self.list_name_plugin() if name in grouped]

    def _record(self, plugin: str, exc: Exception) -> None:
        from ._plugin_records import PluginFailure

        origin = self._origins.get(plugin, _Origin(None, None, None))
        failure = PluginFailure(
            origin.entry_point or plugin, origin.distribution, origin.version, _describe(exc)
        )
        self._failures.append(failure)
        self._errors.setdefault(plugin, failure.error)
        _logger().debug("plugin %r failed: %s", plugin, failure.error)

    # -- messages ------------------------------------------------------------------

    def _label(self, plugin: str, cls: type | None = None) -> str:
        """``plugin 'name' (distribution d 1.0, class m.C)``: what a message names."""
        origin = self._origins.get(plugin)
        details = []
        if origin is not None and origin.distribution is not None:
            version = f" {origin.version}" if origin.version else ""
            details.append(f"distribution {origin.distribution}{version}")
        if cls is not None:
            details.append(f"class {_qualname(cls)}")
        return f"plugin {plugin!r}" + (f" ({', '.join(details)})" if details else "")

    def _missing(self, kind: str, name: str, available: Sequence[str]) -> KeyloaderError:
        """The error for a provider or store that is not registered."""
        registered = ", ".join(available) or "none"
        failures = self._failures
        if failures:
            listed = "; ".join(f.describe() for f in failures)
            return PluginLoadError(
                f"no {kind} named {name!r} is registered, and {len(failures)} plugin "
                f"failure(s) may be the cause: {listed}. Fix or uninstall the failing plugin "
                f"(`keyloader plugins` lists them); registered: {registered}"
            )
        return ProviderNotFoundError(
            f"no {kind} named {name!r} is registered (registered: {registered}); check the "
            f"spelling or install the plugin that provides it{self._loading_hint()}"
        )

    def _loading_hint(self) -> str:
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
    from . import __version__
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
    pm._register_checked(builtin, BUILTIN_PLUGIN, _Origin(None, "keyloader", __version__))
    for plugin in plugins:
        pm.register_plugin(plugin)
    return pm


# -- helpers -------------------------------------------------------------------------


def _logger() -> logging.Logger:
    """The ``keyloader.plugins`` logger (``logging`` is imported when something is logged)."""
    import logging

    return logging.getLogger("keyloader.plugins")


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


def _is_enterprise(cls: type[MasterKeyProvider]) -> bool:
    return bool(cls.enterprise) or cls.name in ENTERPRISE_NAMES


def _what(cls: type[MasterKeyProvider]) -> str:
    return cls.description.strip().rstrip(".") or f"provider class {_qualname(cls)}"


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _describe(exc: BaseException) -> str:
    """``"ExcType: message"`` (just the type when the message is empty)."""
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _names(raw: str) -> frozenset[str]:
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def _env_flag(environ: Mapping[str, str], variable: str) -> bool:
    raw = environ.get(variable, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigError(
        f"{variable}={environ[variable]!r} is not a boolean: set it to 1, true or yes "
        f"(or 0, false, no), or unset it"
    )


def _classes(returned: object, base: type, hook_name: str, plugin: str) -> tuple[Any, ...]:
    """Check what a provider or store hook returned: a list of ``base`` subclasses with a name."""
    if returned is None:
        return ()
    if not isinstance(returned, list | tuple):
        raise TypeError(f"{hook_name}() of plugin {plugin!r} returned {returned!r}, not a list")
    for item in returned:
        if not (isinstance(item, type) and issubclass(item, base)):
            raise TypeError(
                f"{hook_name}() of plugin {plugin!r} returned {item!r}, "
                f"not a subclass of {base.__name__}"
            )
        name = getattr(item, "name", None)
        if not isinstance(name, str) or not name:
            raise TypeError(
                f"{hook_name}() of plugin {plugin!r} returned {_qualname(item)}, "
                f"which sets no `name`"
            )
    return tuple(returned)
