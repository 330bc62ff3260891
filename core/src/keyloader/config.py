"""Settings: one resolution of keyloader's configuration (docs/configuration.md).

Most specific first: Python keyword arguments (the ``api`` :class:`Layer`) >
CLI flags (the ``cli`` layer) > environment > config file > defaults.

Top-level settings and where they come from:

============== ===================== ========================== ===============
setting        environment           config file (top level)    default
============== ===================== ========================== ===============
provider       KEYLOADER_PROVIDER    ``provider``               ``env``
keystore       KEYLOADER_KEYSTORE    ``keystore``               ``filesystem``
keys_dir       KEYLOADER_KEYS_DIR    ``keys_dir``               ``.acrakeys``
enterprise     KEYLOADER_ENTERPRISE  ``enterprise``             False
cache_size     KEYLOADER_CACHE_SIZE  ``cache_size``             1000 (0: off)
cache_ttl      KEYLOADER_CACHE_TTL   ``cache_ttl``              0 seconds
auto_reload    KEYLOADER_AUTO_RELOAD ``auto_reload``            False
log_level      KEYLOADER_LOG_LEVEL   (environment only)         None
debug          KEYLOADER_DEBUG       (environment only)         False
harden         KEYLOADER_HARDEN      ``harden``                 False
============== ===================== ========================== ===============

Rules:

- An empty environment variable counts as unset, except ``KEYLOADER_ENTERPRISE``
  and ``KEYLOADER_DEBUG``, where empty means False.
  Booleans read from the environment accept ``1``/``true``/``yes`` and
  ``0``/``false``/``no``/empty.
- The config file is ``api.config_file`` > ``cli.config_file`` (``--config``) >
  ``KEYLOADER_CONFIG`` > ``keyloader.toml`` in ``cwd`` (read only if it exists).
  A relative path is relative to ``cwd``. A file named explicitly but missing,
  invalid TOML, an unknown key or a wrong type is a :class:`ConfigError`
  naming the file and the key. Tables: ``[providers.<name>]``,
  ``[stores.<name>]``, ``[rewrap.to]`` and ``[previous]`` (``provider = NAME``
  plus that provider's options). A provider table may be named after an Acra
  alias (``[providers.env_master_key]``); naming both it and the canonical
  table is an error.
- The environment is read by name, never copied whole: the ``KEYLOADER_*``
  variables are copied when the settings load, an option's native names
  (``VAULT_ADDR``) are read when its schema is resolved (:class:`_Environment`).
  A variable no option names natively (``ACRA_MASTER_KEY`` for ``env``) is
  never read here.
- Relative paths in the config file (``keys_dir``, and every option of type
  ``path``) are relative to the directory of the file, not to the working
  directory. Paths from the API, the command line and the environment are
  kept as given (relative to the working directory); ``~`` is expanded.
- Provider option X of provider P: ``provider_options`` of the api and cli
  layers (they belong to whichever provider is asked, i.e. the selected one),
  then ``KEYLOADER_<P>_<X>`` (upper case, ``-`` becomes ``_``), then the
  option's native names (``Option.env``) in order, then ``[providers.P]``.
  Store option X of store S: ``store_options``, ``KEYLOADER_STORE_<S>_<X>``,
  the native names, ``[stores.S]``.
- ``keys_dir``: in each layer the store's own ``keys_dir`` option
  (``store_options``/``-s keys_dir=``, ``KEYLOADER_STORE_<S>KEYS_DIR``,
  ``[stores.S] keys_dir``) beats the general setting of that layer
  (``keys_dir``/``--keys-dir``, ``KEYLOADER_KEYS_DIR``, top-level
  ``keys_dir``), and the most specific layer that gives either wins. The result
  is the value of the store's ``keys_dir`` option when the store declares one
  (the store's own default is not used: the default is ``.acrakeys``), and
  :attr:`Settings.keys_dir` for the selected key store.
- Previous master key (``[previous]``): ``previous_provider`` is api > cli >
  ``[previous] provider``; its options come from ``previous_options`` of the
  api and cli layers and the ``[previous]`` table (the table's options apply
  only to the provider the table names, or to any provider when it names
  none). The environment is not read for them: it belongs to the current
  provider.
- Rewrap target options: ``rewrap_to_options`` of the api and cli layers, then
  ``[rewrap.to]``. Nothing else (the rewrap code supplies its own defaults).
- Option values are converted and validated by :meth:`Option.convert`; errors
  say which option of which provider or store and where the value came from.
  Unknown option names are errors listing the known ones. Secret options given
  in the cli layer are refused. ``required`` is not checked here: the core
  checks it after the enterprise gate. ``None`` values in api/cli option
  mappings count as not given.

Nothing here imports plugins: loading settings costs only ``os``, ``pathlib``
and, when a config file is read, ``tomllib``. Provider aliases are looked up
from :mod:`keyloader.registry`, which holds no plugin machinery.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .config_file import CONFIG_FILE_NAME, ConfigFile, find_config, provider_table_name
from .defaults import DEFAULT_CACHE_SIZE, DEFAULT_CACHE_TTL
from .option_values import (
    KEYS_DIR,
    Given,
    ResolvedOptions,
    Table,
    canonical,
    choose,
    convert_chosen,
    env_hint,
    env_part,
    file_table,
    layer_table,
    provider_option_env_names,
    table_hint,
    with_keys_dir,
)
from .providers import Option
from .settings_values import PARSERS, parse_name, parse_setting_bool, to_path

__all__ = [
    "CONFIG_FILE_NAME",
    "DEFAULT_CACHE_SIZE",
    "DEFAULT_CACHE_TTL",
    "DEFAULT_KEYS_DIR",
    "DEFAULT_KEYSTORE",
    "DEFAULT_PROVIDER",
    "Layer",
    "Settings",
    "load_settings",
    "provider_option_env_names",
]

DEFAULT_PROVIDER = "env"
DEFAULT_KEYSTORE = "filesystem"
DEFAULT_KEYS_DIR = Path(".acrakeys")


@dataclass(frozen=True)
class Layer:
    """One source of settings, the same shape for the Python API and the CLI.

    ``None`` (or an empty mapping) means "not given here". Option mappings hold
    raw values: text from the command line, Python values from the API. The
    ``repr`` shows option names only, never their values.
    """

    provider: str | None = None
    provider_options: Mapping[str, object] = field(default_factory=dict)
    keystore: str | None = None
    store_options: Mapping[str, object] = field(default_factory=dict)
    keys_dir: str | Path | None = None
    enterprise: bool | None = None
    cache_size: int | None = None
    cache_ttl: float | None = None
    auto_reload: bool | None = None
    harden: bool | None = None
    previous_provider: str | None = None
    previous_options: Mapping[str, object] = field(default_factory=dict)
    rewrap_to_options: Mapping[str, object] = field(default_factory=dict)
    config_file: str | Path | None = None

    def __repr__(self) -> str:
        parts: list[str] = []
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, Mapping):
                if value:
                    parts.append(f"{item.name}=<{', '.join(sorted(map(str, value)))}>")
            elif value is not None:
                parts.append(f"{item.name}={value!r}")
        return f"Layer({', '.join(parts)})"


@dataclass(frozen=True)
class Settings:
    """The resolved settings of one run (the module docstring gives the rules).

    Build it with :func:`load_settings`. Option values are resolved on demand
    by the ``*_options`` methods, given the option schema of the provider or
    store, so reading settings loads no plugin. Its ``repr`` shows no option
    values and no environment.
    """

    provider: str = DEFAULT_PROVIDER
    keystore: str = DEFAULT_KEYSTORE
    keys_dir: Path = DEFAULT_KEYS_DIR
    enterprise: bool = False
    cache_size: int = DEFAULT_CACHE_SIZE
    cache_ttl: float = DEFAULT_CACHE_TTL
    auto_reload: bool = False
    log_level: str | None = None
    debug: bool = False
    harden: bool = False
    config_file: Path | None = None
    previous_provider: str | None = None
    _api: Layer = field(default_factory=Layer, repr=False, compare=False)
    _cli: Layer = field(default_factory=Layer, repr=False, compare=False)
    _env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    _file: ConfigFile | None = field(default=None, repr=False, compare=False)
    _sources: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def source(self, setting: str) -> str:
        """Where the top-level ``setting`` came from (``"--provider"``, ``"KEYLOADER_PROVIDER"``,
        ``"<file> provider"``, ...), or ``"default"``."""
        return self._sources.get(setting, "default")

    def resolve_provider_options(self, provider: str, schema: Sequence[Option]) -> ResolvedOptions:
        """Every option of ``provider``, converted once, with where each came from."""
        name = canonical(provider)
        return convert_chosen(self._choose_provider(name, schema), schema, f"provider {name!r}")

    def provider_options(self, provider: str, schema: Sequence[Option]) -> dict[str, Any]:
        """Every option of ``provider``: its converted value, or the default if not given."""
        return self.resolve_provider_options(provider, schema).values

    def environment_value(self, name: str) -> str | None:
        """The environment variable ``name`` these settings were resolved with (None: unset)."""
        return self._env.get(name)

    def with_provider_defaults(self, options: Mapping[str, object]) -> Settings:
        """These settings with ``options`` for the current provider in the API layer (under
        any given there): for defaults of a command, once the caller checked that no layer
        gives them (:meth:`given_provider_options`)."""
        merged = {**options, **self._api.provider_options}
        return replace(self, _api=replace(self._api, provider_options=merged))

    def given_provider_options(self, provider: str, schema: Sequence[Option]) -> set[str]:
        """Names of the options of ``provider`` given somewhere (not left to the default)."""
        return set(self._choose_provider(canonical(provider), schema))

    def resolve_previous_options(self, provider: str, schema: Sequence[Option]) -> ResolvedOptions:
        """Every option of the previous master key's ``provider`` (never from the environment)."""
        name = canonical(provider)
        tables = [
            layer_table(self._api.previous_options, "keyword argument previous_options"),
            layer_table(self._cli.previous_options, "--previous-option", command_line=True),
        ]
        if self._file is not None and self._file.previous:
            named = self._file.previous.get("provider")
            if named is None or canonical(str(named)) == name:
                options = {k: v for k, v in self._file.previous.items() if k != "provider"}
                tables.append(file_table(self._file, options, "[previous]"))
        subject = f"previous provider {name!r}"
        chosen = choose(tables, schema, subject, table_hint("[previous]"))
        return convert_chosen(chosen, schema, subject)

    def previous_provider_options(self, provider: str, schema: Sequence[Option]) -> dict[str, Any]:
        """The values of :meth:`resolve_previous_options`."""
        return self.resolve_previous_options(provider, schema).values

    def resolve_rewrap_target_options(
        self, provider: str, schema: Sequence[Option]
    ) -> ResolvedOptions:
        """Every option of the rewrap target ``provider`` (api, cli, ``[rewrap.to]`` only)."""
        name = canonical(provider)
        tables = [
            layer_table(self._api.rewrap_to_options, "keyword argument rewrap_to_options"),
            layer_table(self._cli.rewrap_to_options, "--to-option", command_line=True),
        ]
        if self._file is not None and self._file.rewrap_to:
            tables.append(file_table(self._file, self._file.rewrap_to, "[rewrap.to]"))
        subject = f"rewrap target provider {name!r}"
        chosen = choose(tables, schema, subject, table_hint("[rewrap.to]"))
        return convert_chosen(chosen, schema, subject)

    def rewrap_target_options(self, provider: str, schema: Sequence[Option]) -> dict[str, Any]:
        """The values of :meth:`resolve_rewrap_target_options`."""
        return self.resolve_rewrap_target_options(provider, schema).values

    def resolve_store_options(self, store: str, schema: Sequence[Option]) -> ResolvedOptions:
        """Every option of key store ``store``; its ``keys_dir`` follows the keys_dir rule."""
        subject = f"key store {store!r}"
        prefix = f"KEYLOADER_STORE_{env_part(store)}_"
        tables = [
            layer_table(self._api.store_options, "keyword argument store_options"),
            layer_table(self._cli.store_options, "--store-option", command_line=True),
            Table(self._env_values(prefix, schema, store=True), "the environment", False, False),
        ]
        if self._file is not None:
            table = self._file.stores.get(store, {})
            tables.append(file_table(self._file, table, f"[stores.{store}]"))
        keys_dir = next((o for o in schema if o.name == KEYS_DIR), None)
        if keys_dir is not None:
            general = self._general_keys_dirs(keys_dir)
            tables = [with_keys_dir(t, g) for t, g in zip(tables, general, strict=False)]
        chosen = choose(tables, schema, subject, env_hint(prefix))
        resolved = convert_chosen(chosen, schema, subject)
        if keys_dir is not None and KEYS_DIR not in chosen:
            raw = DEFAULT_KEYS_DIR if keys_dir.type == "path" else str(DEFAULT_KEYS_DIR)
            origin = f"option {KEYS_DIR!r} of {subject} (default)"
            resolved.values[KEYS_DIR] = keys_dir.convert(raw, origin=origin)
        return resolved

    def store_options(self, store: str, schema: Sequence[Option]) -> dict[str, Any]:
        """The values of :meth:`resolve_store_options`."""
        return self.resolve_store_options(store, schema).values

    def _choose_provider(self, provider: str, schema: Sequence[Option]) -> dict[str, Given]:
        prefix = f"KEYLOADER_{env_part(provider)}_"
        tables = [
            layer_table(self._api.provider_options, "keyword argument provider_options"),
            layer_table(self._cli.provider_options, "--option", command_line=True),
            Table(self._env_values(prefix, schema, store=False), "the environment", False, False),
        ]
        if self._file is not None:
            table_name = provider_table_name(self._file, provider)
            if table_name is not None:
                options = self._file.providers[table_name]
                tables.append(file_table(self._file, options, f"[providers.{table_name}]"))
        return choose(tables, schema, f"provider {provider!r}", env_hint(prefix))

    def _env_values(
        self, prefix: str, schema: Sequence[Option], *, store: bool
    ) -> dict[str, Given]:
        """Option values from the environment: keyloader's name, then the native names."""
        values: dict[str, Given] = {}
        for option in schema:
            names = [f"{prefix}{env_part(option.name)}", *option.env]
            if store and option.name == KEYS_DIR:
                names.append("KEYLOADER_KEYS_DIR")
            for name in names:
                text = self._env.get(name)
                if text:
                    values[option.name] = Given(text, name)
                    break
        return values

    def _general_keys_dirs(self, option: Option) -> list[Given | None]:
        """The general keys_dir of the api, cli, env and file layers, typed for ``option``."""
        as_text = option.type != "path"
        found: list[Given | None] = []
        for value, source in (
            (self._api.keys_dir, "keyword argument keys_dir"),
            (self._cli.keys_dir, "--keys-dir"),
        ):
            if value is None:
                found.append(None)
            else:
                found.append(Given(str(value) if as_text else value, source))
        found.append(None)  # the environment: KEYLOADER_KEYS_DIR is read by _env_values
        file = self._file
        if file is not None and KEYS_DIR in file.top:
            base = None if as_text else file.base_dir
            found.append(Given(file.top[KEYS_DIR], f"{file.path} {KEYS_DIR}", base))
        else:
            found.append(None)
        return found


def load_settings(
    *,
    api: Layer | None = None,
    cli: Layer | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Resolve the settings: ``api`` > ``cli`` > ``env`` > config file > defaults.

    ``env`` defaults to ``os.environ`` and ``cwd`` to the working directory
    (where ``keyloader.toml`` is looked for and relative config paths start).
    Raises :class:`ConfigError` for a bad value in any layer or a bad config file.
    """
    api = api if api is not None else Layer()
    cli = cli if cli is not None else Layer()
    environ = _Environment(os.environ if env is None else env)
    base = Path.cwd() if cwd is None else Path(cwd)
    named = [(api.config_file, "keyword argument config_file"), (cli.config_file, "--config")]
    file = find_config(named, environ, base)
    top: Mapping[str, Any] = file.top if file is not None else {}
    in_file = str(file.path) if file is not None else ""
    sources: dict[str, str] = {}

    def pick(setting: str, api_value: object, cli_value: object, cli_flag: str) -> Any:
        env_name = f"KEYLOADER_{setting.upper()}"
        env_value = environ.get(env_name)
        if env_value == "" and setting != "enterprise":  # empty KEYLOADER_ENTERPRISE is False
            env_value = None
        for value, source in (
            (api_value, f"keyword argument {setting}"),
            (cli_value, cli_flag),
            (env_value, env_name),
            (top.get(setting), f"{in_file} {setting}"),
        ):
            if value is not None:
                sources[setting] = source
                return PARSERS[setting](value, f"{setting} (from {source})")
        return None

    provider = pick("provider", api.provider, cli.provider, "--provider")
    keystore = pick("keystore", api.keystore, cli.keystore, "--keystore") or DEFAULT_KEYSTORE
    enterprise = pick("enterprise", api.enterprise, cli.enterprise, "--enterprise")
    cache_size = pick("cache_size", api.cache_size, cli.cache_size, "--cache-size")
    cache_ttl = pick("cache_ttl", api.cache_ttl, cli.cache_ttl, "--cache-ttl")
    auto_reload = pick("auto_reload", api.auto_reload, cli.auto_reload, "--auto-reload")
    harden = pick("harden", api.harden, cli.harden, "--harden")
    previous = None
    for value, source in (
        (api.previous_provider, "keyword argument previous_provider"),
        (cli.previous_provider, "--previous-provider"),
        (file.previous.get("provider") if file is not None else None, f"{in_file} [previous]"),
    ):
        if value is not None:
            previous = parse_name(value, f"previous_provider (from {source})")
            sources["previous_provider"] = source
            break
    debug_text = environ.get("KEYLOADER_DEBUG")
    for setting, variable in (("log_level", "KEYLOADER_LOG_LEVEL"), ("debug", "KEYLOADER_DEBUG")):
        if environ.get(variable):
            sources[setting] = variable
    if file is not None:
        sources["config_file"] = next(
            (source for value, source in named if value is not None),
            "KEYLOADER_CONFIG" if environ.get("KEYLOADER_CONFIG") else "found in the directory",
        )
    keys_dir, sources["keys_dir"] = _settings_keys_dir(api, cli, environ, file, keystore)
    return Settings(
        provider=provider or DEFAULT_PROVIDER,
        keystore=keystore,
        keys_dir=keys_dir,
        enterprise=bool(enterprise),
        cache_size=DEFAULT_CACHE_SIZE if cache_size is None else cache_size,
        cache_ttl=DEFAULT_CACHE_TTL if cache_ttl is None else cache_ttl,
        auto_reload=bool(auto_reload),
        log_level=environ.get("KEYLOADER_LOG_LEVEL") or None,
        debug=False if debug_text is None else parse_setting_bool(debug_text, "KEYLOADER_DEBUG"),
        harden=bool(harden),
        config_file=file.path if file is not None else None,
        previous_provider=previous,
        _api=api,
        _cli=cli,
        _env=environ,
        _file=file,
        _sources=sources,
    )


class _Environment(Mapping[str, str]):
    """The environment as settings read it: by name, never copied whole.

    ``dict(os.environ)`` would decode every variable's value into a new ``str``
    (``ACRA_MASTER_KEY`` included) and keep them all as long as the settings
    live. Here the ``KEYLOADER_*`` variables are copied when the settings are
    loaded (the top-level settings and keyloader's option names: a snapshot),
    and any other name (an option's native name, ``VAULT_ADDR``) is read from
    the source mapping when an option schema asks for it, and not kept. Only
    names are ever iterated; no value is read but by its name.
    """

    __slots__ = ("_own", "_source")

    PREFIX = "KEYLOADER_"

    def __init__(self, source: Mapping[str, str]) -> None:
        self._source = source
        own: dict[str, str] = {}
        for name in list(source):  # names only: iterating items() would read every value
            if name.startswith(self.PREFIX):
                try:
                    own[name] = source[name]
                except KeyError:  # removed meanwhile
                    continue
        self._own = own

    def __getitem__(self, name: str) -> str:
        if name.startswith(self.PREFIX):
            return self._own[name]
        return self._source[name]

    def __iter__(self) -> Iterator[str]:
        yield from self._own
        yield from (name for name in list(self._source) if not name.startswith(self.PREFIX))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"<environment: {len(self._own)} KEYLOADER_* variables, others read by name>"


def _settings_keys_dir(
    api: Layer, cli: Layer, environ: Mapping[str, str], file: ConfigFile | None, keystore: str
) -> tuple[Path, str]:
    """The keys_dir of the selected key store (per layer, its own option beats the general one)."""
    own = f"KEYLOADER_STORE_{env_part(keystore)}_KEYS_DIR"
    candidates: list[tuple[object, str, Path | None]] = [
        (api.store_options.get(KEYS_DIR), "keyword argument store_options", None),
        (api.keys_dir, "keyword argument keys_dir", None),
        (cli.store_options.get(KEYS_DIR), "--store-option", None),
        (cli.keys_dir, "--keys-dir", None),
        (environ.get(own) or None, own, None),
        (environ.get("KEYLOADER_KEYS_DIR") or None, "KEYLOADER_KEYS_DIR", None),
    ]
    if file is not None:
        where = f"{file.path} [stores.{keystore}]"
        candidates.append((file.stores.get(keystore, {}).get(KEYS_DIR), where, file.base_dir))
        candidates.append((file.top.get(KEYS_DIR), f"{file.path} {KEYS_DIR}", file.base_dir))
    for value, source, base_dir in candidates:
        if value is not None:
            return to_path(value, f"{KEYS_DIR} (from {source})", base_dir), source
    return DEFAULT_KEYS_DIR, "default"
