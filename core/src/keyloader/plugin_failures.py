"""The failure log of a plugin manager: which plugins failed, where, and why.

A plugin fails when its entry point does not load, register or pass
``check_pending`` (a *load* failure: it never got registered), or when one of
its hook implementations raises (recorded by the guards of
:mod:`keyloader.hook_guards`). Failures are kept in order; each registered
plugin's first error is its status in ``keyloader plugins``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._plugin_records import PluginFailure
    from .plugin_origin import Origin

__all__ = ["FailureLog", "describe_exception"]


class FailureLog:
    """Every plugin failure of one plugin manager."""

    def __init__(self) -> None:
        self.all: list[PluginFailure] = []
        self.load: list[PluginFailure] = []  # plugins that never got registered
        self._first_error: dict[str, str] = {}  # registered plugin name -> its first error
        self._lost_providers: set[str] = set()  # plugins whose provider hook failed

    def loading_failed(
        self, entry_point: str, distribution: str | None, version: str | None, exc: Exception
    ) -> PluginFailure:
        """Record an entry point that could not be loaded or registered."""
        from ._plugin_records import PluginFailure

        failure = PluginFailure(entry_point, distribution, version, describe_exception(exc))
        self.all.append(failure)
        self.load.append(failure)
        return failure

    def hook_failed(
        self, plugin: str, origin: Origin, exc: Exception, *, providers_lost: bool = False
    ) -> PluginFailure:
        """Record a hook implementation of the registered ``plugin`` that raised."""
        from ._plugin_records import PluginFailure

        failure = PluginFailure(
            origin.entry_point or plugin,
            origin.distribution,
            origin.version,
            describe_exception(exc),
        )
        self.all.append(failure)
        self._first_error.setdefault(plugin, failure.error)
        if providers_lost:
            self._lost_providers.add(failure.entry_point)
        return failure

    def error(self, plugin: str) -> str | None:
        """The first error recorded against the registered ``plugin``."""
        return self._first_error.get(plugin)

    def forget(self, plugin: str) -> None:
        """Drop a plugin's status when it is unregistered (its failures stay in the log)."""
        self._first_error.pop(plugin, None)
        self._lost_providers.discard(plugin)

    def provider_failures(self) -> list[PluginFailure]:
        """Failures of plugins whose providers are missing: not loaded, or their hook raised."""
        failed = [*self.load, *(f for f in self.all if f.entry_point in self._lost_providers)]
        unique: dict[str, PluginFailure] = {}
        for failure in failed:
            unique.setdefault(failure.entry_point, failure)
        return list(unique.values())


def describe_exception(exc: BaseException) -> str:
    """``"ExcType: message"`` (just the type when the message is empty)."""
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
