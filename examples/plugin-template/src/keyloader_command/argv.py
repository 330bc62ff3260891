"""``ArgvOption``: an option whose value is a command line, a list of strings (never a shell)."""

from __future__ import annotations

from typing import Any

from keyloader.errors import ConfigError
from keyloader.providers import Option

__all__ = ["ArgvOption"]

_EXAMPLE = '\'["my-kms-tool", "decrypt", "--key-id", "acra"]\''
_MAX_SHOWN = 120


class ArgvOption(Option):
    """An ``Option`` holding a command as a tuple of strings.

    ``Option`` has no list type, so this subclass overrides :meth:`convert`, the
    one method the core calls to turn a raw value into an option value. Accepted:
    a list or tuple of strings (Python, a TOML array in ``keyloader.toml``) or
    the text of a JSON array of strings (environment, ``-o argv=...``, a TOML
    string). A plain command line such as ``"my-tool --flag"`` is refused: the
    command never runs through a shell, so nothing would split it safely.
    """

    def convert(self, value: object, *, origin: str) -> Any:
        """The command as a non-empty ``tuple[str, ...]``; raises :class:`ConfigError`."""
        items = _items(value, origin)
        if not items:
            raise ConfigError(
                f"{origin}: the command is empty; give at least the program, e.g. {_EXAMPLE}"
            )
        argv: list[str] = []
        for position, item in enumerate(items, start=1):
            if not isinstance(item, str):
                raise ConfigError(
                    f"{origin}: item {position} of the command is {type(item).__name__}, not "
                    f"a string; quote every argument, e.g. {_EXAMPLE}"
                )
            if "\0" in item:
                raise ConfigError(f"{origin}: item {position} of the command contains a NUL")
            argv.append(item)
        if not argv[0].strip():
            raise ConfigError(f"{origin}: the program (item 1 of the command) is blank")
        if self.validator is not None:
            try:
                self.validator(tuple(argv))
            except ValueError as exc:
                raise ConfigError(f"{origin}: {exc}") from None
        return tuple(argv)


def _items(value: object, origin: str) -> list[object]:
    """The items of a list, a tuple or a JSON array text."""
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, str):
        import json  # here: only loading options from text needs it

        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            return parsed
        shown = repr(value) if len(value) <= _MAX_SHOWN else repr(value[:_MAX_SHOWN]) + "..."
        raise ConfigError(
            f"{origin}: {shown} is not a JSON array of strings; write the command as one, "
            f"e.g. {_EXAMPLE} (a TOML array in keyloader.toml). It runs without a shell, "
            f"so it is never split on spaces"
        )
    raise ConfigError(
        f"{origin}: a {type(value).__name__} is not a command; give a list of strings "
        f"or a JSON array of strings, e.g. {_EXAMPLE}"
    )
