"""keyloader-command: the ``command`` master-key provider, a JSON-lines audit log, a CLI check.

A complete third-party keyloader plugin, meant to be copied (see README.md):

- provider ``command`` (:class:`CommandProvider`): runs the command of option
  ``argv`` (no shell) and parses the master key text form it prints;
- ``keyloader_audit_event``: appends each event to ``$KEYLOADER_COMMAND_AUDIT_LOG``;
- ``keyloader_cli_commands``: adds ``keyloader command-check``.

The names below load on first access (:func:`keyloader.lazy.lazy_exports`): the
core imports this package (for its ``plugin`` module) on every ``keyloader`` run
that looks up a provider, so it must cost next to nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keyloader.lazy import lazy_exports

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .audit import AUDIT_LOG_VAR
    from .errors import CommandFailedError, CommandTimeoutError
    from .provider import CommandProvider

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AUDIT_LOG_VAR": ".audit",
        "CommandFailedError": ".errors",
        "CommandTimeoutError": ".errors",
        "CommandProvider": ".provider",
    },
)


__all__ = [
    "AUDIT_LOG_VAR",
    "CommandFailedError",
    "CommandProvider",
    "CommandTimeoutError",
    "__version__",
]
