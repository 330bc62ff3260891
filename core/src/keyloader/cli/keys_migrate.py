"""``keyloader keys migrate``: every key into a keystore v1 or v2 (one api call)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from typer._click.exceptions import UsageError

from . import render, session
from .options import ToOptions, check_key_values

__all__ = ["migrate"]


def migrate(
    dst_keys_dir: Annotated[
        Path | None,
        typer.Option("--dst-keys-dir", "--dst_keys_dir", metavar="DIR", help="Where the keys go."),
    ] = None,
    dst_keystore: Annotated[
        str | None,
        typer.Option("--dst-keystore", "--dst_keystore", metavar="v1|v2", help="Its version."),
    ] = None,
    src_keys_dir: Annotated[
        Path | None,
        typer.Option(
            "--src-keys-dir", "--src_keys_dir", metavar="DIR", help="The source (--keys-dir)."
        ),
    ] = None,
    src_keystore: Annotated[
        str | None,
        typer.Option(
            "--src-keystore", "--src_keystore", metavar="v1|v2", help="Its version (checked)."
        ),
    ] = None,
    src_redis_host_port: Annotated[
        str | None,
        typer.Option(
            "--src-redis-host-port",
            "--src_redis_host_port",
            metavar="HOST:PORT",
            help="The source is Redis: Acra's spelling of --keystore redis -s url=redis://...",
        ),
    ] = None,
    src_redis_db_keys: Annotated[
        int | None,
        typer.Option(
            "--src-redis-db-keys",
            "--src_redis_db_keys",
            metavar="N",
            help="Acra's spelling of the source's -s db=N.",
        ),
    ] = None,
    dst_store: Annotated[
        str,
        typer.Option(
            "--dst-store", metavar="NAME", help="The destination's key store (filesystem, redis)."
        ),
    ] = "filesystem",
    dst_store_option: Annotated[
        list[str] | None,
        typer.Option(
            "--dst-store-option",
            metavar="KEY=VALUE",
            callback=check_key_values,
            help="An option of the destination's store (repeatable), such as url=redis://...",
        ),
    ] = None,
    dst_redis_host_port: Annotated[
        str | None,
        typer.Option(
            "--dst-redis-host-port",
            "--dst_redis_host_port",
            metavar="HOST:PORT",
            help="Acra's spelling of --dst-store redis --dst-store-option url=redis://HOST:PORT.",
        ),
    ] = None,
    dst_redis_db_keys: Annotated[
        int | None,
        typer.Option(
            "--dst-redis-db-keys",
            "--dst_redis_db_keys",
            metavar="N",
            help="Acra's spelling of --dst-store-option db=N.",
        ),
    ] = None,
    to_provider: Annotated[
        str, typer.Option("--to-provider", metavar="NAME", help="Provider of the new master key.")
    ] = "env",
    to_option: ToOptions = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", "--dry_run", help="Read every key, check both keys; no writes."),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Write into an existing destination directory.")
    ] = False,
) -> None:
    """Copy every key, history included, into a keystore v1 or v2 directory or Redis
    prefix (Acra's acra-keys migrate); the source is never modified."""
    from ..api import migrate_keystore
    from .options import key_values

    if dst_keys_dir is None or dst_keystore is None:
        raise UsageError("--dst-keys-dir and --dst-keystore are both required")
    src_store, src_options = _acra_redis(None, {}, src_redis_host_port, src_redis_db_keys)
    settings = session.settings(
        rewrap_to=key_values(to_option or ()),
        keys_dir=src_keys_dir,
        keystore=src_store,
        store_options=src_options,
    )
    destination_store, options = _acra_redis(
        dst_store, key_values(dst_store_option or ()), dst_redis_host_port, dst_redis_db_keys
    )
    with render.progress("migrating keys") as update:
        report = migrate_keystore(
            settings,
            destination=dst_keys_dir,
            destination_version=dst_keystore,
            destination_store=destination_store or "filesystem",
            destination_options=options,
            to_provider=to_provider,
            source_version=src_keystore,
            plugin_manager=session.plugin_manager(),
            dry_run=dry_run,
            force=force,
            progress=update,
        )
    render.summary(
        {
            "source": report.source,
            "destination": report.destination,
            "source_version": report.source_version,
            "destination_version": report.destination_version,
            "dry_run": report.dry_run,
            "keys": report.keys,
            "versions": report.versions,
            "up_to_date": report.up_to_date,
        }
    )


def _acra_redis(
    store: str | None, options: dict[str, object], host_port: str | None, db: int | None
) -> tuple[str | None, dict[str, object]]:
    """A side's store and options with Acra's ``--<side>_redis_host_port``/``_db_keys``
    read as the redis store's ``url`` and ``db`` (options given explicitly win)."""
    if host_port is not None:
        store = "redis"
        options.setdefault("url", f"redis://{host_port}")
    if db is not None:
        options.setdefault("db", db)
    return store, options
