"""The global options' declarations, as the root callback takes them (typer ``Annotated``).

The values are recorded in :mod:`.options` (``GlobalOptions``); every leaf command
accepts them again after its own arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .options import check_key_values

__all__ = [
    "ConfigOption",
    "EnterpriseFlag",
    "JsonFlag",
    "KeysDirOption",
    "KeystoreVersionOption",
    "KeystoreOption",
    "PreviousOptions",
    "PreviousProviderOption",
    "ProviderOption",
    "ProviderOptions",
    "StoreOptions",
]

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        metavar="FILE",
        help="Config file (TOML); default: $KEYLOADER_CONFIG, then ./keyloader.toml.",
    ),
]
EnterpriseFlag = Annotated[
    bool,
    typer.Option("--enterprise", help="Enable Enterprise Edition providers."),
]
ProviderOption = Annotated[
    str | None,
    typer.Option("--provider", metavar="NAME", help="Master-key provider (default: env)."),
]
ProviderOptions = Annotated[
    list[str] | None,
    typer.Option(
        "-o",
        "--option",
        metavar="KEY=VALUE",
        callback=check_key_values,
        help="Provider option (repeatable). Secret options are refused here.",
    ),
]
KeystoreOption = Annotated[
    str | None,
    typer.Option("--keystore", metavar="NAME", help="Key store (default: filesystem)."),
]
KeystoreVersionOption = Annotated[
    str | None,
    typer.Option(
        "--keystore-version",
        "--keystore_version",
        metavar="v1|v2",
        help="Acra keystore version of a new keys_dir, and of the key `master-key generate` "
        "makes (default v1); an existing keys_dir keeps its own.",
    ),
]
StoreOptions = Annotated[
    list[str] | None,
    typer.Option(
        "-s",
        "--store-option",
        metavar="KEY=VALUE",
        callback=check_key_values,
        help="Key-store option (repeatable). Secret options are refused here.",
    ),
]
KeysDirOption = Annotated[
    Path | None,
    typer.Option(
        "--keys-dir",
        "--keys_dir",
        metavar="DIR",
        help="The key store's keys_dir (default: ./.acrakeys); --keys_dir is Acra's spelling.",
    ),
]
JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print one JSON document (fields: docs/cli.md).")
]
PreviousProviderOption = Annotated[
    str | None,
    typer.Option(
        "--previous-provider",
        metavar="NAME",
        help="Provider of the previous master key (read fallback during a rewrap).",
    ),
]
PreviousOptions = Annotated[
    list[str] | None,
    typer.Option(
        "--previous-option",
        metavar="KEY=VALUE",
        callback=check_key_values,
        help="Option of the previous provider (repeatable).",
    ),
]
