"""Watching imports and network use, for the placeholder conformance suite.

A placeholder must list, document and validate its options without importing
its provider's SDK or contacting anything. :func:`watch` records (and refuses)
imports of forbidden modules and the network audit events of this thread;
:data:`PROBE` does the same for a fresh interpreter that imports the plugin.
"""

from __future__ import annotations

import importlib.abc
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

__all__ = ["NETWORK_EVENTS", "PROBE", "Seen", "watch"]

NETWORK_EVENTS = ("socket.", "http.client.", "urllib.")
"""Audit events that mean network use."""


@dataclass
class Seen:
    thread: int
    forbidden: frozenset[str]
    imports: list[str] = field(default_factory=list)
    network: list[str] = field(default_factory=list)


class _Blocker(importlib.abc.MetaPathFinder):
    """Records and refuses imports of forbidden top-level modules."""

    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname.split(".")[0] in self.seen.forbidden:
            self.seen.imports.append(fullname)
            raise ModuleNotFoundError(f"{fullname} is forbidden here", name=fullname)


_watchers: list[Seen] = []
_hook_installed = False


def _audit(event: str, args: tuple[object, ...]) -> None:
    if _watchers and event.startswith(NETWORK_EVENTS):
        thread = threading.get_ident()
        for seen in _watchers:
            if seen.thread == thread:
                seen.network.append(event)


@contextmanager
def watch(forbidden: Sequence[str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Seen]:
    """Record forbidden imports (hidden from ``sys.modules`` meanwhile) and network events.

    The audit hook is added once per process (hooks cannot be removed) and only
    records events of this thread while a watch is open.
    """
    global _hook_installed
    if not _hook_installed:
        sys.addaudithook(_audit)
        _hook_installed = True
    seen = Seen(threading.get_ident(), frozenset(forbidden))
    with monkeypatch.context() as patch:
        for name in [m for m in sys.modules if m.split(".")[0] in seen.forbidden]:
            patch.delitem(sys.modules, name)
        patch.setattr(sys, "meta_path", [_Blocker(seen), *sys.meta_path])
        _watchers.append(seen)
        try:
            yield seen
        finally:
            _watchers.remove(seen)
            seen.imports += [m for m in sys.modules if m.split(".")[0] in seen.forbidden]


PROBE = f"""
import importlib, json, sys
network = []
sys.addaudithook(
    lambda event, args: network.append(event) if event.startswith({NETWORK_EVENTS!r}) else None
)
plugin = importlib.import_module(sys.argv[1])
from keyloader.api import load_master_key
from keyloader.errors import KeyloaderError
from keyloader.plugins import make_plugin_manager
pm = make_plugin_manager(autoload=False, env={{}}, plugins=[plugin])
for enterprise in (False, True):
    pm.provider_infos(enterprise=enterprise)
    try:
        load_master_key(plugin_manager=pm, provider=sys.argv[2], enterprise=enterprise)
    except KeyloaderError:
        pass
forbidden = set(sys.argv[3].split(","))
imported = sorted(m for m in sys.modules if m.split(".")[0] in forbidden)
print(json.dumps({{"imported": imported, "network": network}}))
"""
