"""``keyloader master-key ...``: generate a master key, check the configured one."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from typer._click.exceptions import UsageError

from . import render, session

if TYPE_CHECKING:
    from ..masterkey import MasterKey

__all__ = ["app"]

app = typer.Typer(
    help="The master key: generate one, check the configured one.",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.command("generate")
def generate(
    keystore_version: Annotated[
        Literal["v1", "v2"],
        typer.Option(
            "--keystore-version",
            help="v1: one 32-byte key (default); v2: an encryption/signature pair.",
        ),
    ] = "v1",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            metavar="FILE",
            help="Write the key to a new file (mode 0600) instead of printing it: raw bytes "
            "for v1, the text form for v2. Prints the fingerprint.",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace the --output file if it exists.")
    ] = False,
) -> None:
    """Generate a random master key: printed as base64, or written to --output."""
    if force and output is None:
        raise UsageError("--force applies only with --output")
    from ..masterkey import generate_master_key, write_master_key_file

    as_json = session.options().json_output
    with generate_master_key(keystore_version) as key:
        if output is None:
            with key.to_text() as text:
                if as_json:
                    document = {"master_key": None, **_description(key)}
                    render.print_secret_json(document, field="master_key", text=text)
                else:
                    render.write_secret(text, newline=True)
            return
        path = write_master_key_file(key, output, force=force)
        document = {"path": str(path), **_description(key)}
    columns = ["path", "version", "length", "fingerprint"]
    render.emit(render.Table(columns, [[document[c] for c in columns]]), document, as_json=as_json)


@app.command("check")
def check() -> None:
    """Load and validate the configured master key; print its fingerprint, never the key."""
    from ..api import load_master_key

    settings = session.settings()
    pm = session.plugin_manager()
    with load_master_key(settings, plugin_manager=pm) as key:
        document = {"provider": pm.find_provider(settings.provider).name, **_description(key)}
    columns = ["provider", "version", "length", "fingerprint"]
    render.emit(
        render.Table(columns, [[document[c] for c in columns]]),
        document,
        as_json=session.options().json_output,
    )


def _description(key: MasterKey) -> dict[str, object]:
    return {"version": key.version, "length": len(key.encryption), "fingerprint": key.fingerprint}
