"""The ``command`` provider: the master key printed on stdout by a command you configure.

It is the "read the key from a KMS with your own tool" path: the command (your
KMS client, a secrets-manager CLI, a script) prints the master key's base64
text form, the same text as ``ACRA_MASTER_KEY`` (v1, or a v2 pair). The command
runs directly, never through a shell, with stdin from ``/dev/null``, keyloader's
environment, and a deadline (option ``timeout``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar

from keyloader.errors import ConfigError, MasterKeyNotFoundError
from keyloader.providers import MasterKeyProvider, Option

from .argv import ArgvOption

if TYPE_CHECKING:
    from keyloader.masterkey import MasterKey

__all__ = ["ARGV_OPTION", "DEFAULT_TIMEOUT", "TIMEOUT_OPTION", "CommandProvider"]

DEFAULT_TIMEOUT = 30.0
"""Seconds the command may run before it is killed."""

_WHITESPACE = b" \t\r\n\x0b\x0c"


def _check_timeout(value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"must be a number of seconds greater than 0, not {value}")


ARGV_OPTION = ArgvOption(
    "argv",
    "The command that prints the base64 master key on stdout, as a JSON array of strings "
    '(\'["my-kms-tool", "decrypt"]\') or a TOML array; run without a shell.',
    required=True,
)
TIMEOUT_OPTION = Option(
    "timeout",
    "Seconds the command may run before it is killed and loading fails.",
    type="float",
    default=DEFAULT_TIMEOUT,
    validator=_check_timeout,
)


class CommandProvider(MasterKeyProvider):
    """Runs ``argv`` and parses the master key text form it prints."""

    name: ClassVar[str] = "command"
    description: ClassVar[str] = (
        "The master key's base64 text form printed on stdout by a command you configure "
        "(your own KMS client), run without a shell."
    )
    options: ClassVar[tuple[Option, ...]] = (ARGV_OPTION, TIMEOUT_OPTION)

    @property
    def argv(self) -> tuple[str, ...]:
        """The command, checked again (the class may be built directly, without the core)."""
        value = self.config.get("argv")
        if value is None:
            raise ConfigError(
                "provider 'command' needs option 'argv': the command that prints the master "
                'key, e.g. -o argv=\'["my-kms-tool", "decrypt"]\' or KEYLOADER_COMMAND_ARGV'
            )
        argv: tuple[str, ...] = ARGV_OPTION.convert(
            value, origin="option 'argv' of provider 'command'"
        )
        return argv

    @property
    def timeout(self) -> float:
        """The deadline of one run, in seconds."""
        value = self.config.get("timeout")
        if value is None:
            return DEFAULT_TIMEOUT
        origin = "option 'timeout' of provider 'command'"
        timeout: float = TIMEOUT_OPTION.convert(value, origin=origin)
        return timeout

    def load(self) -> MasterKey:
        """Run the command; parse its stdout; wipe every buffer that held the key text."""
        from keyloader.masterkey import parse_master_key

        from .runner import run_command, wipe

        argv = self.argv
        label = f"command {argv[0]!r} (option 'argv' of provider 'command')"
        output = run_command(argv, timeout=self.timeout, label=label)
        try:
            if all(byte in _WHITESPACE for byte in output):  # no .strip(): it would copy
                raise MasterKeyNotFoundError(
                    f"{label} printed nothing on stdout: it must print the base64 text form "
                    f"of the master key (what `keyloader master-key generate` prints)"
                )
            return parse_master_key(
                output, keystore_version=self.keystore_version, source=f"the output of {label}"
            )
        finally:
            wipe(output)

    def __repr__(self) -> str:
        program = self.config.get("argv")
        shown = program[0] if isinstance(program, tuple | list) and program else None
        return f"<{type(self).__name__} {self.name!r} program={shown!r}>"
