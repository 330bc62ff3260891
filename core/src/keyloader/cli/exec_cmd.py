"""``keyloader exec -- CMD [ARG...]``: run a service with its master key in the environment."""

from __future__ import annotations

from typing import Annotated

import typer
from typer._click.exceptions import UsageError

from . import session

__all__ = ["exec_"]


def exec_(
    command: Annotated[
        list[str] | None,
        typer.Argument(metavar="-- CMD [ARG...]", help="The command to run, after `--`."),
    ] = None,
    env_var: Annotated[
        str,
        typer.Option(
            "--env-var", metavar="NAME", help="Where the child finds the key (ACRA_MASTER_KEY)."
        ),
    ] = "ACRA_MASTER_KEY",
    keep_provider_env: Annotated[
        bool,
        typer.Option(
            "--keep-provider-env",
            help="Keep the provider's credentials (VAULT_TOKEN, ...) in the child's environment.",
        ),
    ] = False,
) -> None:
    """Run CMD with the master key in its environment; keyloader's process becomes CMD."""
    if not command:
        raise UsageError("give the command to run after `--`, e.g. `keyloader exec -- acra-server`")
    import os

    from ..launch import child_environment, exec_command, resolve_command

    resolve_command(command[0], os.environ.get("PATH", os.defpath))  # 127/126 before any load
    env = child_environment(
        session.settings(),
        session.plugin_manager(),
        env_var=env_var,
        keep_provider_env=keep_provider_env,
    )
    exec_command(command, env)
