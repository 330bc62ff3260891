"""Reading small option files (credentials, settings) with checked, content-free errors.

For plugins whose options name a small file: the file must exist, be a regular
file and be at most ``max_size`` bytes; every failure is a
:class:`~keyloader.errors.ConfigError` that names the file (``what``), says what
it must hold (``expected``) and never shows its content. Not for key material:
the ``bytes`` and ``str`` these return cannot be wiped.

This module imports nothing heavy; :func:`read_json_object` imports ``json``
only when called.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ConfigError

__all__ = ["read_json_object", "read_small_file"]


def read_small_file(
    path: Path, what: str, *, max_size: int, expected: str, kind: str = "file"
) -> bytes:
    """The content of the regular file at ``path``, at most ``max_size`` bytes.

    ``what`` names the file in messages (``"AWS KMS credentials file /etc/aws.json"``),
    ``expected`` says what it must hold (``"a JSON object with ..."``) and ``kind``
    what to give instead of a directory (``"JSON file"``). Raises :class:`ConfigError`
    if the file does not exist, is not a regular file, cannot be read or is larger.
    """
    if not path.exists():
        raise ConfigError(f"{what} does not exist: create it ({expected}), or fix the path")
    if not path.is_file():
        raise ConfigError(f"{what} is not a regular file: give the path of the {kind}")
    try:
        with path.open("rb") as stream:
            data = stream.read(max_size + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what}: {exc.strerror or type(exc).__name__}") from None
    if len(data) > max_size:
        raise ConfigError(f"{what} is larger than {max_size} bytes: it must be {expected}")
    return data


def read_json_object(
    path: Path, what: str, *, max_size: int, expected: str
) -> list[tuple[str, object]]:
    """The top-level fields of the JSON object in ``path``: (name, value) pairs in file order.

    Repeated names are kept, so a caller can refuse them (or build a ``dict``, where
    the last one wins, as :func:`json.loads` does). Values are what
    :func:`json.loads` gives; nested objects are ``dict``. Raises :class:`ConfigError`
    for the failures of :func:`read_small_file`, text that is not UTF-8 or not JSON
    (the message gives the parser's reason, line and column, never the content), and
    JSON that is not an object.
    """
    data = read_small_file(path, what, max_size=max_size, expected=expected, kind="JSON file")
    import json  # here: `import keyloader` and the CLI start-up must not pay for it

    try:
        parsed = json.loads(data.decode("utf-8"), object_pairs_hook=_Object)
    except UnicodeDecodeError:
        raise ConfigError(f"{what} is not UTF-8 text: it must be {expected}") from None
    except json.JSONDecodeError as exc:
        # msg/lineno/colno only: str(exc) holds no content either, but say exactly what is shown
        raise ConfigError(
            f"{what} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}): "
            f"it must be {expected}"
        ) from None
    if not isinstance(parsed, _Object):
        raise ConfigError(f"{what} does not hold a JSON object: it must be {expected}")
    return parsed.pairs


class _Object(dict[str, object]):
    """A parsed JSON object: a ``dict`` that also keeps its pairs in order, repeats included."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[str, object]]) -> None:
        super().__init__(pairs)
        self.pairs = pairs
