"""Deprecating a public name or behaviour: one warning class, one way to say it."""

from __future__ import annotations

import warnings

from .errors import KeyloaderDeprecationWarning

__all__ = ["warn_deprecated"]


def warn_deprecated(what: str, *, instead: str, removed_in: str, stacklevel: int = 3) -> None:
    """Warn that ``what`` goes away in release ``removed_in``; ``instead`` says what to use.

    ``stacklevel`` 3 points at the caller of the deprecated function that calls this.
    """
    warnings.warn(
        f"{what} is deprecated and is removed in keyloader {removed_in}: use {instead} "
        "(docs/upgrading.md)",
        KeyloaderDeprecationWarning,
        stacklevel=stacklevel,
    )
