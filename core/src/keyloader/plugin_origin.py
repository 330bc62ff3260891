"""Where a registered plugin came from: its entry point and distribution."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._entry_points import FoundEntryPoint

__all__ = ["Origin"]


class Origin:
    """The entry point (None for plugins registered explicitly) and distribution of a plugin.

    An entry point's distribution name and version are read from its metadata
    only when something shows them (a listing, an error), not on every load.
    """

    __slots__ = ("_distribution", "_found", "_version", "entry_point")

    def __init__(
        self,
        entry_point: str | None,
        distribution: str | None = None,
        version: str | None = None,
        *,
        found: FoundEntryPoint | None = None,
    ) -> None:
        self.entry_point = entry_point
        self._distribution = distribution
        self._version = version
        self._found = found

    @property
    def distribution(self) -> str | None:
        self._read_dist()
        return self._distribution

    @property
    def version(self) -> str | None:
        self._read_dist()
        return self._version

    def _read_dist(self) -> None:
        found, self._found = self._found, None
        if found is not None:
            self._distribution, self._version = found.distribution()


UNKNOWN = Origin(None)
"""The origin of a plugin registered without one."""
