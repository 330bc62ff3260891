"""Boolean words: what every boolean setting accepts (environment, TOML strings, ``-o``)."""

from __future__ import annotations

from .errors import ConfigError

__all__ = ["FALSE_WORDS", "TRUE_WORDS", "parse_bool"]

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})
HINT = "use 1/true/yes/on or 0/false/no/off"


def word(value: str) -> bool | None:
    """``value`` as a boolean word (case-insensitive, surrounding blanks ignored), or None."""
    folded = value.strip().lower()
    if folded in TRUE_WORDS:
        return True
    if folded in FALSE_WORDS:
        return False
    return None


def parse_bool(value: object, where: str, *, empty: bool | None = None) -> bool:
    """``value`` (a bool, or one of the words) as a bool; ``where`` names it in the error.

    ``empty`` is what an empty (or blank) string means; None refuses it.
    Raises :class:`~keyloader.errors.ConfigError`.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        if empty is not None and not value.strip():
            return empty
        parsed = word(value)
        if parsed is not None:
            return parsed
    raise ConfigError(f"{where}: {value!r} is not a boolean; {HINT}")
