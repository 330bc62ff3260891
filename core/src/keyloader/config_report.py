"""``keyloader config show``: the resolved configuration, each value with its source.

The same resolution the commands use (:mod:`keyloader.config`,
:mod:`keyloader.build`), printed instead of acted on. Secret option values are
never shown: a given secret appears as :data:`REDACTED`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from .build import resolve_provider

if TYPE_CHECKING:
    from .config import Settings
    from .option_values import ResolvedOptions
    from .plugins import KeyloaderPluginManager

__all__ = ["REDACTED", "SETTINGS", "ConfigRow", "describe_configuration"]

REDACTED = "<redacted>"
"""What is shown instead of a secret option's value."""

SETTINGS = (
    "provider",
    "keystore",
    "keys_dir",
    "enterprise",
    "cache_size",
    "cache_ttl",
    "auto_reload",
    "previous_provider",
    "config_file",
    "log_level",
    "debug",
    "harden",
)
"""The top-level settings, in the order they are shown."""


class ConfigRow(NamedTuple):
    """One resolved value: ``scope`` is ``settings``, ``provider <name>``,
    ``previous provider <name>`` or ``key store <name>``; ``source`` is where it came
    from (``default`` when nothing gave it)."""

    scope: str
    name: str
    value: object
    source: str
    secret: bool = False


def describe_configuration(settings: Settings, pm: KeyloaderPluginManager) -> list[ConfigRow]:
    """Every top-level setting, then every option of the selected provider, of the
    previous provider if one is configured, and of the selected key store."""
    rows = [
        ConfigRow("settings", name, _shown(getattr(settings, name)), settings.source(name))
        for name in SETTINGS
    ]
    rows.append(_memory_row())
    cls, resolved = resolve_provider(pm, settings)
    rows += _option_rows(f"provider {cls.name}", resolved)
    if settings.previous_provider is not None:
        previous, resolved = resolve_provider(pm, settings, "previous")
        rows += _option_rows(f"previous provider {previous.name}", resolved)
    store = pm.find_key_store(settings.keystore)
    rows += _option_rows(
        f"key store {store.name}", settings.resolve_store_options(store.name, store.options)
    )
    return rows


def _memory_row() -> ConfigRow:
    """Where keys live in memory: the secret-pages mode this process gets."""
    from .secret_pages import ENV_VAR, memory_mode

    asked = os.environ.get(ENV_VAR, "").strip()
    return ConfigRow("memory", "secret_pages", memory_mode(), ENV_VAR if asked else "default")


def _option_rows(scope: str, resolved: ResolvedOptions) -> list[ConfigRow]:
    rows = []
    for option in resolved.schema:
        value = resolved.values.get(option.name)
        if option.secret and value is not None:
            value = REDACTED
        rows.append(
            ConfigRow(
                scope, option.name, _shown(value), resolved.source(option.name), option.secret
            )
        )
    return rows


def _shown(value: object) -> object:
    """Paths as text; everything else as it is (JSON-ready)."""
    return str(value) if isinstance(value, Path) else value
