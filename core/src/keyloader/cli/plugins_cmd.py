"""``keyloader plugins``, ``keyloader providers`` and ``keyloader providers show NAME``."""

from __future__ import annotations

from typing import Annotated

import typer

from . import render, session

__all__ = ["register"]

providers_app = typer.Typer(
    help="Master-key providers: list them, or show one's options.",
    invoke_without_command=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def plugins() -> None:
    """The installed plugins, what they register, and why any failed to load."""
    pm = session.plugin_manager()
    documents = [
        {
            "name": info.name,
            "entry_point": info.entry_point,
            "distribution": info.distribution,
            "version": info.version,
            "hooks": list(info.hooks),
            "providers": list(info.providers),
            "stores": list(info.stores),
            "status": info.status,
            "error": info.error,
        }
        for info in pm.plugin_infos()
    ]
    columns = [
        "name",
        "entry_point",
        "distribution",
        "version",
        "hooks",
        "providers",
        "stores",
        "status",
        "error",
    ]
    table = render.Table(columns, [[doc[c] for c in columns] for doc in documents])
    render.emit(table, {"plugins": documents}, as_json=session.options().json_output)


@providers_app.callback()
def providers(ctx: typer.Context) -> None:
    """Every master-key provider: name, plugin, enterprise or not, status."""
    if ctx.invoked_subcommand is not None:
        return
    pm = session.plugin_manager()
    enterprise = session.settings().enterprise
    documents = [
        {
            "name": info.name,
            "plugin": info.plugin,
            "enterprise": info.enterprise,
            "status": str(info.status),
            "aliases": list(info.aliases),
            "description": info.description,
        }
        for info in pm.provider_infos(enterprise=enterprise)
    ]
    columns = ["name", "plugin", "enterprise", "status", "aliases", "description"]
    table = render.Table(columns, [[doc[c] for c in columns] for doc in documents])
    render.emit(table, {"providers": documents}, as_json=session.options().json_output)


@providers_app.command("show")
def show(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Provider name (or an alias).")],
) -> None:
    """One provider's options: name, type, environment variables, default, secret or not."""
    from ..config import provider_option_env_names

    pm = session.plugin_manager()
    info = pm.provider_info(name, enterprise=session.settings().enterprise)
    options = [
        {
            "name": option.name,
            "type": option.type,
            "env": list(provider_option_env_names(info.name, option)),
            "default": _plain(option.default),
            "secret": option.secret,
            "required": option.required,
            "choices": list(option.choices) if option.choices is not None else None,
            "help": option.help,
        }
        for option in info.options
    ]
    document = {
        "name": info.name,
        "plugin": info.plugin,
        "enterprise": info.enterprise,
        "status": str(info.status),
        "aliases": list(info.aliases),
        "description": info.description,
        "options": options,
    }
    columns = ["name", "type", "env", "default", "secret", "required", "choices", "help"]
    table = render.Table(
        columns, [[opt[c] for c in columns] for opt in options], title=f"provider {info.name}"
    )
    render.emit(table, {"provider": document}, as_json=session.options().json_output)


def _plain(value: object) -> object:
    """A JSON-friendly default (paths become text)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def register(app: typer.Typer) -> None:
    """Add ``plugins`` and ``providers`` to the root app."""
    app.command("plugins")(plugins)
    app.add_typer(providers_app, name="providers")
