"""Acra's data operations on the Redis key store (a real redis-server)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from keyloader_redis import RedisKeyStore

from ..datachecks import DataOperationsChecks, count_unseals

__all__ = ["count_unseals"]  # a fixture the checks use

pytestmark = pytest.mark.integration


class TestDataOnRedis(DataOperationsChecks):
    @pytest.fixture
    def store(self, make_store: Callable[..., RedisKeyStore]) -> RedisKeyStore:
        return make_store()
