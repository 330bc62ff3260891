"""A plugin that claims the provider and store names of kltest-good."""

from __future__ import annotations

from typing import ClassVar, NoReturn

import keyloader
from keyloader.providers import MasterKeyProvider
from keyloader.stores.memory import MemoryKeyStore


class OtherGoodProvider(MasterKeyProvider):
    name: ClassVar[str] = "good-file"
    description: ClassVar[str] = "A second provider named good-file"

    def load(self) -> NoReturn:
        raise NotImplementedError


class OtherGoodStore(MemoryKeyStore):
    name: ClassVar[str] = "good-store"


@keyloader.hookimpl
def keyloader_master_key_providers() -> list[type[MasterKeyProvider]]:
    return [OtherGoodProvider]


@keyloader.hookimpl
def keyloader_key_stores() -> list[type[MemoryKeyStore]]:
    return [OtherGoodStore]
