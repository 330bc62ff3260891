"""The typer app: the root group, the global options and the command groups.

The built-in commands are built lazily: ``keyloader master-key check`` imports
and builds only the ``master-key`` group, and ``keyloader --help`` lists every
built-in command from :data:`BUILTIN_COMMANDS` without importing any of them.
"""

from __future__ import annotations

import copy
import functools
import sys
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from gettext import gettext as _
from typing import Annotated, Any, NamedTuple

import typer
from typer import _click
from typer._click.exceptions import UsageError
from typer._click.globals import get_current_context
from typer._click.utils import make_default_short_help
from typer.core import TyperGroup
from typer.models import CommandInfo, TyperInfo

from .errors import run_guarded
from .option_types import (
    ConfigOption,
    EnterpriseFlag,
    JsonFlag,
    KeysDirOption,
    KeystoreOption,
    KeystoreVersionOption,
    PreviousOptions,
    PreviousProviderOption,
    ProviderOption,
    ProviderOptions,
    StoreOptions,
)
from .options import (
    GLOBAL_OPTION_NAMES,
    GlobalOptions,
    record_options,
)

__all__ = ["BUILTIN_COMMANDS", "BuiltinCommand", "KeyloaderGroup", "app", "build_command"]

_LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


class BuiltinCommand(NamedTuple):
    """Where a built-in command is defined, and its help as ``keyloader --help`` lists it."""

    module: str  # relative to this package
    attribute: str  # a command function or a ``typer.Typer`` group
    help: str  # the same text the command's own help starts with (a test checks it)


BUILTIN_COMMANDS: Mapping[str, BuiltinCommand] = {
    "plugins": BuiltinCommand(
        ".plugins_cmd",
        "plugins",
        "The installed plugins, what they register, and why any failed to load.",
    ),
    "providers": BuiltinCommand(
        ".plugins_cmd", "providers_app", "Master-key providers: list them, or show one's options."
    ),
    "master-key": BuiltinCommand(
        ".master_key",
        "app",
        "The master key: generate one, check the configured one, store one in a provider.",
    ),
    "keys": BuiltinCommand(
        ".keys",
        "app",
        "Intermediate keys: generate, list, read, rotate, destroy, verify, rewrap, export, import.",
    ),
    "data": BuiltinCommand(
        ".data",
        "app",
        "Data: encrypt and decrypt Acra's containers, search hashes, poison records.",
    ),
    "config": BuiltinCommand(
        ".config_cmd",
        "app",
        "The configuration: show every resolved setting and option with its source.",
    ),
    "exec": BuiltinCommand(
        ".exec_cmd",
        "exec_",
        "Run CMD with the master key in its environment; keyloader's process becomes CMD.",
    ),
}
"""The built-in commands of the root group, in the order ``--help`` lists them."""


class _Commands(MutableMapping[str, _click.Command]):
    """A group's commands by name; the lazy ones are built on first access (``[]``, ``get``).

    Names, ``in`` and ``len`` never build a command; ``values()``/``items()`` build them all.
    """

    def __init__(self, lazy: Mapping[str, Callable[[], _click.Command]]) -> None:
        self._names: dict[str, None] = dict.fromkeys(lazy)
        self._lazy = dict(lazy)
        self._built: dict[str, _click.Command] = {}

    def is_built(self, name: str) -> bool:
        """True once the command ``name`` exists as a click command."""
        return name in self._built

    def __getitem__(self, name: str) -> _click.Command:
        command = self._built.get(name)
        if command is None:
            command = self._lazy[name]()
            self._built[name] = command
            del self._lazy[name]
        return command

    def __setitem__(self, name: str, command: _click.Command) -> None:
        self._lazy.pop(name, None)
        self._built[name] = command
        self._names[name] = None

    def __delitem__(self, name: str) -> None:
        del self._names[name]
        self._lazy.pop(name, None)
        self._built.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._names))

    def __len__(self) -> int:
        return len(self._names)


class KeyloaderGroup(TyperGroup):
    """The root group: lazy built-in commands, global options on every leaf, plugin commands."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self._global_params = [p for p in self.params if p.name in GLOBAL_OPTION_NAMES]
        self._plugin_commands_loaded = False
        self._plugin_failures = 0
        given = list(self.commands.values())  # commands registered on `app` itself, if any
        self.commands = _Commands({name: self._builtin_loader(name) for name in BUILTIN_COMMANDS})
        for command in given:
            self._add_global_options(command)
            self.add_command(command)

    # -- built-in commands, built when first used --------------------------------------------

    def _builtin_loader(self, name: str) -> Callable[[], _click.Command]:
        def load() -> _click.Command:
            return _build_builtin(name, self._add_global_options)

        return load

    def list_commands(self, ctx: _click.Context) -> list[str]:
        if ctx.resilient_parsing:  # shell completion; --help stays fast and lists built-ins
            self._load_plugin_commands()
        return list(self.commands)  # names only: listing builds no command

    def format_commands(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        """The ``Commands`` section of ``--help``; it builds no built-in command."""
        rows: list[tuple[str, str | _click.Command]] = []
        for name in self.list_commands(ctx):
            if self._is_unbuilt_builtin(name):
                rows.append((name, BUILTIN_COMMANDS[name].help))
                continue
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command))
        if not rows:
            return
        limit = formatter.width - 6 - max(len(name) for name, _row in rows)
        listing = [
            (
                name,
                make_default_short_help(command, limit)
                if isinstance(command, str)
                else command.get_short_help_str(limit),
            )
            for name, command in rows
        ]
        with formatter.section(_("Commands")):
            formatter.write_dl(listing)

    def _is_unbuilt_builtin(self, name: str) -> bool:
        commands = self.commands
        return (
            name in BUILTIN_COMMANDS
            and isinstance(commands, _Commands)
            and not commands.is_built(name)
        )

    # -- global options after the command -------------------------------------------------

    def _add_global_options(self, command: _click.Command) -> None:
        """Give a leaf (or a group that runs on its own) the global options; wrap its callback.

        The commands of a lazy group get them when they are built (see :func:`_lazy_group`).
        """
        if isinstance(command, TyperGroup):
            if not isinstance(command.commands, _Commands):
                for child in command.commands.values():
                    self._add_global_options(child)
            if not command.invoke_without_command:
                return
        taken = {p.name for p in command.params}
        clashes = taken.intersection(GLOBAL_OPTION_NAMES)
        if clashes:
            raise RuntimeError(f"command {command.name!r} redefines global options {clashes}")
        command.params.extend(copy.copy(p) for p in self._global_params)
        command.callback = _recording_leaf_options(command.callback)

    # -- plugin commands (keyloader_cli_commands), loaded only when a name is unknown ------

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and not self._plugin_commands_loaded:
            self._load_plugin_commands()
            command = super().get_command(ctx, cmd_name)
            if command is None and self._plugin_failures and not ctx.resilient_parsing:
                raise UsageError(
                    f"No such command {cmd_name!r}. {self._plugin_failures} plugin(s) failed to "
                    "load and their commands are missing: `keyloader plugins` shows why.",
                    ctx,
                )
        return command

    def _load_plugin_commands(self) -> None:
        if self._plugin_commands_loaded:
            return
        self._plugin_commands_loaded = True
        import logging

        from .plugin_commands import plugin_commands

        log = logging.getLogger("keyloader.cli")
        commands, self._plugin_failures = plugin_commands(app)
        for command in commands:
            if command.name in self.commands:
                log.warning(
                    "plugin command %r ignored: a built-in command has that name", command.name
                )
                continue
            try:
                self._add_global_options(command)
            except RuntimeError as exc:  # its own options use the global names
                log.warning(
                    "plugin command %r takes no global options after it: %s", command.name, exc
                )
            self.add_command(command)

    # -- the run: logging, exit codes --------------------------------------------------------

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the CLI; every error becomes an exit code in :func:`run_guarded`."""

        def invoke() -> object:
            with _logging_from_env():
                return super(KeyloaderGroup, self).main(
                    args,
                    prog_name or "keyloader",
                    complete_var,
                    standalone_mode=False,
                    windows_expand_args=windows_expand_args,
                    **extra,
                )

        code = run_guarded(invoke)
        if standalone_mode:
            sys.exit(code)
        return code


def _recording_leaf_options(callback: Callable[..., Any] | None) -> Callable[..., Any]:
    def leaf_callback(**kwargs: Any) -> Any:
        given = {name: kwargs.pop(name, None) for name in GLOBAL_OPTION_NAMES}
        record_options(get_current_context(), GlobalOptions.from_params(given), leaf=True)
        return callback(**kwargs) if callback is not None else None

    return leaf_callback


@contextmanager
def _logging_from_env() -> Iterator[None]:
    """``KEYLOADER_LOG_LEVEL`` sends log records at that level to stderr for this run."""
    import os

    raw = os.environ.get("KEYLOADER_LOG_LEVEL", "").strip()
    if not raw:
        yield
        return
    level = raw.upper()
    if level not in _LOG_LEVELS:
        from ..errors import ConfigError

        raise ConfigError(
            f"KEYLOADER_LOG_LEVEL: {raw[:40]!r} is not a log level: use one of "
            + ", ".join(_LOG_LEVELS)
        )
    import logging

    class StderrHandler(logging.Handler):
        """Writes to whatever ``sys.stderr`` is when the record comes (test runners swap it)."""

        def emit(self, record: logging.LogRecord) -> None:
            try:
                sys.stderr.write(self.format(record) + "\n")
            except Exception:
                self.handleError(record)

    root = logging.getLogger()
    handler = StderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)


def _show_version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"keyloader {__version__}")
        raise typer.Exit()


app = typer.Typer(
    name="keyloader",
    cls=KeyloaderGroup,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    pretty_exceptions_short=False,
    add_completion=True,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


# The global options, as aliases: typer evaluates each annotation of the root
# callback by name, not a whole ``Annotated[...]`` expression, on every start.
VersionFlag = Annotated[
    bool,
    typer.Option(
        "--version", is_eager=True, callback=_show_version, help="Print the version and exit."
    ),
]


@app.callback()
def root(
    version: VersionFlag = False,
    config: ConfigOption = None,
    enterprise: EnterpriseFlag = False,
    provider: ProviderOption = None,
    option: ProviderOptions = None,
    keystore: KeystoreOption = None,
    store_option: StoreOptions = None,
    keys_dir: KeysDirOption = None,
    keystore_version: KeystoreVersionOption = None,
    json_output: JsonFlag = False,
    previous_provider: PreviousProviderOption = None,
    previous_option: PreviousOptions = None,
) -> None:
    """Load a master key from a pluggable provider and manage the intermediate keys it protects.

    Global options go before the command or after any command (the later value wins).
    Exit codes: 0 success, 1 error, 2 command-line error, 130 interrupted. Commands that
    plugins add are not listed here (help loads no plugin); they run by name and complete
    in the shell.
    """
    given = {name: value for name, value in locals().items() if name in GLOBAL_OPTION_NAMES}
    record_options(get_current_context(), GlobalOptions.from_params(given), leaf=False)


def _build_builtin(name: str, prepare: Callable[[_click.Command], None]) -> _click.Command:
    """Import the built-in command ``name``, build it as :data:`app` would, ``prepare`` it.

    A group is built lazily: each of its commands is built, and prepared, when
    first used.
    """
    import importlib

    where = BUILTIN_COMMANDS[name]
    target = getattr(importlib.import_module(where.module, __package__), where.attribute)
    scratch = typer.Typer()  # registers `target` exactly as `app.command`/`app.add_typer` do
    if isinstance(target, typer.Typer):
        scratch.add_typer(target, name=name)
        group = _lazy_group(scratch.registered_groups[0], target, prepare)
        prepare(group)
        return group
    scratch.command(name)(target)
    return _build_leaf(scratch.registered_commands[0], prepare)


def _build_leaf(info: CommandInfo, prepare: Callable[[_click.Command], None]) -> _click.Command:
    command = typer.main.get_command_from_info(
        info,
        pretty_exceptions_short=app.pretty_exceptions_short,
        rich_markup_mode=app.rich_markup_mode,
    )
    prepare(command)
    return command


def _command_name(info: CommandInfo) -> str:
    """The name typer gives the command of ``info``."""
    return info.name or typer.main.get_command_name(getattr(info.callback, "__name__", ""))


def _lazy_group(
    info: TyperInfo, sub_app: typer.Typer, prepare: Callable[[_click.Command], None]
) -> TyperGroup:
    """The group of ``info`` (for ``sub_app``); its commands are built on first access."""
    settings: dict[str, Any] = {
        "pretty_exceptions_short": app.pretty_exceptions_short,
        "rich_markup_mode": app.rich_markup_mode,
        "suggest_commands": app.suggest_commands,
    }
    if sub_app.registered_groups:  # nested groups: built at once, as typer builds them
        return typer.main.get_group_from_info(info, **settings)
    shell = copy.copy(sub_app)  # the same group, without its commands
    shell.registered_commands = []
    info.typer_instance = shell
    group = typer.main.get_group_from_info(info, **settings)
    group.commands = _Commands(
        {
            _command_name(command_info): functools.partial(_build_leaf, command_info, prepare)
            for command_info in sub_app.registered_commands
        }
    )
    return group


def build_command() -> KeyloaderGroup:
    """The click group of :data:`app` (what the console script runs)."""
    command = typer.main.get_command(app)
    assert isinstance(command, KeyloaderGroup)
    return command
