"""``keyloader keys ...``: generate, list, read, rotate, destroy and verify intermediate keys."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from typer._click.exceptions import UsageError

from . import render, session
from .errors import CommandFailed
from .options import ToOptions

if TYPE_CHECKING:
    from ..keystore import KeyInfo, VerifyResult

__all__ = ["app"]

app = typer.Typer(
    help="Intermediate keys: generate, list, read, rotate, destroy, verify, rewrap, export, "
    "import.",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

KeyIdArgument = Annotated[
    str,
    typer.Argument(
        metavar="KEY_ID",
        help="client/<client-id>/symmetric|searchable|storage, audit-log, "
        "poison-record-symmetric or poison-record.",
    ),
]


@app.command("generate")
def generate(
    client_id: Annotated[
        str | None,
        typer.Option("--client-id", "--client_id", metavar="ID", help="Client id of client keys."),
    ] = None,
    symmetric: Annotated[
        bool,
        typer.Option(
            "--symmetric",
            "--client_storage_symmetric_key",
            help="The client's symmetric storage key (default).",
        ),
    ] = False,
    searchable: Annotated[
        bool,
        typer.Option(
            "--searchable",
            "--search_hmac_symmetric_key",
            help="The client's HMAC key for searchable encryption.",
        ),
    ] = False,
    storage: Annotated[
        bool,
        typer.Option(
            "--storage",
            "--client_storage_key",
            help="The client's storage keypair (AcraStruct): <id>_storage and <id>_storage.pub.",
        ),
    ] = False,
    audit_log: Annotated[
        bool,
        typer.Option("--audit-log", "--audit_log_symmetric_key", help="The secure log key."),
    ] = False,
    poison_record_symmetric: Annotated[
        bool, typer.Option("--poison-record-symmetric", help="The symmetric poison record key.")
    ] = False,
    poison_record: Annotated[
        bool,
        typer.Option(
            "--poison-record",
            "--poison_record_keys",
            help="The poison record keys: the keypair and the symmetric key.",
        ),
    ] = False,
) -> None:
    """Generate new keys; prints one key id per line. An existing key is an error (rotate it)."""
    from ..keyids import KeyKind
    from ..keystore import kinds_from_flags

    kinds = kinds_from_flags(
        [
            (symmetric, KeyKind.SYMMETRIC),
            (searchable, KeyKind.SEARCHABLE),
            (storage, KeyKind.STORAGE),
            (audit_log, KeyKind.AUDIT_LOG),
            (poison_record, KeyKind.POISON_RECORD),
            (poison_record or poison_record_symmetric, KeyKind.POISON_RECORD_SYMMETRIC),
        ]
    )
    with session.open_keystore() as keys:
        generated = [str(kid) for kid in keys.generate(kinds, client_id)]
    if session.options().json_output:
        render.print_json({"generated": generated})
    else:
        render.print_lines(generated)


@app.command("list")
def list_keys(
    rotated: Annotated[
        bool, typer.Option("--rotated", help="Include rotated (history) keys.")
    ] = False,
    check: Annotated[
        bool,
        typer.Option("--check", help="Load the master key and try to decrypt every key."),
    ] = False,
) -> None:
    """List the keys in the store; the master key is loaded only with --check."""
    with session.open_keystore() as keys:
        infos = keys.list(rotated=rotated, check=check)
    columns = ["key_id", "purpose", "client_id", "index", "state", "created", "path"]
    if check:
        columns.append("decrypts")
    documents = [_key_document(info, check=check) for info in infos]
    table = render.Table(columns, [[doc[c] for c in columns] for doc in documents])
    render.emit(table, {"keys": documents}, as_json=session.options().json_output)


def _key_document(info: KeyInfo, *, check: bool) -> dict[str, object]:
    document: dict[str, object] = {
        "key_id": info.key_id,
        "purpose": info.purpose,
        "client_id": info.client_id,
        "index": info.index,
        "state": info.state,
        "created": render.iso_time(info.created),
        "path": info.path,
    }
    if check:
        document["decrypts"] = info.decrypts
    return document


@app.command("read")
def read(
    key_id: KeyIdArgument,
    index: Annotated[
        int | None,
        typer.Option("--index", metavar="N", help="1 = current (default), 2 = oldest rotated..."),
    ] = None,
    output_format: Annotated[
        Literal["base64", "raw"],
        typer.Option(
            "--format",
            help="base64 + newline (default), or raw bytes without newline.",
        ),
    ] = "base64",
    public: Annotated[
        bool,
        typer.Option(
            "--public/--private",
            help="The public half of a keypair key, or the private key (default).",
        ),
    ] = False,
) -> None:
    """Print a key (decrypted with the master key; --public needs no master key)."""
    as_json = session.options().json_output
    if public and index is not None:
        raise UsageError("--index applies to private keys only: public keys have no history")
    if as_json and output_format == "raw":
        raise UsageError("--json prints the key in base64: drop --format raw")
    from ..masterkey import encode_base64
    from ..secret import SecretBytes

    with session.open_keystore() as keys:
        if public:
            key = SecretBytes(keys.read_public(key_id))
        else:
            key = keys.read(key_id, index if index is not None else 1)
    with key:
        if output_format == "raw":
            render.write_secret(key, newline=False)
            return
        with encode_base64(key) as text:
            if as_json:
                document = {
                    "key_id": key_id,
                    "index": None if public else (index or 1),
                    "part": "public" if public else "private",
                    "key": None,
                }
                render.print_secret_json(document, field="key", text=text)
            else:
                render.write_secret(text, newline=True)


@app.command("rotate")
def rotate(key_id: KeyIdArgument) -> None:
    """Replace a key with a new random one; the old key stays readable as the newest history."""
    with session.open_keystore() as keys:
        rotated = str(keys.rotate(key_id))
    if session.options().json_output:
        render.print_json({"rotated": rotated})
    else:
        render.print_lines([rotated])


@app.command("destroy")
def destroy(
    key_id: KeyIdArgument,
    index: Annotated[
        int | None,
        typer.Option(
            "--index", metavar="N", help="Delete this history entry instead of the current key."
        ),
    ] = None,
) -> None:
    """Delete the current key (history kept), or one history entry with --index. Never prompts."""
    with session.open_keystore() as keys:
        keys.destroy(key_id, index)
    if session.options().json_output:
        render.print_json({"destroyed": key_id, "index": index or 1})
    else:
        render.print_lines([key_id])


@app.command("verify")
def verify() -> None:
    """Decrypt every key, current and rotated; report each one; exit 1 if any fails."""
    with session.open_keystore() as keys, render.progress("verifying keys") as update:
        results = keys.verify(progress=update)
    documents = [_verify_document(result) for result in results]
    failed = sum(1 for result in results if result.ok is False)
    columns = ["key_id", "index", "path", "ok", "error"]
    table = render.Table(columns, [[doc[c] for c in columns] for doc in documents])
    render.emit(
        table,
        {"ok": failed == 0, "results": documents},
        as_json=session.options().json_output,
    )
    if failed:
        checked = sum(1 for result in results if result.ok is not None)
        raise CommandFailed(f"{failed} of {checked} keys failed verification")


def _verify_document(result: VerifyResult) -> dict[str, object]:
    return {
        "key_id": result.key_id,
        "index": result.index,
        "path": result.path,
        "ok": result.ok,
        "error": result.error,
        "error_type": result.error_type,
    }


# -- master-key rotation and backup ---------------------------------------------------------


@app.command("rewrap")
def rewrap(
    to_provider: Annotated[
        str,
        typer.Option("--to-provider", metavar="NAME", help="Provider of the new master key."),
    ],
    to_option: ToOptions = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check everything and report; write nothing.")
    ] = False,
    skip_undecryptable: Annotated[
        bool,
        typer.Option("--skip-undecryptable", help="Leave keys that neither master key opens."),
    ] = False,
    skip_unknown: Annotated[
        bool, typer.Option("--skip-unknown", help="Leave files that are not keys.")
    ] = False,
) -> None:
    """Re-encrypt every key under a new master key; resumable, each file replaced atomically."""
    from ..api import rewrap_keystore
    from .options import key_values

    settings = session.settings(rewrap_to=key_values(to_option or ()))
    with render.progress("rewrapping keys") as update:
        report = rewrap_keystore(
            settings,
            to_provider=to_provider,
            plugin_manager=session.plugin_manager(),
            dry_run=dry_run,
            skip_undecryptable=skip_undecryptable,
            skip_unknown=skip_unknown,
            progress=update,
        )
    render.summary(
        {
            "store": report.store,
            "old_fingerprint": report.old_fingerprint,
            "new_fingerprint": report.new_fingerprint,
            "dry_run": report.dry_run,
            "rewrapped": report.rewrapped,
            "skipped": report.skipped,
            "verified": report.verified,
            "undecryptable": list(report.undecryptable),
            "unknown": list(report.unknown),
            "failed": list(report.failed),
        }
    )
    if report.failed:
        raise CommandFailed(
            f"{len(report.failed)} keys do not decrypt under the new master key "
            f"{report.new_fingerprint}: run the rewrap again"
        )


@app.command("export")
def export(
    key_ids: Annotated[
        list[str] | None, typer.Argument(metavar="[KEY_ID]...", help="Keys to export.")
    ] = None,
    all_keys: Annotated[bool, typer.Option("--all", help="Export every key.")] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "--key_bundle_file",
            metavar="FILE",
            help="The bundle to write (mode 0600).",
        ),
    ] = None,
    secret_output: Annotated[
        Path | None,
        typer.Option(
            "--secret-output",
            "--key_bundle_secret",
            metavar="FILE",
            help="Where the bundle's secret goes (mode 0600).",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace existing files.")] = False,
    bundle_format: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="keyloader|acra",
            help="keyloader's bundle, or the one acra-keys import reads (v1 or v2, as the store).",
        ),
    ] = "keyloader",
) -> None:
    """Back up keys (with their history) into an encrypted bundle and a separate secret file."""
    from ..api import export_keystore

    if bool(key_ids) == all_keys:
        raise UsageError("name the keys to export, or pass --all (not both)")
    if output is None or secret_output is None:
        raise UsageError("--output and --secret-output are both required")
    with render.progress("exporting keys") as update:
        report = export_keystore(
            session.settings(),
            None if all_keys else key_ids,
            output,
            secret_output,
            force=force,
            plugin_manager=session.plugin_manager(),
            progress=update,
            format=bundle_format,
        )
    render.summary(
        {
            "output": str(report.output),
            "secret_output": str(report.secret_output),
            "fingerprint": report.fingerprint,
            "keys": list(report.key_ids),
            "entries": report.entries,
            "history": report.history,
            "public": report.public,
            "unknown": list(report.unknown),
        }
    )


@app.command("import")
def import_(
    input_path: Annotated[
        Path | None,
        typer.Option(
            "--input",
            "--key_bundle_file",
            metavar="FILE",
            help="A bundle from keys export, or from acra-keys export (v1 or v2, as the store).",
        ),
    ] = None,
    secret: Annotated[
        Path | None,
        typer.Option("--secret", "--key_bundle_secret", metavar="FILE", help="Its secret file."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace existing keys that hold other values.")
    ] = False,
) -> None:
    """Restore keys from a bundle, re-encrypted under this store's master key; all or nothing."""
    from ..api import import_keystore

    if input_path is None or secret is None:
        raise UsageError("--input and --secret are both required")
    with render.progress("importing keys") as update:
        report = import_keystore(
            session.settings(),
            input_path,
            secret,
            force=force,
            plugin_manager=session.plugin_manager(),
            progress=update,
        )
    render.summary(
        {
            "input": str(report.input),
            "fingerprint": report.fingerprint,
            "imported": list(report.imported),
            "replaced": list(report.replaced),
            "kept": list(report.kept),
            "identical": list(report.identical),
        }
    )


from .keys_migrate import migrate  # noqa: E402  (a command of this group, in a module of its own)

app.command("migrate")(migrate)
