"""``keyloader exec``: start a service with its master key in the environment.

Acra's third way to give a service its master key, "from KMS via environment
variable": load the key with the configured provider, put its text form (what
Acra reads: base64 of the raw v1 key, or of the v2 JSON pair) into the child's
environment, and replace this process with the service, so signals, exit
status and stdio are the service's own. :func:`child_environment` is the
building block for launchers that embed keyloader.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, NoReturn

from .build import build_provider
from .errors import ConfigError, KeyloaderError

if TYPE_CHECKING:
    from .config import Settings
    from .plugins import KeyloaderPluginManager

__all__ = ["DEFAULT_ENV_VAR", "ExecError", "child_environment", "exec_command", "resolve_command"]

DEFAULT_ENV_VAR = "ACRA_MASTER_KEY"
"""The variable Acra services read the master key from."""


class ExecError(KeyloaderError):
    """The command cannot be started: ``exit_code`` is 127 (not found) or 126 (not executable)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def child_environment(
    settings: Settings,
    pm: KeyloaderPluginManager,
    *,
    env_var: str = DEFAULT_ENV_VAR,
    keep_provider_env: bool = False,
    environ: Mapping[str, str] | None = None,
) -> dict[bytes, bytes]:
    """The environment a child should get: ``environ`` (default ``os.environ``) without the
    provider's credentials (unless ``keep_provider_env``), with ``env_var`` set to the
    master key's text form. Bytes, for ``os.execve``; the key is loaded and wiped here."""
    if not env_var or "=" in env_var or "\0" in env_var:
        raise ConfigError(f"--env-var {env_var!r}: give an environment variable name")
    base = dict(os.environ if environ is None else environ)
    provider = build_provider(pm, settings)
    try:
        with provider.load() as key, key.to_text() as text:
            consumed = provider.consumed_environment()
            child = {
                name.encode(): value.encode()
                for name, value in base.items()
                if keep_provider_env or name not in consumed or name == env_var
            }
            child[env_var.encode()] = text.bytes()
    finally:
        provider.close()
    return child


def resolve_command(command: str, path: str | None) -> str:
    """The file ``command`` names (searched on ``path`` without a ``/``); typed errors."""
    found = command if "/" in command else shutil.which(command, mode=os.F_OK, path=path)
    if found is None or not os.path.exists(found):
        raise ExecError(f"{command}: command not found", 127)
    if os.path.isdir(found) or not os.access(found, os.X_OK):
        raise ExecError(f"{command}: permission denied (not an executable file)", 126)
    return found


def exec_command(argv: Sequence[str], env: Mapping[bytes, bytes]) -> NoReturn:
    """Replace this process with ``argv`` (no shell), environment ``env``."""
    path = env.get(b"PATH", os.defpath.encode()).decode(errors="surrogateescape")
    program = resolve_command(argv[0], path)
    try:
        os.execve(program, list(argv), dict(env))  # noqa: S606 - no shell, on purpose
    except OSError as exc:  # raced away, or an exec format error
        code = 127 if isinstance(exc, FileNotFoundError) else 126
        raise ExecError(f"{argv[0]}: cannot run it: {exc.strerror or exc}", code) from None
