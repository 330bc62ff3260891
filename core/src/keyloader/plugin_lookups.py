"""Lookups of the plugin manager: which provider or key store a name means, and what is missing.

:class:`PluginLookups` is mixed into :class:`keyloader.plugins.KeyloaderPluginManager`.
It applies the rules of :mod:`keyloader.registry` to the rows the class-listing
hooks returned, and the enterprise gate of :mod:`keyloader.gate`; it says what
to do when a name is not registered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import gate
from .errors import (
    KeyloaderError,
    KeyStoreNotFoundError,
    NotRegisteredError,
    PluginLoadError,
    ProviderNotFoundError,
)
from .registry import choose_key_stores, choose_providers, provider_aliases

if TYPE_CHECKING:
    from .plugin_failures import FailureLog
    from .plugin_origin import Origin
    from .providers import MasterKeyProvider, ProviderStatus
    from .stores.base import KeyStore

__all__ = ["PluginLookups"]


class PluginLookups:
    """Provider and key-store lookups over the hook results of a plugin manager."""

    failure_log: FailureLog
    entry_point_group: str

    def provider_rows(self) -> list[tuple[str, type[MasterKeyProvider]]]:
        raise NotImplementedError

    def store_rows(self) -> list[tuple[str, type[KeyStore]]]:
        raise NotImplementedError

    def origin(self, plugin: str) -> Origin:
        raise NotImplementedError

    def loading_hint(self) -> str:
        """Why fewer plugins than installed may be loaded (autoload off, an allow-list)."""
        return ""

    # -- providers -----------------------------------------------------------------------

    def chosen_providers(self) -> dict[str, tuple[str, type[MasterKeyProvider]]]:
        """Provider name -> (plugin, class) after placeholders yield; raises on duplicates."""
        return choose_providers(self.provider_rows(), self.label)

    def provider_aliases(self) -> dict[str, str]:
        """Alias -> canonical provider name (Acra strategy names and class aliases)."""
        return provider_aliases(self.chosen_providers(), self.label)

    def provider_classes(self) -> dict[str, type[MasterKeyProvider]]:
        """Canonical provider name -> class, sorted by name; placeholders yield.

        Raises :class:`DuplicateProviderError` when two non-placeholder
        providers (or two providers' aliases) claim one name.
        """
        self.provider_aliases()  # alias conflicts are duplicates too
        return {name: cls for name, (_, cls) in self.chosen_providers().items()}

    def find_provider(self, name: str) -> type[MasterKeyProvider]:
        """The provider class registered as ``name`` or under that alias. No gate here.

        Missing: :class:`PluginLoadError` if some plugin failed to load (it may
        hold the provider), else :class:`ProviderNotFoundError`.
        """
        chosen = self.chosen_providers()
        aliases = self.provider_aliases()  # an alias conflict is a duplicate, whatever is asked
        canonical = name if name in chosen else aliases.get(name)
        if canonical is not None:
            return chosen[canonical][1]
        raise self._missing("master-key provider", name, sorted(chosen))

    def check_enterprise(self, cls: type[MasterKeyProvider], *, enterprise: bool) -> None:
        """The enterprise gate (:func:`keyloader.gate.check_enterprise`) before a provider loads."""
        owner = next((p for p, row in self.provider_rows() if row is cls), None)
        gate.check_enterprise(cls, enterprise=enterprise, owner=owner, group=self.entry_point_group)

    def status(self, cls: type[MasterKeyProvider], *, enterprise: bool) -> ProviderStatus:
        """What the gate would do with ``cls``: available, locked or unavailable."""
        return gate.status(cls, enterprise=enterprise)

    # -- key stores ------------------------------------------------------------------------

    def key_store_classes(self) -> dict[str, type[KeyStore]]:
        """Store name -> class, sorted by name; two stores with one name raise.

        Raises :class:`DuplicateKeyStoreError`.
        """
        chosen = choose_key_stores(self.store_rows(), self.label)
        return {name: cls for name, (_, cls) in chosen.items()}

    def find_key_store(self, name: str) -> type[KeyStore]:
        """The store class registered as ``name``; missing is typed like :meth:`find_provider`
        (:class:`KeyStoreNotFoundError` instead of :class:`ProviderNotFoundError`)."""
        stores = self.key_store_classes()
        if name in stores:
            return stores[name]
        raise self._missing("key store", name, sorted(stores))

    # -- messages --------------------------------------------------------------------------

    def label(self, plugin: str, cls: type | None = None) -> str:
        """``plugin 'name' (distribution d 1.0, class m.C)``: what a message names."""
        origin = self.origin(plugin)
        details = []
        if origin.distribution is not None:
            version = f" {origin.version}" if origin.version else ""
            details.append(f"distribution {origin.distribution}{version}")
        if cls is not None:
            details.append(f"class {gate.qualname(cls)}")
        return f"plugin {plugin!r}" + (f" ({', '.join(details)})" if details else "")

    def _missing(self, kind: str, name: str, available: Sequence[str]) -> KeyloaderError:
        """The error for a provider or store that is not registered."""
        registered = ", ".join(available) or "none"
        failures = self.failure_log.all
        if failures:
            listed = "; ".join(f.describe() for f in failures)
            return PluginLoadError(
                f"no {kind} named {name!r} is registered, and {len(failures)} plugin "
                f"failure(s) may be the cause: {listed}. Fix or uninstall the failing plugin "
                f"(`keyloader plugins` lists them); registered: {registered}"
            )
        error: type[NotRegisteredError]
        error = KeyStoreNotFoundError if kind == "key store" else ProviderNotFoundError
        return error(
            f"no {kind} named {name!r} is registered (registered: {registered}); check the "
            f"spelling or install the plugin that provides it{self.loading_hint()}"
        )
