"""The one place where errors become exit codes and one-line messages on stderr."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import typer
from typer._click import ClickException

from ..booleans import word
from ..errors import KeyloaderError

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CommandFailed",
    "debug_enabled",
    "run_guarded",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CommandFailed(Exception):
    """A command ran and reported its result on stdout, but the result is a failure.

    ``keys verify`` raises it after printing its report: exit 1, and the message
    goes to stderr like any error (stdout keeps the report).
    """


def debug_enabled() -> bool:
    """True when ``KEYLOADER_DEBUG`` asks for tracebacks."""
    return word(os.environ.get("KEYLOADER_DEBUG", "")) is True


def run_guarded(invoke: Callable[[], object]) -> int:
    """Run the CLI and turn every outcome into an exit code.

    0 success; 1 any keyloader error, a failed command or an OS error on a user
    path (one line ``error: <message>`` on stderr, no traceback unless
    ``KEYLOADER_DEBUG=1``); 2 command-line parse errors; 130 Ctrl-C.
    """
    try:
        result = invoke()
    except KeyboardInterrupt:
        return _interrupted()
    except typer.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):
            return _interrupted()
        return _fail("aborted", exc)
    except ClickException as exc:
        exc.show()
        return exc.exit_code
    except (KeyloaderError, CommandFailed) as exc:
        code = getattr(exc, "exit_code", EXIT_FAILURE)  # `exec`: 126/127, as env(1)
        return _fail(str(exc) or type(exc).__name__, exc, code if isinstance(code, int) else 1)
    except OSError as exc:
        return _fail(_os_error_message(exc), exc)
    except Exception as exc:  # a bug: its message could hold anything, so show only its type
        return _fail(
            f"unexpected {type(exc).__name__} (a bug; set KEYLOADER_DEBUG=1 to see the traceback)",
            exc,
        )
    return result if isinstance(result, int) else EXIT_OK


def _fail(message: str, exc: BaseException, code: int = EXIT_FAILURE) -> int:
    if debug_enabled():
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    sys.stderr.write(f"error: {_one_line(message)}\n")
    sys.stderr.flush()
    return code


def _interrupted() -> int:
    sys.stderr.write("\ninterrupted\n")
    return EXIT_INTERRUPTED


def _one_line(message: str) -> str:
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def _os_error_message(exc: OSError) -> str:
    reason = exc.strerror or type(exc).__name__
    if exc.filename is not None:
        return f"{os.fsdecode(exc.filename)}: {reason}"
    return reason
