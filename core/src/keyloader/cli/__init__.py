"""The ``keyloader`` command line: parse, call the library, render. No logic lives here.

Only this package imports typer and rich. Heavy modules (rich, the key-store
engine, cryptography, plugins) are imported inside command functions, so
``keyloader --help`` starts fast.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``keyloader`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit code.

    Exit codes: 0 success, 1 error (one ``error: ...`` line on stderr), 2 command-line
    parse error, 130 interrupted.
    """
    from .app import build_command

    code: int = build_command().main(
        list(argv) if argv is not None else None, prog_name="keyloader", standalone_mode=False
    )
    return code
