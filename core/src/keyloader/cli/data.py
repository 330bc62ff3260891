"""``keyloader data ...``: Acra's data containers from the command line (docs/data.md).

Values go stdin to stdout (``--input``/``--output`` for files). The keys never
leave keyloader: each command opens the key store, calls one ``KeyManager`` data
operation and writes its result.
"""

from __future__ import annotations

import binascii
import os
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer
from typer._click.exceptions import UsageError

from . import render, session

__all__ = ["app"]

app = typer.Typer(
    help="Data: encrypt and decrypt Acra's containers, search hashes, poison records.",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

DataKeyId = Annotated[
    str,
    typer.Argument(
        metavar="KEY_ID",
        help="client/<client-id>/symmetric (AcraBlock) or client/<client-id>/storage (AcraStruct).",
    ),
]
InputOption = Annotated[
    Path | None,
    typer.Option("--input", metavar="FILE", help="Read the value from FILE, not stdin."),
]
OutputOption = Annotated[
    Path | None,
    typer.Option(
        "--output", metavar="FILE", help="Write the result to FILE (mode 0600), not stdout."
    ),
]
ContextOption = Annotated[
    str | None,
    typer.Option(
        "--context",
        metavar="TEXT",
        help="A Secure Cell context (UTF-8). Acra services send none: only for values "
        "that keyloader alone reads.",
    ),
]
SearchableFlag = Annotated[
    bool,
    typer.Option(
        "--searchable", help="The value carries the client's 33-byte search hash in front."
    ),
]


@app.command("encrypt")
def encrypt(
    key_id: DataKeyId,
    input_file: InputOption = None,
    output: OutputOption = None,
    as_base64: Annotated[
        bool, typer.Option("--base64", help="Write the container as base64 and a newline.")
    ] = False,
    searchable: SearchableFlag = False,
    no_envelope: Annotated[
        bool,
        typer.Option("--no-envelope", help="A bare container, without Acra's %%% envelope."),
    ] = False,
    context: ContextOption = None,
) -> None:
    """Encrypt a value into an AcraBlock or AcraStruct (an AcraStruct needs no master key)."""
    data = _read(input_file, as_base64=False)
    with session.open_keystore() as keys:
        sealed = keys.encrypt(
            key_id,
            data,
            context=_context(context),
            envelope=not no_envelope,
            searchable=searchable,
        )
    _write(sealed, output, as_base64=as_base64)


@app.command("decrypt")
def decrypt(
    key_id: DataKeyId,
    input_file: InputOption = None,
    output: OutputOption = None,
    as_base64: Annotated[
        bool, typer.Option("--base64", help="The container is base64 text.")
    ] = False,
    searchable: SearchableFlag = False,
    context: ContextOption = None,
) -> None:
    """Decrypt an AcraBlock or AcraStruct, enveloped or bare, trying rotated keys too."""
    data = _read(input_file, as_base64=as_base64)
    with session.open_keystore() as keys:
        plain = keys.decrypt(key_id, data, context=_context(context), searchable=searchable)
    _write(plain, output, as_base64=False)


@app.command("hash")
def hash_(
    client_id: Annotated[str, typer.Argument(metavar="CLIENT_ID", help="The client id.")],
    input_file: InputOption = None,
    output: OutputOption = None,
    as_base64: Annotated[
        bool, typer.Option("--base64", help="Write the hash as base64 and a newline.")
    ] = False,
) -> None:
    """The 33-byte searchable hash of a value, as AcraServer matches it."""
    data = _read(input_file, as_base64=False)
    with session.open_keystore() as keys:
        found = keys.search_hash(client_id, data)
    _write(found, output, as_base64=as_base64)


@app.command("poison-record")
def poison_record(
    record_type: Annotated[
        Literal["acrastruct", "acrablock"],
        typer.Option("--type", help="An AcraStruct (poison keypair) or an AcraBlock."),
    ] = "acrastruct",
    data_length: Annotated[
        int | None,
        typer.Option(
            "--data_length",
            "--data-length",
            metavar="N",
            help="Bytes of random data (default: 1 to 99, as Acra).",
        ),
    ] = None,
) -> None:
    """Print a new poison record in base64, as acra-poisonrecordmaker does."""
    if data_length is not None and data_length < 1:
        raise UsageError(f"--data_length must be 1 or more, not {data_length}")
    with session.open_keystore() as keys:
        record = keys.make_poison_record(record_type, data_length)
    _write(record, None, as_base64=True)


@app.command("is-poison")
def is_poison(
    input_file: InputOption = None,
    as_base64: Annotated[bool, typer.Option("--base64", help="The value is base64 text.")] = False,
) -> None:
    """Exit 0 if the value is a poison record (it decrypts with a poison key), 1 if not."""
    data = _read(input_file, as_base64=as_base64)
    with session.open_keystore() as keys:
        poisoned = keys.is_poison_record(data)
    if session.options().json_output:
        render.print_json({"poison_record": poisoned})
    else:
        render.print_lines(["poison record" if poisoned else "not a poison record"])
    if not poisoned:
        raise typer.Exit(1)


def _read(path: Path | None, *, as_base64: bool) -> bytes:
    if path is None:
        data = sys.stdin.buffer.read()
        where = "stdin"
    else:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
        where = str(path)
    if as_base64:
        try:
            data = binascii.a2b_base64(b"".join(data.split()), strict_mode=True)
        except binascii.Error:
            raise UsageError(f"{where} is not base64 text") from None
    if not data:
        raise UsageError(f"{where} is empty: there is no value")
    return data


def _write(data: bytes, path: Path | None, *, as_base64: bool) -> None:
    if as_base64:
        data = binascii.b2a_base64(data, newline=True)
    if path is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def _context(context: str | None) -> bytes | None:
    return None if context is None else context.encode()
