"""A working plugin: one provider (with an alias), one store, one audit observer."""

from __future__ import annotations

from typing import Any, ClassVar, NoReturn

import keyloader
from keyloader.errors import ProviderUnavailableError
from keyloader.providers import MasterKeyProvider, Option
from keyloader.stores.memory import MemoryKeyStore

EVENTS: list[Any] = []
"""Every audit event this plugin observed (tests clear it)."""


class GoodProvider(MasterKeyProvider):
    """A provider the tests look up; it never has a key."""

    name: ClassVar[str] = "good-file"
    description: ClassVar[str] = "Test provider of the kltest-good distribution"
    options: ClassVar[tuple[Option, ...]] = (Option("path", "Where the key would be."),)
    aliases: ClassVar[tuple[str, ...]] = ("goodie",)

    def load(self) -> NoReturn:
        raise ProviderUnavailableError("provider 'good-file' is a test provider without a key")


class GoodStore(MemoryKeyStore):
    """The memory store under another name."""

    name: ClassVar[str] = "good-store"


@keyloader.hookimpl
def keyloader_master_key_providers() -> list[type[MasterKeyProvider]]:
    return [GoodProvider]


@keyloader.hookimpl
def keyloader_key_stores() -> list[type[MemoryKeyStore]]:
    return [GoodStore]


@keyloader.hookimpl
def keyloader_audit_event(event: Any) -> None:
    EVENTS.append(event)
