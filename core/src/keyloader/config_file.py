"""The config file: where it is looked for, how it is read, and which checks it must pass.

``--config FILE`` > ``KEYLOADER_CONFIG`` > ``./keyloader.toml`` (read only if it
exists). The file chooses the provider and its options, so one that group or
others can write, or that another user owns, is refused. Its top level is
checked here (known keys, right types); option tables are checked when an
option schema is known (:mod:`keyloader.option_values`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from .booleans import word as boolean_word
from .errors import ConfigError
from .registry import ALIASES
from .settings_values import PARSERS, describe_value

__all__ = [
    "CONFIG_FILE_NAME",
    "FILE_KEYS",
    "ConfigFile",
    "find_config",
    "provider_table_name",
    "read_config",
]

CONFIG_FILE_NAME = "keyloader.toml"
FILE_KEYS = (
    "provider",
    "keystore",
    "keys_dir",
    "enterprise",
    "cache_size",
    "cache_ttl",
    "auto_reload",
    "harden",
    "providers",
    "stores",
    "rewrap",
    "previous",
)


class ConfigFile(NamedTuple):
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


def find_config(
    named: Sequence[tuple[str | Path | None, str]], environ: Mapping[str, str], base: Path
) -> ConfigFile | None:
    """The config file named most specifically, else ``keyloader.toml`` in ``base`` if any.

    ``named`` holds ``(path or None, source)`` pairs, most specific first
    (keyword argument, ``--config``); ``KEYLOADER_CONFIG`` comes after them.
    """
    for value, source in (*named, (environ.get("KEYLOADER_CONFIG") or None, "KEYLOADER_CONFIG")):
        if value is None:
            continue
        if str(value) == "":
            raise ConfigError(f"config file (from {source}) is empty: give the path of a file")
        path = base / Path(value).expanduser()
        if not path.exists():
            raise ConfigError(
                f"config file {path} (from {source}) does not exist: create it, or fix {source}"
            )
        return read_config(path)
    default = base / CONFIG_FILE_NAME
    return read_config(default) if default.is_file() else None


def read_config(path: Path) -> ConfigFile:
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
        if key not in FILE_KEYS:
            raise ConfigError(
                f"{path}: unknown key {key!r}; known keys: {', '.join(sorted(FILE_KEYS))}"
            )
        if key in PARSERS:
            _check_file_value(path, key, value)
            top[key] = value
    rewrap = _table(path, "rewrap", data.get("rewrap", {}))
    for key in rewrap:
        if key != "to":
            raise ConfigError(f"{path}: unknown key {key!r} in [rewrap]; known keys: to")
    previous = _table(path, "previous", data.get("previous", {}))
    if "provider" in previous:
        _check_file_value(path, "[previous] provider", previous["provider"], kind="provider")
    return ConfigFile(
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
        raise ConfigError(f"{path}: {name} must be a table ([{name}]), not {describe_value(value)}")
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
    elif kind in ("enterprise", "auto_reload", "harden"):
        ok = isinstance(value, bool) or (isinstance(value, str) and boolean_word(value) is not None)
        expected = "a boolean (true or false, or one of the words 1/0, yes/no, on/off)"
    elif kind == "cache_size":
        ok = isinstance(value, int) and not isinstance(value, bool)
        expected = "an integer >= 0 (0 turns the cache off)"
    else:  # cache_ttl
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        expected = "a number of seconds >= 0"
    if not ok:
        raise ConfigError(f"{path}: {key} must be {expected}, not {describe_value(value)}")
    PARSERS[kind](value, f"{path}: {key}")  # ranges


def provider_table_name(file: ConfigFile, provider: str) -> str | None:
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
