"""The rows the plugin manager reports: plugin failures, plugins, providers.

They live apart from :mod:`keyloader.plugins` (which exports them) so that
looking up and loading a provider, which needs none of them, does not pay for
creating these dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .providers import MasterKeyProvider, Option, ProviderStatus

__all__ = ["PluginFailure", "PluginInfo", "ProviderInfo"]


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
