"""The plugin's own errors: subclasses of keyloader's typed error tree."""

from __future__ import annotations

from keyloader.errors import ProviderUnavailableError

__all__ = ["CommandFailedError", "CommandTimeoutError"]


class CommandFailedError(ProviderUnavailableError):
    """The command exited with a non-zero status or was killed by a signal.

    ``returncode`` is the exit status, or minus the signal number (as in
    :mod:`subprocess`). The command's stderr went to our stderr, never into the
    message.
    """

    def __init__(self, message: str, *, returncode: int) -> None:
        super().__init__(message)
        self.returncode = returncode


class CommandTimeoutError(ProviderUnavailableError):
    """The command did not finish within option ``timeout`` and was killed."""
