"""``keyloader master-key ...``: generate a master key, check the configured one, store one."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from typer._click.exceptions import UsageError

from . import render, session

if TYPE_CHECKING:
    from ..config import Settings
    from ..masterkey import MasterKey

__all__ = ["app"]

app = typer.Typer(
    help="The master key: generate one, check the configured one, store one in a provider.",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.command("generate")
def generate(
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
    """Generate a random master key: printed as base64, or written to --output. The global
    --keystore-version picks v1 (one 32-byte key, the default) or v2 (an encryption and
    signature pair)."""
    if force and output is None:
        raise UsageError("--force applies only with --output")
    keystore_version: Literal["v1", "v2"]
    match session.options().keystore_version:
        case None | "v1":
            keystore_version = "v1"
        case "v2":
            keystore_version = "v2"
        case other:
            raise UsageError(f"--keystore-version must be v1 or v2, not {other[:20]!r}")
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


@app.command("store")
def store(
    generate: Annotated[
        bool,
        typer.Option("--generate", help="Store a new random v1 key instead of reading stdin."),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace a key already stored there (refused while the key store holds keys "
            "that only the old key decrypts: rewrap them first).",
        ),
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            metavar="FILE",
            help="For a provider that returns what a service must be given (aws-kms: the "
            "ACRA_MASTER_KEY ciphertext): write it to a new env file (NAME=value, mode 0600) "
            "instead of printing it.",
        ),
    ] = None,
) -> None:
    """Write a master key (base64 text form on stdin, or --generate) into a provider that can
    store one (vault, aws-kms); prints its fingerprint, and for aws-kms the ACRA_MASTER_KEY
    line (a KMS ciphertext, never the key)."""
    from ..api import store_master_key
    from ..masterkey import generate_master_key
    from ..masterkey_file import check_new_file, write_environment_file

    settings = session.settings()
    if output is not None:
        check_new_file(output)
    key = generate_master_key() if generate else _key_from_stdin(settings)
    with key:
        stored = store_master_key(
            settings, key, force=force, plugin_manager=session.plugin_manager()
        )
    document: dict[str, object] = {
        "provider": stored.provider,
        "version": stored.version,
        "fingerprint": stored.fingerprint,
    }
    as_json = session.options().json_output
    if output is not None:
        if not stored.environment:
            raise UsageError(
                f"--output: provider {stored.provider!r} holds the key itself and returned "
                f"nothing to write (the key is stored)"
            )
        document["output"] = str(write_environment_file(output, stored.environment))
    elif stored.environment:
        if as_json:
            render.print_json({**document, "environment": dict(stored.environment)})
        else:
            render.print_lines([f"{name}={value}" for name, value in stored.environment.items()])
            render.note(
                f"stored master key {stored.fingerprint} ({stored.version}) with provider "
                f"{stored.provider!r}: give the service the line above"
            )
        return
    columns = list(document)
    render.emit(render.Table(columns, [[document[c] for c in columns]]), document, as_json=as_json)


def _key_from_stdin(settings: Settings) -> MasterKey:
    """The base64 text form piped on stdin; a terminal is refused (keyloader never prompts)."""
    import sys

    from ..errors import ConfigError
    from ..masterkey import parse_master_key
    from ..secret import SecretBytes

    if sys.stdin is None or sys.stdin.isatty():
        raise ConfigError(
            "master-key store reads the base64 text form on stdin: pipe it in "
            "(keyloader master-key generate | keyloader master-key store), or pass --generate"
        )
    with SecretBytes.adopt(bytearray(sys.stdin.buffer.read())) as text:
        return parse_master_key(text.buffer, source="standard input")


def _description(key: MasterKey) -> dict[str, object]:
    return {"version": key.version, "length": len(key.encryption), "fingerprint": key.fingerprint}
