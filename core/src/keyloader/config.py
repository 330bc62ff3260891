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
cache_size     KEYLOADER_CACHE_SIZE  ``cache_size``             0 (off)
cache_ttl      KEYLOADER_CACHE_TTL   ``cache_ttl``              5.0 seconds
log_level      KEYLOADER_LOG_LEVEL   (environment only)         None
debug          KEYLOADER_DEBUG       (environment only)         False
============== ===================== ========================== ===============

Rules:

- An empty environment variable counts as unset, except ``KEYLOADER_ENTERPRISE``
  and ``KEYLOADER_DEBUG``, where empty means False. Booleans read from the
  environment accept ``1``/``true``/``yes`` and ``0``/``false``/``no``/empty.
- The config file is ``api.config_file`` > ``cli.config_file`` (``--config``) >
  ``KEYLOADER_CONFIG`` > ``keyloader.toml`` in ``cwd`` (read only if it exists).
  A relative path is relative to ``cwd``. A file named explicitly but missing,
  invalid TOML, an unknown key or a wrong type is a :class:`ConfigError`
  naming the file and the key. Tables: ``[providers.<name>]``,
  ``[stores.<name>]``, ``[rewrap.to]`` and ``[previous]`` (``provider = NAME``
  plus that provider's options). A provider table may be named after an Acra
  alias (``[providers.env_master_key]``); naming both it and the canonical
  table is an error.
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
  (``store_options``/``-s keys_dir=``, ``KEYLOADER_STORE_<S>_KEYS_DIR``,
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

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

from .booleans import parse_bool
from .booleans import word as boolean_word
from .errors import ConfigError
from .providers import Option
from .registry import ALIASES

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
DEFAULT_CACHE_SIZE = 0
DEFAULT_KEYS_DIR = Path(".acrakeys")
DEFAULT_CACHE_TTL = 5.0
CONFIG_FILE_NAME = "keyloader.toml"

_KEYS_DIR = "keys_dir"
_FILE_KEYS = (
    "provider",
    "keystore",
    "keys_dir",
    "enterprise",
    "cache_size",
    "cache_ttl",
    "providers",
    "stores",
    "rewrap",
    "previous",
)


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


class _ConfigFile(NamedTuple):
    """A parsed config file whose top level has been checked."""

    path: Path
    top: Mapping[str, Any]
    providers: Mapping[str, Mapping[str, object]]
    stores: Mapping[str, Mapping[str, object]]
    previous: Mapping[str, object]
    rewrap_to: Mapping[str, object]

    @property
    def base_dir(self) -> Path:
        return self.path.parent


class _Given(NamedTuple):
    """One raw option value and where it came from."""

    value: object
    source: str  # shown as "(from <source>)"
    base_dir: Path | None = None  # config file directory, for relative paths


class _Table(NamedTuple):
    """The option values one source gives, by option name."""

    values: Mapping[str, _Given]
    where: str
    command_line: bool = False
    check_unknown: bool = True


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
    log_level: str | None = None
    debug: bool = False
    config_file: Path | None = None
    previous_provider: str | None = None
    _api: Layer = field(default_factory=Layer, repr=False, compare=False)
    _cli: Layer = field(default_factory=Layer, repr=False, compare=False)
    _env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    _file: _ConfigFile | None = field(default=None, repr=False, compare=False)

    def provider_options(self, provider: str, schema: Sequence[Option]) -> dict[str, Any]:
        """Every option of ``provider``: its converted value, or the default if not given."""
        name = _canonical(provider)
        subject = f"provider {name!r}"
        chosen = self._choose_provider(name, schema)
        return _convert_chosen(chosen, schema, subject)

    def given_provider_options(self, provider: str, schema: Sequence[Option]) -> set[str]:
        """Names of the options of ``provider`` given somewhere (not left to the default)."""
        return set(self._choose_provider(_canonical(provider), schema))

    def previous_provider_options(self, provider: str, schema: Sequence[Option]) -> dict[str, Any]:
        """Every option of the previous master key's ``provider`` (never from the environment)."""
        name = _canonical(provider)
        tables = [
            _layer_table(self._api.previous_options, "keyword argument previous_options"),
            _layer_table(self._cli.previous_options, "--previous-option", command_line=True),
        ]
        if self._file is not None and self._file.previous:
            named = self._file.previous.get("provider")
            if named is None or _canonical(str(named)) == name:
                options = {k: v for k, v in self._file.previous.items() if k != "provider"}
                tables.append(_file_table(self._file, options, "[previous]"))
        subject = f"previous provider {name!r}"
        chosen = _choose(tables, schema, subject, _table_hint("[previous]"))
        return _convert_chosen(chosen, schema, subject)

    def rewrap_target_options(self, provider: str, schema: Sequence[Option]) -> dict[str, Any]:
        """Every option of the rewrap target ``provider`` (api, cli, ``[rewrap.to]`` only)."""
        name = _canonical(provider)
        tables = [
            _layer_table(self._api.rewrap_to_options, "keyword argument rewrap_to_options"),
            _layer_table(self._cli.rewrap_to_options, "--to-option", command_line=True),
        ]
        if self._file is not None and self._file.rewrap_to:
            tables.append(_file_table(self._file, self._file.rewrap_to, "[rewrap.to]"))
        subject = f"rewrap target provider {name!r}"
        chosen = _choose(tables, schema, subject, _table_hint("[rewrap.to]"))
        return _convert_chosen(chosen, schema, subject)

    def store_options(self, store: str, schema: Sequence[Option]) -> dict[str, Any]:
        """Every option of key store ``store``; its ``keys_dir`` follows the keys_dir rule."""
        subject = f"key store {store!r}"
        prefix = f"KEYLOADER_STORE_{_env_part(store)}_"
        tables = [
            _layer_table(self._api.store_options, "keyword argument store_options"),
            _layer_table(self._cli.store_options, "--store-option", command_line=True),
            _Table(self._env_values(prefix, schema, store=True), "the environment", False, False),
        ]
        if self._file is not None:
            table = self._file.stores.get(store, {})
            tables.append(_file_table(self._file, table, f"[stores.{store}]"))
        keys_dir = next((o for o in schema if o.name == _KEYS_DIR), None)
        if keys_dir is not None:
            general = self._general_keys_dirs(keys_dir)
            tables = [_with_keys_dir(t, g) for t, g in zip(tables, general, strict=False)]
        chosen = _choose(tables, schema, subject, _env_hint(prefix))
        options = _convert_chosen(chosen, schema, subject)
        if keys_dir is not None and _KEYS_DIR not in chosen:
            raw = DEFAULT_KEYS_DIR if keys_dir.type == "path" else str(DEFAULT_KEYS_DIR)
            origin = f"option {_KEYS_DIR!r} of {subject} (default)"
            options[_KEYS_DIR] = keys_dir.convert(raw, origin=origin)
        return options

    def _choose_provider(self, provider: str, schema: Sequence[Option]) -> dict[str, _Given]:
        prefix = f"KEYLOADER_{_env_part(provider)}_"
        tables = [
            _layer_table(self._api.provider_options, "keyword argument provider_options"),
            _layer_table(self._cli.provider_options, "--option", command_line=True),
            _Table(self._env_values(prefix, schema, store=False), "the environment", False, False),
        ]
        if self._file is not None:
            table_name = _provider_table_name(self._file, provider)
            if table_name is not None:
                options = self._file.providers[table_name]
                tables.append(_file_table(self._file, options, f"[providers.{table_name}]"))
        return _choose(tables, schema, f"provider {provider!r}", _env_hint(prefix))

    def _env_values(
        self, prefix: str, schema: Sequence[Option], *, store: bool
    ) -> dict[str, _Given]:
        """Option values from the environment: keyloader's name, then the native names."""
        values: dict[str, _Given] = {}
        for option in schema:
            names = [f"{prefix}{_env_part(option.name)}", *option.env]
            if store and option.name == _KEYS_DIR:
                names.append("KEYLOADER_KEYS_DIR")
            for name in names:
                text = self._env.get(name)
                if text:
                    values[option.name] = _Given(text, name)
                    break
        return values

    def _general_keys_dirs(self, option: Option) -> list[_Given | None]:
        """The general keys_dir of the api, cli, env and file layers, typed for ``option``."""
        as_text = option.type != "path"
        found: list[_Given | None] = []
        for value, source in (
            (self._api.keys_dir, "keyword argument keys_dir"),
            (self._cli.keys_dir, "--keys-dir"),
        ):
            if value is None:
                found.append(None)
            else:
                found.append(_Given(str(value) if as_text else value, source))
        found.append(None)  # the environment: KEYLOADER_KEYS_DIR is read by _env_values
        file = self._file
        if file is not None and _KEYS_DIR in file.top:
            base = None if as_text else file.base_dir
            found.append(_Given(file.top[_KEYS_DIR], f"{file.path} {_KEYS_DIR}", base))
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
    environ = dict(os.environ if env is None else env)
    base = Path.cwd() if cwd is None else Path(cwd)
    file = _find_config(api, cli, environ, base)
    top: Mapping[str, Any] = file.top if file is not None else {}
    in_file = str(file.path) if file is not None else ""

    def pick(setting: str, api_value: object, cli_value: object, cli_flag: str) -> Any:
        env_name = f"KEYLOADER_{setting.upper()}"
        env_value = environ.get(env_name)
        if env_value == "" and setting != "enterprise":  # empty KEYLOADER_ENTERPRISE is False
            env_value = None
        for value, source in (
            (api_value, f"keyword argument {setting}"),
            (cli_value, cli_flag),
            (env_value, env_name),
            (top.get(setting), in_file),
        ):
            if value is not None:
                return _PARSERS[setting](value, f"{setting} (from {source})")
        return None

    provider = pick("provider", api.provider, cli.provider, "--provider")
    keystore = pick("keystore", api.keystore, cli.keystore, "--keystore") or DEFAULT_KEYSTORE
    enterprise = pick("enterprise", api.enterprise, cli.enterprise, "--enterprise")
    cache_size = pick("cache_size", api.cache_size, cli.cache_size, "--cache-size")
    cache_ttl = pick("cache_ttl", api.cache_ttl, cli.cache_ttl, "--cache-ttl")
    previous = next(
        (
            _parse_name(value, f"previous_provider (from {source})")
            for value, source in (
                (api.previous_provider, "keyword argument previous_provider"),
                (cli.previous_provider, "--previous-provider"),
                (file.previous.get("provider") if file is not None else None, in_file),
            )
            if value is not None
        ),
        None,
    )
    debug_text = environ.get("KEYLOADER_DEBUG")
    return Settings(
        provider=provider or DEFAULT_PROVIDER,
        keystore=keystore,
        keys_dir=_settings_keys_dir(api, cli, environ, file, keystore),
        enterprise=bool(enterprise),
        cache_size=DEFAULT_CACHE_SIZE if cache_size is None else cache_size,
        cache_ttl=DEFAULT_CACHE_TTL if cache_ttl is None else cache_ttl,
        log_level=environ.get("KEYLOADER_LOG_LEVEL") or None,
        debug=False if debug_text is None else _parse_bool(debug_text, "KEYLOADER_DEBUG"),
        config_file=file.path if file is not None else None,
        previous_provider=previous,
        _api=api,
        _cli=cli,
        _env=environ,
        _file=file,
    )


def _settings_keys_dir(
    api: Layer, cli: Layer, environ: Mapping[str, str], file: _ConfigFile | None, keystore: str
) -> Path:
    """The keys_dir of the selected key store (per layer, its own option beats the general one)."""
    own = f"KEYLOADER_STORE_{_env_part(keystore)}_KEYS_DIR"
    candidates: list[tuple[object, str, Path | None]] = [
        (api.store_options.get(_KEYS_DIR), "keyword argument store_options", None),
        (api.keys_dir, "keyword argument keys_dir", None),
        (cli.store_options.get(_KEYS_DIR), "--store-option", None),
        (cli.keys_dir, "--keys-dir", None),
        (environ.get(own) or None, own, None),
        (environ.get("KEYLOADER_KEYS_DIR") or None, "KEYLOADER_KEYS_DIR", None),
    ]
    if file is not None:
        where = f"{file.path} [stores.{keystore}]"
        candidates.append((file.stores.get(keystore, {}).get(_KEYS_DIR), where, file.base_dir))
        candidates.append((file.top.get(_KEYS_DIR), f"{file.path} {_KEYS_DIR}", file.base_dir))
    for value, source, base_dir in candidates:
        if value is not None:
            return _to_path(value, f"{_KEYS_DIR} (from {source})", base_dir)
    return DEFAULT_KEYS_DIR


# -- option resolution ---------------------------------------------------------


def _layer_table(
    options: Mapping[str, object], source: str, *, command_line: bool = False
) -> _Table:
    values = {str(k): _Given(v, source) for k, v in options.items() if v is not None}
    return _Table(values, source, command_line=command_line)


def _file_table(file: _ConfigFile, options: Mapping[str, object], table: str) -> _Table:
    where = f"{file.path} {table}"
    return _Table({k: _Given(v, where, file.base_dir) for k, v in options.items()}, where)


def _with_keys_dir(table: _Table, general: _Given | None) -> _Table:
    """``table`` with the layer's general keys_dir, unless it gives the store's own."""
    if general is None or _KEYS_DIR in table.values:
        return table
    values = {**table.values, _KEYS_DIR: general}
    return _Table(values, table.where, table.command_line, table.check_unknown)


def _choose(
    tables: Sequence[_Table],
    schema: Sequence[Option],
    subject: str,
    hint: Callable[[Option], str],
) -> dict[str, _Given]:
    """The most specific given value of each option; every given name is checked."""
    by_name = {option.name: option for option in schema}
    chosen: dict[str, _Given] = {}
    for table in tables:
        for name, given in table.values.items():
            option = by_name.get(name)
            if option is None:
                if table.check_unknown:
                    known = ", ".join(sorted(by_name)) or "none"
                    raise ConfigError(
                        f"unknown option {name!r} for {subject} (from {table.where}); "
                        f"known options: {known}"
                    )
                continue
            if table.command_line and option.secret:
                raise _secret_refused(option, by_name, hint)
            chosen.setdefault(name, given)
    return chosen


def _convert_chosen(
    chosen: Mapping[str, _Given], schema: Sequence[Option], subject: str
) -> dict[str, Any]:
    """A value for every option: the converted given value, or the option's default."""
    result: dict[str, Any] = {}
    for option in schema:
        given = chosen.get(option.name)
        if given is None:
            result[option.name] = option.default
            continue
        value = given.value
        if (
            option.type == "path"
            and given.base_dir is not None
            and isinstance(value, str)
            and value
        ):
            value = _to_path(value, "", given.base_dir)  # relative to the config file
        origin = f"option {option.name!r} of {subject} (from {given.source})"
        result[option.name] = option.convert(value, origin=origin)
    return result


def _secret_refused(
    option: Option, by_name: Mapping[str, Option], hint: Callable[[Option], str]
) -> ConfigError:
    file_option = f"{option.name}_file"
    instead = f"`{file_option}` or {hint(option)}" if file_option in by_name else hint(option)
    return ConfigError(
        f"option {option.name!r} is secret and is refused on the command line, where it "
        f"leaks through `ps` and shell history; use {instead}"
    )


def _env_hint(prefix: str) -> Callable[[Option], str]:
    def hint(option: Option) -> str:
        names = [*option.env, f"{prefix}{_env_part(option.name)}"]
        return f"the environment variable {'/'.join(names)}"

    return hint


def _table_hint(table: str) -> Callable[[Option], str]:
    def hint(option: Option) -> str:
        return f"the {table} table of the config file"

    return hint


def provider_option_env_names(provider: str, option: Option) -> tuple[str, ...]:
    """The environment variables read for ``option`` of ``provider``, in order (first wins).

    ``KEYLOADER_<P>_<X>``, then the option's native names (``ACRA_MASTER_KEY``...).
    """
    return (f"KEYLOADER_{_env_part(provider)}_{_env_part(option.name)}", *option.env)


def _env_part(name: str) -> str:
    """A provider, store or option name as it appears in an environment variable name."""
    return name.upper().replace("-", "_")


def _canonical(provider: str) -> str:
    """The canonical name of ``provider`` (Acra strategy names are aliases)."""
    return ALIASES.get(provider, provider)


def _provider_table_name(file: _ConfigFile, provider: str) -> str | None:
    """Which ``[providers.*]`` table configures ``provider``: its name or one alias."""
    names = [provider, *sorted(a for a, target in ALIASES.items() if target == provider)]
    present = [name for name in names if name in file.providers]
    if len(present) > 1:
        tables = " and ".join(f"[providers.{name}]" for name in present)
        raise ConfigError(
            f"{file.path}: {tables} both configure provider {provider!r}; "
            f"keep one, named [providers.{provider}]"
        )
    return present[0] if present else None


# -- the config file -------------------------------------------------------------


def _find_config(
    api: Layer, cli: Layer, environ: Mapping[str, str], base: Path
) -> _ConfigFile | None:
    """The config file named most specifically, else ``keyloader.toml`` in ``base`` if any."""
    for value, source in (
        (api.config_file, "keyword argument config_file"),
        (cli.config_file, "--config"),
        (environ.get("KEYLOADER_CONFIG") or None, "KEYLOADER_CONFIG"),
    ):
        if value is None:
            continue
        if str(value) == "":
            raise ConfigError(f"config file (from {source}) is empty: give the path of a file")
        path = base / Path(value).expanduser()
        if not path.exists():
            raise ConfigError(
                f"config file {path} (from {source}) does not exist: create it, or fix {source}"
            )
        return _read_config(path)
    default = base / CONFIG_FILE_NAME
    return _read_config(default) if default.is_file() else None


def _read_config(path: Path) -> _ConfigFile:
    """Parse ``path`` and check its top level: known keys, right types."""
    import tomllib  # here: only a run that reads a config file pays for it

    try:
        with path.open("rb") as stream:
            _check_config_owner(path, os.fstat(stream.fileno()))
            data = tomllib.load(stream)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    top: dict[str, Any] = {}
    for key, value in data.items():
        if key not in _FILE_KEYS:
            raise ConfigError(
                f"{path}: unknown key {key!r}; known keys: {', '.join(sorted(_FILE_KEYS))}"
            )
        if key in _PARSERS:
            _check_file_value(path, key, value)
            top[key] = value
    rewrap = _table(path, "rewrap", data.get("rewrap", {}))
    for key in rewrap:
        if key != "to":
            raise ConfigError(f"{path}: unknown key {key!r} in [rewrap]; known keys: to")
    previous = _table(path, "previous", data.get("previous", {}))
    if "provider" in previous:
        _check_file_value(path, "[previous] provider", previous["provider"], kind="provider")
    return _ConfigFile(
        path=path,
        top=top,
        providers=_tables(path, "providers", data.get("providers", {})),
        stores=_tables(path, "stores", data.get("stores", {})),
        previous=previous,
        rewrap_to=_table(path, "rewrap.to", rewrap.get("to", {})),
    )


def _check_config_owner(path: Path, st: os.stat_result) -> None:
    """Refuse a config file that group or others can write, or that another user owns.

    It chooses the provider and its options, so whoever can write it can point
    keyloader at their own master key or key store. Root-owned files are trusted.
    """
    import shlex
    import stat

    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"config file {path} is not a regular file")
    if st.st_mode & 0o022:
        raise ConfigError(
            f"config file {path} is writable by group or others (mode "
            f"{stat.S_IMODE(st.st_mode):04o}), so they could choose the provider and its "
            f"options; fix it with `chmod go-w {shlex.quote(str(path))}`"
        )
    uid = os.getuid()
    if st.st_uid not in (uid, 0):
        raise ConfigError(
            f"config file {path} is owned by another user (uid {st.st_uid}), who could choose "
            f"the provider and its options; take it over with "
            f"`chown {uid} {shlex.quote(str(path))}` or use a file of your own"
        )


def _table(path: Path, name: str, value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {name} must be a table ([{name}]), not {_describe(value)}")
    return value


def _tables(path: Path, name: str, value: object) -> dict[str, Mapping[str, object]]:
    """A table of tables, such as ``[providers.<name>]``."""
    tables = _table(path, name, value)
    return {key: _table(path, f"{name}.{key}", sub) for key, sub in tables.items()}


def _check_file_value(path: Path, key: str, value: object, *, kind: str | None = None) -> None:
    """Refuse a top-level value of the wrong TOML type (strings are not numbers here)."""
    kind = kind or key
    if kind in ("provider", "keystore", "keys_dir"):
        ok, expected = isinstance(value, str) and value != "", "a non-empty string"
    elif kind == "enterprise":
        ok = isinstance(value, bool) or (isinstance(value, str) and boolean_word(value) is not None)
        expected = "a boolean (true or false, or one of the words 1/0, yes/no, on/off)"
    elif kind == "cache_size":
        ok = isinstance(value, int) and not isinstance(value, bool)
        expected = "an integer >= 0 (0 turns the cache off)"
    else:  # cache_ttl
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        expected = "a number of seconds >= 0"
    if not ok:
        raise ConfigError(f"{path}: {key} must be {expected}, not {_describe(value)}")
    _PARSERS[kind](value, f"{path}: {key}")  # ranges


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"a {type(value).__name__}"


# -- top-level values ------------------------------------------------------------


def _parse_name(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: {value!r} is not a name; give a non-empty name")
    return value


def _parse_bool(value: object, where: str) -> bool:
    return parse_bool(value, where, empty=False)


def _parse_count(value: object, where: str) -> int:
    try:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise TypeError
        count = int(value)
    except (TypeError, ValueError):
        count = -1
    if count < 0:
        raise ConfigError(f"{where}: {value!r} is not an integer >= 0 (0 turns the cache off)")
    return count


def _parse_seconds(value: object, where: str) -> float:
    try:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise TypeError
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ConfigError(f"{where}: {value!r} is not a number of seconds >= 0")
    return seconds


def _to_path(value: object, where: str, base_dir: Path | None) -> Path:
    if not isinstance(value, str | Path) or str(value) == "":
        raise ConfigError(f"{where}: {value!r} is not a path; give a directory")
    path = Path(value).expanduser()
    return base_dir / path if base_dir is not None and not path.is_absolute() else path


_PARSERS: dict[str, Callable[[object, str], Any]] = {
    "provider": _parse_name,
    "keystore": _parse_name,
    "keys_dir": lambda value, where: _to_path(value, where, None),
    "enterprise": _parse_bool,
    "cache_size": _parse_count,
    "cache_ttl": _parse_seconds,
}
