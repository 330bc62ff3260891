"""Building providers and key stores from resolved settings.

One road, downwards: look the class up in the plugin manager, resolve its
options once from the settings (values and where each came from), validate the
given ones, apply the enterprise gate, check required options, instantiate.
:mod:`keyloader.api` calls these; nothing here calls back up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .errors import ConfigError
from .option_values import ResolvedOptions, env_part
from .providers import REWRAP_ENV_VARIABLE, SOURCE_ENV_VARIABLE

if TYPE_CHECKING:
    from .config import Settings
    from .plugins import KeyloaderPluginManager
    from .providers import MasterKeyProvider, Option
    from .stores.base import KeyStore

__all__ = [
    "REWRAP_ENV_VARIABLE",
    "Role",
    "build_key_store",
    "build_provider",
    "check_required",
    "instantiate_provider",
    "migration_source",
    "migration_target",
    "resolve_provider",
]

Role = Literal["current", "previous", "rewrap"]
"""Which master key a provider is built for: the current one, the previous one (reads that
fail under the current key fall back to it), or the new key of a rewrap."""


def resolve_provider(
    pm: KeyloaderPluginManager, settings: Settings, role: Role = "current", name: str | None = None
) -> tuple[type[MasterKeyProvider], ResolvedOptions]:
    """The provider class for ``role`` (or named ``name``) and its options, resolved once.

    Current: the ``provider`` setting and every layer of options. Previous: the
    ``previous_provider`` setting, options from the api/cli layers and
    ``[previous]``. Rewrap: ``name``, options from the api/cli layers and
    ``[rewrap.to]``, then the provider's :meth:`~MasterKeyProvider.rewrap_target_defaults`
    (an ``env`` target given neither ``variable`` nor ``file`` reads ``DST_ACRA_MASTER_KEY``).
    """
    if name is None:
        name = settings.previous_provider if role == "previous" else settings.provider
    if name is None:
        raise ConfigError("no previous provider is configured")
    cls = pm.find_provider(name)
    schema = cls.option_schema()
    if role == "previous":
        resolved = settings.resolve_previous_options(cls.name, schema)
    elif role == "rewrap":
        resolved = settings.resolve_rewrap_target_options(cls.name, schema)
        for option, value in cls.rewrap_target_defaults(frozenset(resolved.given)).items():
            if option not in resolved.given:
                resolved.values[option] = value
                resolved.sources[option] = "the rewrap default"
    else:
        resolved = settings.resolve_provider_options(cls.name, schema)
    return cls, resolved


def build_provider(
    pm: KeyloaderPluginManager, settings: Settings, role: Role = "current", name: str | None = None
) -> MasterKeyProvider:
    """The provider of ``role``, built in order: validate, gate, required, instantiate."""
    cls, resolved = resolve_provider(pm, settings, role, name)
    return instantiate_provider(pm, cls, resolved.values, resolved.given, settings.enterprise)


def instantiate_provider(
    pm: KeyloaderPluginManager,
    cls: type[MasterKeyProvider],
    options: Mapping[str, Any],
    given: set[str],
    enterprise: bool,
) -> MasterKeyProvider:
    """Validate the given options (in every gate state), apply the gate, check required, build."""
    cls.validate({k: v for k, v in options.items() if k in given})
    pm.check_enterprise(cls, enterprise=enterprise)
    check_required("provider", cls.name, cls.option_schema(), options)
    provider = cls(options)
    if pm.hook.keyloader_audit_event.get_hookimpls():
        provider.audit_sink = pm.emit
    return provider


def build_key_store(pm: KeyloaderPluginManager, settings: Settings) -> KeyStore:
    """The configured key store with its options resolved once; required ones enforced."""
    cls = pm.find_key_store(settings.keystore)
    options = settings.resolve_store_options(cls.name, cls.options).values
    check_required("key store", cls.name, cls.options, options)
    return cls(options)


def migration_source(pm: KeyloaderPluginManager, settings: Settings) -> Settings:
    """``settings`` for the source of ``keys migrate``: an ``env`` provider given neither
    ``variable`` nor ``file`` reads ``SRC_ACRA_MASTER_KEY`` when that is set, as
    ``acra-keys migrate`` does (else ``ACRA_MASTER_KEY``, as always)."""
    if settings.provider != "env" or not settings.environment_value(SOURCE_ENV_VARIABLE):
        return settings
    schema = pm.find_provider("env").option_schema()
    if settings.given_provider_options("env", schema) & {"variable", "file"}:
        return settings
    return settings.with_provider_defaults({"variable": SOURCE_ENV_VARIABLE})


def migration_target(
    pm: KeyloaderPluginManager,
    settings: Settings,
    name: str,
    options: Mapping[str, Any] | None,
    keys_dir: str | Path,
    keystore_version: str,
) -> Path | KeyStore:
    """Where ``keys migrate`` writes: the directory ``keys_dir`` (the default
    ``filesystem`` store, no options), or a second key store: ``name`` with ``options``
    (``keys_dir`` and ``keystore_version`` given), the rest of its options from the
    environment and the config file as for any store of that name; the source's own
    ``-s`` options do not carry over."""
    if name == "filesystem" and not options:
        return Path(keys_dir)
    from dataclasses import replace

    from .config import Layer

    store_options = {
        **(options or {}),
        "keys_dir": str(keys_dir),
        "keystore_version": keystore_version,
    }
    destination = replace(
        settings,
        keystore=name,
        _api=Layer(keystore=name, store_options=store_options),
        _cli=Layer(),
    )
    return build_key_store(pm, destination)


def check_required(
    kind: Literal["provider", "key store"],
    name: str,
    schema: Iterable[Option],
    options: Mapping[str, Any],
) -> None:
    """A :class:`ConfigError` naming every required option left unset, and where to set it."""
    missing = [o for o in schema if o.required and options.get(o.name) is None]
    if missing:
        hints = ", ".join(_option_hint(kind, name, option) for option in missing)
        raise ConfigError(f"{kind} {name!r} needs {hints}")


def _option_hint(kind: str, name: str, option: Option) -> str:
    part, upper = env_part(name), env_part(option.name)
    if kind == "provider":
        flag, table, env = "-o", f"[providers.{name}]", f"KEYLOADER_{part}_{upper}"
    else:
        flag, table, env = "-s", f"[stores.{name}]", f"KEYLOADER_STORE_{part}_{upper}"
    names = " or ".join((env, *option.env))
    return (
        f"option {option.name!r} (set {flag} {option.name}=..., {table} {option.name}, or {names})"
    )
