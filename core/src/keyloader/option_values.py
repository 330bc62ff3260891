"""Option values: each option of a provider or store resolved once, with where it came from.

A source gives a :class:`Table` of raw values (:class:`Given`: the value and
its source); :func:`choose` takes the most specific given value of each option
(refusing unknown names, and secret options from the command line), and
:func:`convert_chosen` converts each once with :meth:`Option.convert`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from .config_file import ConfigFile
from .errors import ConfigError
from .providers import Option, env_part, provider_option_env_names
from .registry import ALIASES
from .settings_values import to_path

__all__ = [
    "KEYS_DIR",
    "Given",
    "ResolvedOptions",
    "Table",
    "canonical",
    "choose",
    "convert_chosen",
    "env_hint",
    "env_part",
    "file_table",
    "layer_table",
    "provider_option_env_names",
    "table_hint",
    "with_keys_dir",
]

KEYS_DIR = "keys_dir"


class Given(NamedTuple):
    """One raw option value and where it came from."""

    value: object
    source: str  # shown as "(from <source>)"
    base_dir: Path | None = None  # config file directory, for relative paths


class Table(NamedTuple):
    """The option values one source gives, by option name."""

    values: Mapping[str, Given]
    where: str
    command_line: bool = False
    check_unknown: bool = True


def layer_table(options: Mapping[str, object], source: str, *, command_line: bool = False) -> Table:
    values = {str(k): Given(v, source) for k, v in options.items() if v is not None}
    return Table(values, source, command_line=command_line)


def file_table(file: ConfigFile, options: Mapping[str, object], table: str) -> Table:
    where = f"{file.path} {table}"
    return Table({k: Given(v, where, file.base_dir) for k, v in options.items()}, where)


def with_keys_dir(table: Table, general: Given | None) -> Table:
    """``table`` with the layer's general keys_dir, unless it gives the store's own."""
    if general is None or KEYS_DIR in table.values:
        return table
    values = {**table.values, KEYS_DIR: general}
    return Table(values, table.where, table.command_line, table.check_unknown)


def choose(
    tables: Sequence[Table],
    schema: Sequence[Option],
    subject: str,
    hint: Callable[[Option], str],
) -> dict[str, Given]:
    """The most specific given value of each option; every given name is checked."""
    by_name = {option.name: option for option in schema}
    chosen: dict[str, Given] = {}
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


class ResolvedOptions(NamedTuple):
    """Every option of one provider or store, resolved once.

    ``values`` has a value for every option of the schema (converted, or the
    default); ``sources`` says where each given option came from (an option
    left to its default has no entry). ``repr`` shows option names only.
    """

    values: dict[str, Any]
    sources: dict[str, str]
    schema: tuple[Option, ...]

    @property
    def given(self) -> set[str]:
        """Names of the options given somewhere (not left to the default)."""
        return set(self.sources)

    def source(self, name: str) -> str:
        """Where option ``name`` came from, or ``"default"``."""
        return self.sources.get(name, "default")

    def __repr__(self) -> str:
        return f"ResolvedOptions(given=<{', '.join(sorted(self.sources))}>)"


def convert_chosen(
    chosen: Mapping[str, Given], schema: Sequence[Option], subject: str
) -> ResolvedOptions:
    """A value for every option: the converted given value, or the option's default."""
    result: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for option in schema:
        given = chosen.get(option.name)
        if given is None:
            result[option.name] = option.default
            continue
        sources[option.name] = given.source
        value = given.value
        if (
            option.type == "path"
            and given.base_dir is not None
            and isinstance(value, str)
            and value
        ):
            value = to_path(value, "", given.base_dir)  # relative to the config file
        origin = f"option {option.name!r} of {subject} (from {given.source})"
        result[option.name] = option.convert(value, origin=origin)
    return ResolvedOptions(result, sources, tuple(schema))


def _secret_refused(
    option: Option, by_name: Mapping[str, Option], hint: Callable[[Option], str]
) -> ConfigError:
    file_option = f"{option.name}_file"
    instead = f"`{file_option}` or {hint(option)}" if file_option in by_name else hint(option)
    return ConfigError(
        f"option {option.name!r} is secret and is refused on the command line, where it "
        f"leaks through `ps` and shell history; use {instead}"
    )


def env_hint(prefix: str) -> Callable[[Option], str]:
    def hint(option: Option) -> str:
        names = [*option.env, f"{prefix}{env_part(option.name)}"]
        return f"the environment variable {'/'.join(names)}"

    return hint


def table_hint(table: str) -> Callable[[Option], str]:
    def hint(option: Option) -> str:
        return f"the {table} table of the config file"

    return hint


def canonical(provider: str) -> str:
    """The canonical name of ``provider`` (Acra strategy names are aliases)."""
    return ALIASES.get(provider, provider)
