"""``keyloader config show``: the resolved configuration and where each value came from."""

from __future__ import annotations

import typer

from . import render, session

__all__ = ["app"]

app = typer.Typer(
    help="The configuration: show every resolved setting and option with its source.",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

COLUMNS = ["scope", "name", "value", "source", "secret"]


@app.command("show")
def show() -> None:
    """Every setting, and every option of the selected provider and key store, with its
    source (secret values redacted). Loads no master key."""
    from ..config_report import describe_configuration

    rows = describe_configuration(session.settings(), session.plugin_manager())
    documents = [row._asdict() for row in rows]
    table = render.Table(COLUMNS, [[doc[c] for c in COLUMNS] for doc in documents])
    render.emit(table, {"config": documents}, as_json=session.options().json_output)
