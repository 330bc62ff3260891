"""The ``redis`` store passes the core's ``KeyStoreContract`` against a real redis-server."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from keyloader.testing.stores import KeyStoreContract
from keyloader_redis import RedisKeyStore


class TestRedisKeyStoreContract(KeyStoreContract):
    @pytest.fixture
    def store(self, make_store: Callable[..., RedisKeyStore]) -> RedisKeyStore:
        return make_store()

    @pytest.fixture
    def reopen_store(
        self, make_store: Callable[..., RedisKeyStore]
    ) -> Callable[..., RedisKeyStore]:
        return make_store
