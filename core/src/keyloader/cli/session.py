"""What a command needs from the library: settings, the plugin manager, the key store.

Everything here is imported inside command functions, so ``keyloader --help``
never loads plugins, ``cryptography`` or the key-store engine.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .options import GlobalOptions, current_options

if TYPE_CHECKING:
    from pathlib import Path

    from ..config import Settings
    from ..engine import EngineBase
    from ..plugins import KeyloaderPluginManager

__all__ = ["open_keystore", "options", "plugin_manager", "settings"]


def options() -> GlobalOptions:
    """The merged global options of the running command."""
    return current_options()


def plugin_manager() -> KeyloaderPluginManager:
    """A plugin manager with every installed plugin loaded (failures recorded, not raised)."""
    from ..plugins import make_plugin_manager

    return make_plugin_manager()


def settings(
    *,
    rewrap_to: Mapping[str, object] | None = None,
    keys_dir: str | Path | None = None,
    keystore: str | None = None,
    store_options: Mapping[str, object] | None = None,
) -> Settings:
    """The settings of this run: CLI flags > environment > config file > defaults.

    ``rewrap_to`` holds the ``--to-option`` pairs of ``keys rewrap`` (and ``migrate``);
    ``keys_dir``, ``keystore`` and ``store_options`` a command's own source store
    (``migrate --src-keys-dir``, ``--src_redis_host_port``), which win over the global
    flags (store options one by one).
    """
    import dataclasses

    from ..api import resolve

    layer = options().layer()
    if rewrap_to:
        layer = dataclasses.replace(layer, rewrap_to_options=dict(rewrap_to))
    if keys_dir is not None:
        layer = dataclasses.replace(layer, keys_dir=keys_dir)
    if keystore is not None:
        layer = dataclasses.replace(layer, keystore=keystore)
    if store_options:
        merged = {**layer.store_options, **store_options}
        layer = dataclasses.replace(layer, store_options=merged)
    resolved = resolve(cli=layer)
    _debug("settings: %r", resolved)  # no option values
    return resolved


def open_keystore() -> EngineBase:
    """The configured key store; its master key is loaded only when a command needs it."""
    from ..api import open_keystore as open_configured

    keys = open_configured(settings(), plugin_manager=plugin_manager())
    _debug("opened %r", keys)
    return keys


def _debug(message: str, *args: object) -> None:
    """Log at DEBUG on ``keyloader.cli``, without importing ``logging`` for it.

    While nothing has imported ``logging``, nothing can have configured it, so
    the record would be dropped anyway (``KEYLOADER_LOG_LEVEL`` imports it).
    """
    logging = sys.modules.get("logging")
    if logging is not None:
        logging.getLogger("keyloader.cli").debug(message, *args)
