"""``keyloader command-check``: run the configured command, print only the key's fingerprint.

Imported only by the ``keyloader_cli_commands`` hook, when the ``keyloader``
CLI runs (it imports typer; ``import keyloader_command`` never does).
"""

from __future__ import annotations

import re
from typing import Annotated

import typer

__all__ = ["command_check"]

_FINGERPRINT = re.compile(r"[0-9a-f]{16}")


def _check_fingerprint(value: str | None) -> str | None:
    if value is not None and not _FINGERPRINT.fullmatch(value.lower()):
        raise typer.BadParameter("a fingerprint is 16 hex digits, as `master-key check` prints")
    return value.lower() if value is not None else None


def command_check(
    expect: Annotated[
        str | None,
        typer.Option(
            "--expect",
            metavar="FINGERPRINT",
            callback=_check_fingerprint,
            help="Fail (exit 1) unless the key has this fingerprint.",
        ),
    ] = None,
) -> None:
    """Run the command of provider `command`; print the master key's fingerprint, never the key.

    The command and its timeout come from -o argv=... / -o timeout=...,
    KEYLOADER_COMMAND_ARGV / KEYLOADER_COMMAND_TIMEOUT, or [providers.command]
    in keyloader.toml. Exit 0 when the key loads (and matches --expect), 1 otherwise.
    """
    import hmac
    import json

    from keyloader.api import load_master_key, resolve
    from keyloader.cli.options import current_options
    from keyloader.errors import ConfigError, MasterKeyError

    options = current_options()
    if options.provider not in (None, "command"):
        raise ConfigError(
            f"command-check always uses provider 'command', not {options.provider!r}: drop "
            f"--provider, or use `keyloader master-key check` for other providers"
        )
    settings = resolve(provider="command", cli=options.layer())
    with load_master_key(settings) as key:
        fingerprint = key.fingerprint
    if expect is not None and not hmac.compare_digest(expect, fingerprint):
        raise MasterKeyError(
            f"the command printed master key {fingerprint}, not the expected {expect}: check "
            f"which key it reads"
        )
    typer.echo(json.dumps({"fingerprint": fingerprint}) if options.json_output else fingerprint)
