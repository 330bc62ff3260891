"""Commands that plugins add through the ``keyloader_cli_commands(app)`` hook."""

from __future__ import annotations

import typer
from typer import _click

__all__ = ["plugin_commands"]


def plugin_commands(app: typer.Typer) -> tuple[list[_click.Command], int]:
    """Call the hook with the root ``app``: the click commands it added, and how many
    plugins failed to load (their commands are missing).

    A plugin whose hook raises is recorded as a plugin failure by the plugin
    manager and contributes nothing. The app is left as it was, so building the
    CLI again does not repeat the commands.
    """
    from ..plugins import make_plugin_manager

    pm = make_plugin_manager()
    commands_before = list(app.registered_commands)
    groups_before = list(app.registered_groups)
    try:
        pm.add_cli_commands(app)
        new_commands = app.registered_commands[len(commands_before) :]
        new_groups = app.registered_groups[len(groups_before) :]
    finally:
        app.registered_commands[:] = commands_before
        app.registered_groups[:] = groups_before
    built: list[_click.Command] = [
        typer.main.get_command_from_info(
            info, pretty_exceptions_short=False, rich_markup_mode=app.rich_markup_mode
        )
        for info in new_commands
    ]
    built += [
        typer.main.get_group_from_info(
            info,
            pretty_exceptions_short=False,
            rich_markup_mode=app.rich_markup_mode,
            suggest_commands=app.suggest_commands,
        )
        for info in new_groups
    ]
    return built, len(pm.failures)
