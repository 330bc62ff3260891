"""Package names that load on first access (PEP 562), for packages imported on every run.

The core imports each plugin's package to register it, and ``keyloader`` itself
on every CLI run, so their ``__init__`` must cost next to nothing::

    from typing import TYPE_CHECKING

    from keyloader.lazy import lazy_exports

    if TYPE_CHECKING:  # what type checkers and IDEs see
        from .store import RedisKeyStore

    __getattr__, __dir__ = lazy_exports(__name__, {"RedisKeyStore": ".store"})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, names: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of ``package``.

    ``names`` maps each lazy name to the module that defines it, relative to
    ``package`` (``".store"``) or absolute. A name is imported on first access
    and then kept in the package's namespace, so later accesses cost nothing.
    """
    table = dict(names)

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        imported = importlib.import_module(module, package)
        # a submodule exported under its own name (keyloader.aio) is the module itself
        value = imported if imported.__name__ == f"{package}.{name}" else getattr(imported, name)
        vars(sys.modules[package])[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *table})

    return __getattr__, __dir__
