"""The rows the plugin manager reports (plugin failures, plugins, providers) and how they are built.

They live apart from :mod:`keyloader.plugins` (which exports them) so that
looking up and loading a provider, which needs none of them, does not pay for
creating these dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import gate
from .providers import ProviderStatus

if TYPE_CHECKING:
    from .plugins import KeyloaderPluginManager
    from .providers import MasterKeyProvider, Option

__all__ = ["PluginFailure", "PluginInfo", "ProviderInfo", "plugin_infos", "provider_infos"]


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that failed to load, register, pass ``check_pending`` or run a hook.

    ``entry_point`` is the entry-point name (the plugin name for plugins
    registered explicitly); ``error`` is ``"ExcType: message"``.
    """

    entry_point: str
    distribution: str | None
    version: str | None
    error: str

    def describe(self) -> str:
        """One line: which plugin, from which distribution, and why it failed."""
        origin = " ".join(part for part in (self.distribution, self.version) if part)
        where = f" (distribution {origin})" if origin else ""
        return f"plugin {self.entry_point!r}{where}: {self.error}"


@dataclass(frozen=True)
class PluginInfo:
    """One row of ``keyloader plugins``. ``status`` is ``"ok"`` or ``"error"``."""

    name: str
    entry_point: str | None
    distribution: str | None
    version: str | None
    hooks: tuple[str, ...]
    providers: tuple[str, ...]
    stores: tuple[str, ...]
    status: str
    error: str | None


@dataclass(frozen=True)
class ProviderInfo:
    """One row of ``keyloader providers``: a provider, or a plugin that failed to load.

    ``cls`` is None for the rows of failed plugins (status ``error``).
    """

    name: str
    plugin: str
    description: str
    enterprise: bool
    placeholder: bool
    aliases: tuple[str, ...]
    status: ProviderStatus
    cls: type[MasterKeyProvider] | None
    error: str | None

    @property
    def options(self) -> tuple[Option, ...]:
        """The provider's option schema (with ``keystore_version``); empty for failed plugins."""
        return self.cls.option_schema() if self.cls is not None else ()


# -- building the reports ------------------------------------------------------------


def plugin_infos(pm: KeyloaderPluginManager) -> list[PluginInfo]:
    """Every registered plugin and every plugin that failed to load, sorted by name."""
    providers = pm.provider_rows()
    stores = pm.store_rows()
    infos: list[PluginInfo] = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:  # blocked name
            continue
        origin = pm.origin(name)
        error = pm.error(name)
        infos.append(
            PluginInfo(
                name=name,
                entry_point=origin.entry_point,
                distribution=origin.distribution,
                version=origin.version,
                hooks=tuple(sorted(c.name for c in pm.get_hookcallers(plugin) or ())),
                providers=tuple(cls.name for owner, cls in providers if owner == name),
                stores=tuple(cls.name for owner, cls in stores if owner == name),
                status="error" if error is not None else "ok",
                error=error,
            )
        )
    for failure in pm.load_failures:
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


def provider_infos(pm: KeyloaderPluginManager, *, enterprise: bool) -> list[ProviderInfo]:
    """Every provider with its gate status, plus an ``error`` row per failed plugin."""
    chosen = pm.chosen_providers()
    rows = [
        provider_info(pm, plugin, cls, enterprise=enterprise) for plugin, cls in chosen.values()
    ]
    for failure in pm.provider_failures():
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


def provider_info(
    pm: KeyloaderPluginManager, plugin: str, cls: type[MasterKeyProvider], *, enterprise: bool
) -> ProviderInfo:
    """The listing row of provider ``cls``, registered by ``plugin``."""
    aliases = pm.provider_aliases()
    return ProviderInfo(
        name=cls.name,
        plugin=plugin,
        description=cls.description,
        enterprise=gate.is_enterprise(cls),
        placeholder=bool(cls.placeholder),
        aliases=tuple(sorted(a for a, target in aliases.items() if target == cls.name)),
        status=gate.status(cls, enterprise=enterprise),
        cls=cls,
        error=None,
    )
