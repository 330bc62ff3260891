"""Probes on every keyloader hook: a tryfirst and a trylast implementation, and one
wrapper of each style, recording what runs and what each wrapper sees.

``CALLS`` collects ``(hook, what)`` pairs; with ``KLTEST_PROBES_LOG`` set, each pair
is also appended to that file (for tests that run the CLI in a subprocess).
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any, ClassVar, NoReturn

import keyloader
from keyloader.providers import MasterKeyProvider
from keyloader.stores.memory import MemoryKeyStore

CALLS: list[tuple[str, str]] = []


def record(hook: str, what: str) -> None:
    CALLS.append((hook, what))
    log = os.environ.get("KLTEST_PROBES_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as stream:
            stream.write(f"{hook}\t{what}\n")


class _Provider(MasterKeyProvider):
    description: ClassVar[str] = "Probe provider without a key"

    def load(self) -> NoReturn:
        raise keyloader.MasterKeyNotFoundError("probe providers have no key")


class ProbeFirstProvider(_Provider):
    name: ClassVar[str] = "probe-first"


class ProbeLastProvider(_Provider):
    name: ClassVar[str] = "probe-last"


class ProbeFirstStore(MemoryKeyStore):
    name: ClassVar[str] = "probe-first"


class ProbeLastStore(MemoryKeyStore):
    name: ClassVar[str] = "probe-last"


def seen(result: Any) -> str:
    """What a wrapper saw: class names for listings, else the value's repr."""
    if result and isinstance(result, list) and all(isinstance(r, list) for r in result):
        return ",".join(cls.name for r in result for cls in r)
    return repr(result)


def _new_style(hook: str) -> Generator[None, Any, Any]:
    record(hook, "wrapper before")
    result = yield
    record(hook, f"wrapper saw {seen(result)}")
    return result


def _old_style(hook: str) -> Generator[None, Any, None]:
    record(hook, "hookwrapper before")
    outcome = yield
    record(hook, f"hookwrapper saw {seen(outcome.get_result())}")


def _add_command(app: Any, name: str) -> None:
    @app.command(name)
    def command() -> None:
        """A probe command."""
        print(name)


PROVIDERS = "keyloader_master_key_providers"
STORES = "keyloader_key_stores"
CLI = "keyloader_cli_commands"
AUDIT = "keyloader_audit_event"


@keyloader.hookimpl(specname=PROVIDERS, tryfirst=True)
def providers_first() -> list[type[MasterKeyProvider]]:
    record(PROVIDERS, "first")
    return [ProbeFirstProvider]


@keyloader.hookimpl(specname=PROVIDERS, trylast=True)
def providers_last() -> list[type[MasterKeyProvider]]:
    record(PROVIDERS, "last")
    return [ProbeLastProvider]


@keyloader.hookimpl(specname=PROVIDERS, wrapper=True)
def providers_wrapper() -> Generator[None, Any, Any]:
    return (yield from _new_style(PROVIDERS))


@keyloader.hookimpl(specname=PROVIDERS, hookwrapper=True)
def providers_hookwrapper() -> Generator[None, Any, None]:
    yield from _old_style(PROVIDERS)


@keyloader.hookimpl(specname=STORES, tryfirst=True)
def stores_first() -> list[type[MemoryKeyStore]]:
    record(STORES, "first")
    return [ProbeFirstStore]


@keyloader.hookimpl(specname=STORES, trylast=True)
def stores_last() -> list[type[MemoryKeyStore]]:
    record(STORES, "last")
    return [ProbeLastStore]


@keyloader.hookimpl(specname=STORES, wrapper=True)
def stores_wrapper() -> Generator[None, Any, Any]:
    return (yield from _new_style(STORES))


@keyloader.hookimpl(specname=STORES, hookwrapper=True)
def stores_hookwrapper() -> Generator[None, Any, None]:
    yield from _old_style(STORES)


@keyloader.hookimpl(specname=CLI, tryfirst=True)
def cli_first(app: Any) -> None:
    record(CLI, "first")
    _add_command(app, "probe-first")


@keyloader.hookimpl(specname=CLI, trylast=True)
def cli_last(app: Any) -> None:
    record(CLI, "last")
    _add_command(app, "probe-last")


@keyloader.hookimpl(specname=CLI, wrapper=True)
def cli_wrapper(app: Any) -> Generator[None, Any, Any]:
    return (yield from _new_style(CLI))


@keyloader.hookimpl(specname=CLI, hookwrapper=True)
def cli_hookwrapper(app: Any) -> Generator[None, Any, None]:
    yield from _old_style(CLI)


@keyloader.hookimpl(specname=AUDIT, tryfirst=True)
def audit_first(event: Any) -> None:
    record(AUDIT, f"first {event.action}")


@keyloader.hookimpl(specname=AUDIT, trylast=True)
def audit_last(event: Any) -> None:
    record(AUDIT, f"last {event.action}")


@keyloader.hookimpl(specname=AUDIT, wrapper=True)
def audit_wrapper(event: Any) -> Generator[None, Any, Any]:
    return (yield from _new_style(AUDIT))


@keyloader.hookimpl(specname=AUDIT, hookwrapper=True)
def audit_hookwrapper(event: Any) -> Generator[None, Any, None]:
    yield from _old_style(AUDIT)
