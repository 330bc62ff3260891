"""Registry lookups: which provider or key store a name means, from the classes plugins listed.

Pure functions over ``(plugin, class)`` rows, in the order the hook returned
them (pluggy's call order). The plugin manager feeds them; they raise the
duplicate errors and resolve aliases, and know nothing of pluggy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import DuplicateKeyStoreError, DuplicateProviderError
from .gate import qualname

if TYPE_CHECKING:
    from .providers import MasterKeyProvider
    from .stores.base import KeyStore

__all__ = [
    "ALIASES",
    "PLUGINS_VAR",
    "Label",
    "check_classes",
    "choose_key_stores",
    "choose_providers",
    "provider_aliases",
]

ALIASES: Mapping[str, str] = MappingProxyType(
    {"env_master_key": "env", "vault_master_key": "vault", "kms_encrypted_master_key": "aws-kms"}
)
"""Acra strategy names accepted as provider names."""

PLUGINS_VAR = "KEYLOADER_PLUGINS"
"""The environment variable that limits which entry points load."""

Label = Callable[[str, "type | None"], str]
"""``label(plugin, cls)``: how a message names a plugin (and one of its classes)."""

_Class = TypeVar("_Class", bound=type)
_FIX = f"uninstall one, or list the plugins to load in {PLUGINS_VAR}"


def choose_providers(
    rows: Iterable[tuple[str, type[MasterKeyProvider]]], label: Label
) -> dict[str, tuple[str, type[MasterKeyProvider]]]:
    """Name -> (plugin, class), sorted by name, after placeholders yield.

    Of two placeholders with one name the first row wins; two non-placeholder
    classes with one name raise :class:`DuplicateProviderError`.
    """
    chosen: dict[str, tuple[str, type[MasterKeyProvider]]] = {}
    for plugin, cls in rows:
        current = chosen.get(cls.name)
        if current is None or (current[1].placeholder and not cls.placeholder):
            chosen[cls.name] = (plugin, cls)
        elif current[1] is not cls and not cls.placeholder and not current[1].placeholder:
            raise DuplicateProviderError(
                f"two plugins register a master-key provider named {cls.name!r}: "
                f"{label(current[0], current[1])} and {label(plugin, cls)}; {_FIX}"
            )
    return dict(sorted(chosen.items()))


def provider_aliases(
    chosen: Mapping[str, tuple[str, type[MasterKeyProvider]]], label: Label
) -> dict[str, str]:
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
                other = f"the provider {alias!r} of {label(chosen[alias][0], None)}"
            elif alias in ALIASES:
                other = f"Acra's strategy name for provider {ALIASES[alias]!r}"
            elif alias in claimed:
                other = f"an alias of provider {aliases[alias]!r} of {label(claimed[alias], None)}"
            else:
                aliases[alias] = cls.name
                claimed[alias] = plugin
                continue
            raise DuplicateProviderError(
                f"provider {cls.name!r} of {label(plugin, None)} claims the alias {alias!r}, "
                f"which is {other}; {_FIX}"
            )
    return aliases


def choose_key_stores(
    rows: Iterable[tuple[str, type[KeyStore]]], label: Label
) -> dict[str, tuple[str, type[KeyStore]]]:
    """Name -> (plugin, class), sorted by name; two classes with one name raise."""
    chosen: dict[str, tuple[str, type[KeyStore]]] = {}
    for plugin, cls in rows:
        current = chosen.get(cls.name)
        if current is None:
            chosen[cls.name] = (plugin, cls)
        elif current[1] is not cls:
            raise DuplicateKeyStoreError(
                f"two plugins register a key store named {cls.name!r}: "
                f"{label(current[0], current[1])} and {label(plugin, cls)}; {_FIX}"
            )
    return dict(sorted(chosen.items()))


def check_classes(returned: object, base: type[_Class], hook_name: str, plugin: str) -> list[Any]:
    """What a class-listing hook implementation returned: a list of named ``base`` subclasses."""
    if returned is None:
        return []
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
                f"{hook_name}() of plugin {plugin!r} returned {qualname(item)}, "
                f"which sets no `name`"
            )
    return list(returned)
