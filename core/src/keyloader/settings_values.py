"""Top-level settings values: one parser per setting, whatever layer the value comes from.

Each parser takes the raw value and ``where`` (what an error message says it
is and where it came from) and raises :class:`ConfigError`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .booleans import parse_bool
from .errors import ConfigError

__all__ = [
    "PARSERS",
    "describe_value",
    "parse_count",
    "parse_name",
    "parse_seconds",
    "parse_setting_bool",
    "to_path",
]


def parse_name(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: {value!r} is not a name; give a non-empty name")
    return value


def parse_setting_bool(value: object, where: str) -> bool:
    return parse_bool(value, where, empty=False)


def parse_count(value: object, where: str) -> int:
    try:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise TypeError
        count = int(value)
    except (TypeError, ValueError):
        count = -1
    if count < 0:
        raise ConfigError(f"{where}: {value!r} is not an integer >= 0 (0 turns the cache off)")
    return count


def parse_seconds(value: object, where: str) -> float:
    try:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise TypeError
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ConfigError(f"{where}: {value!r} is not a number of seconds >= 0")
    return seconds


def to_path(value: object, where: str, base_dir: Path | None) -> Path:
    if not isinstance(value, str | Path) or str(value) == "":
        raise ConfigError(f"{where}: {value!r} is not a path; give a directory")
    path = Path(value).expanduser()
    return base_dir / path if base_dir is not None and not path.is_absolute() else path


PARSERS: dict[str, Callable[[object, str], Any]] = {
    "provider": parse_name,
    "keystore": parse_name,
    "keys_dir": lambda value, where: to_path(value, where, None),
    "enterprise": parse_setting_bool,
    "cache_size": parse_count,
    "cache_ttl": parse_seconds,
    "auto_reload": parse_setting_bool,
    "harden": parse_setting_bool,
}


def describe_value(value: object) -> str:
    """How an error message names a TOML value of the wrong type."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"a {type(value).__name__}"
