"""Find the ``keyloader`` entry points without importing ``importlib.metadata``.

``importlib.metadata`` costs about 10 ms to import (mostly its ``email``
import), more than the rest of a ``keyloader master-key check``. Finding entry
points needs much less: list the ``*.dist-info`` / ``*.egg-info`` directories
of each ``sys.path`` directory and read their ``entry_points.txt``, with the
rules ``importlib.metadata.entry_points(group=...)`` applies:

- ``sys.path`` in order; the first distribution with a given normalized name
  wins (a later copy of the same distribution is ignored);
- blank lines and ``#`` comments skipped, ``[group]`` headers, ``name = value``;
- the value is ``module[:attr.attr] [extras]``; loading imports ``module`` and
  follows the attributes.

When something on the machine could add distributions another way (a
``sys.path`` entry that is a zip file or an ``.egg``, or a ``sys.meta_path`` finder other
than the standard one that implements ``find_distributions``), this module
falls back to ``importlib.metadata``. The distribution's name and version are
read (with ``importlib.metadata``) only when a listing or an error shows them.
"""

from __future__ import annotations

import os
import sys
from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.metadata import Distribution

_METADATA_DIRS = (".dist-info", ".egg-info")


class FoundEntryPoint:
    """One entry point: its name, its ``module:attr`` value and where its distribution lives."""

    __slots__ = ("_dist", "_dist_path", "name", "value")

    def __init__(
        self,
        name: str,
        value: str,
        *,
        dist_path: str | None = None,
        dist: Distribution | None = None,
    ) -> None:
        self.name = name
        self.value = value
        self._dist_path = dist_path
        self._dist = dist

    def __repr__(self) -> str:
        return f"FoundEntryPoint(name={self.name!r}, value={self.value!r})"

    def load(self) -> object:
        """Import the module and follow the attributes (``ValueError`` if malformed)."""
        module_name, attrs = parse_value(self.value)
        target: object = import_module(module_name)
        for attr in attrs:
            target = getattr(target, attr)
        return target

    def distribution(self) -> tuple[str | None, str | None]:
        """The distribution's ``(name, version)``; ``(None, None)`` when unreadable."""
        dist = self._dist
        if dist is None and self._dist_path is not None:
            from importlib.metadata import PathDistribution
            from pathlib import Path

            dist = PathDistribution(Path(self._dist_path))
        if dist is None:
            return None, None
        try:
            return dist.name, dist.version
        except Exception:  # a damaged METADATA file must not break a listing
            return None, None


def parse_value(value: str) -> tuple[str, tuple[str, ...]]:
    """Split ``module[:attr.attr] [extras]`` into the module name and the attribute path."""
    text = value.split("[", 1)[0].strip()
    module_name, _, attr_path = text.partition(":")
    module_name = module_name.strip()
    attrs = tuple(part.strip() for part in attr_path.split(".")) if attr_path.strip() else ()
    names = [*module_name.split("."), *attrs]
    if not module_name or not all(name.isidentifier() for name in names):
        raise ValueError(f"malformed entry point value {value!r} (expected module:attr)")
    return module_name, attrs


def find_entry_points(group: str) -> list[FoundEntryPoint]:
    """Every entry point of ``group``, in the order ``importlib.metadata`` gives them."""
    if not _fast_path_applies():
        return _from_importlib_metadata(group)
    found: list[FoundEntryPoint] = []
    seen: set[str] = set()
    for root in sys.path:
        for dist_path in _metadata_dirs(root):
            normalized = normalize_name(_name_from_dir(os.path.basename(dist_path)))
            if normalized in seen:
                continue
            seen.add(normalized)
            text = _read_text(os.path.join(dist_path, "entry_points.txt"))
            if text is not None:
                found.extend(
                    FoundEntryPoint(name, value, dist_path=dist_path)
                    for name, value in parse_entry_points(text, group)
                )
    return found


def parse_entry_points(text: str, group: str) -> list[tuple[str, str]]:
    """The ``(name, value)`` pairs of ``[group]`` in an ``entry_points.txt`` text."""
    pairs: list[tuple[str, str]] = []
    section: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line.strip("[]")
            continue
        if section == group:
            name, _, value = line.partition("=")
            pairs.append((name.strip(), value.strip()))
    return pairs


def normalize_name(name: str) -> str:
    """PEP 503 normalization with underscores, as ``importlib.metadata`` compares names."""
    out: list[str] = []
    for char in name.lower():
        if char in "-_.":
            if not out or out[-1] != "_":
                out.append("_")
        else:
            out.append(char)
    return "".join(out)


def _name_from_dir(dirname: str) -> str:
    """``Foo_Bar-1.0.dist-info`` -> ``Foo_Bar`` (the stem before the first dash)."""
    return dirname.rpartition(".")[0].partition("-")[0]


def _metadata_dirs(root: str) -> list[str]:
    """The metadata directories directly under ``root``, in ``os.listdir`` order."""
    try:
        children = os.listdir(root or ".")
    except OSError:
        return []
    return [
        os.path.join(root, child) for child in children if child.lower().endswith(_METADATA_DIRS)
    ]


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return None


def _fast_path_applies() -> bool:
    """True when plain ``sys.path`` directories are the only source of distributions."""
    from importlib.machinery import PathFinder

    for finder in sys.meta_path:
        if finder is not PathFinder and hasattr(finder, "find_distributions"):
            return False
    return not any(
        entry and (entry.lower().endswith(".egg") or os.path.isfile(entry)) for entry in sys.path
    )


def _from_importlib_metadata(group: str) -> list[FoundEntryPoint]:
    from importlib.metadata import entry_points

    return [
        FoundEntryPoint(entry_point.name, entry_point.value, dist=entry_point.dist)
        for entry_point in entry_points(group=group)
    ]
