"""The typer app: the root group, the global options and the command groups."""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from typer import _click
from typer._click.globals import get_current_context
from typer.core import TyperGroup

from .errors import run_guarded
from .options import (
    GLOBAL_OPTION_NAMES,
    GlobalOptions,
    check_key_values,
    record_options,
)

__all__ = ["KeyloaderGroup", "app", "build_command"]

_LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


class KeyloaderGroup(TyperGroup):
    """The root group: global options on every leaf, plugin commands, exit codes."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self._global_params = [p for p in self.params if p.name in GLOBAL_OPTION_NAMES]
        self._plugin_commands_loaded = False
        for command in self.commands.values():
            self._add_global_options(command)

    # -- global options after the command -------------------------------------------------

    def _add_global_options(self, command: _click.Command) -> None:
        """Give a leaf (or a group that runs on its own) the global options; wrap its callback."""
        if isinstance(command, TyperGroup):
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

    def list_commands(self, ctx: _click.Context) -> list[str]:
        if ctx.resilient_parsing:  # shell completion; --help stays fast and lists built-ins
            self._load_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and not self._plugin_commands_loaded:
            self._load_plugin_commands()
            command = super().get_command(ctx, cmd_name)
        return command

    def _load_plugin_commands(self) -> None:
        if self._plugin_commands_loaded:
            return
        self._plugin_commands_loaded = True
        import logging

        from .plugin_commands import plugin_commands

        log = logging.getLogger("keyloader.cli")
        for command in plugin_commands(app):
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


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_show_version, help="Print the version and exit."
        ),
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            metavar="FILE",
            help="Config file (TOML); default: $KEYLOADER_CONFIG, then ./keyloader.toml.",
        ),
    ] = None,
    enterprise: Annotated[
        bool,
        typer.Option("--enterprise", help="Enable Enterprise Edition providers."),
    ] = False,
    provider: Annotated[
        str | None,
        typer.Option("--provider", metavar="NAME", help="Master-key provider (default: env)."),
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "-o",
            "--option",
            metavar="KEY=VALUE",
            callback=check_key_values,
            help="Provider option (repeatable). Secret options are refused here.",
        ),
    ] = None,
    keystore: Annotated[
        str | None,
        typer.Option("--keystore", metavar="NAME", help="Key store (default: filesystem)."),
    ] = None,
    store_option: Annotated[
        list[str] | None,
        typer.Option(
            "-s",
            "--store-option",
            metavar="KEY=VALUE",
            callback=check_key_values,
            help="Key-store option (repeatable). Secret options are refused here.",
        ),
    ] = None,
    keys_dir: Annotated[
        Path | None,
        typer.Option(
            "--keys-dir", metavar="DIR", help="The key store's keys_dir (default: ./.acrakeys)."
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON document (fields: docs/cli.md).")
    ] = False,
    previous_provider: Annotated[
        str | None,
        typer.Option(
            "--previous-provider",
            metavar="NAME",
            help="Provider of the previous master key (read fallback during a rewrap).",
        ),
    ] = None,
    previous_option: Annotated[
        list[str] | None,
        typer.Option(
            "--previous-option",
            metavar="KEY=VALUE",
            callback=check_key_values,
            help="Option of the previous provider (repeatable).",
        ),
    ] = None,
) -> None:
    """Load a master key from a pluggable provider and manage the intermediate keys it protects.

    Global options go before the command or after any command (the later value wins).
    Exit codes: 0 success, 1 error, 2 command-line error, 130 interrupted. Commands that
    plugins add are not listed here (help loads no plugin); they run by name and complete
    in the shell.
    """
    given = {name: value for name, value in locals().items() if name in GLOBAL_OPTION_NAMES}
    record_options(get_current_context(), GlobalOptions.from_params(given), leaf=False)


def _register_commands() -> None:
    from . import keys, master_key, plugins_cmd

    plugins_cmd.register(app)
    app.add_typer(master_key.app, name="master-key")
    app.add_typer(keys.app, name="keys")


_register_commands()


def build_command() -> KeyloaderGroup:
    """The click group of :data:`app` (what the console script runs)."""
    command = typer.main.get_command(app)
    assert isinstance(command, KeyloaderGroup)
    return command
