"""The vault provider passes ``MasterKeyProviderContract`` against a real OpenBao server."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from keyloader.masterkey import MasterKey, generate_master_key
from keyloader.providers import MasterKeyProvider
from keyloader.testing import MasterKeyProviderContract
from keyloader_vault import VaultProvider

from ..keytext import text_of


class TestVaultProvider(MasterKeyProviderContract):
    @pytest.fixture(params=["v1", "v2"])
    def expected_key(self, request: pytest.FixtureRequest) -> Iterator[MasterKey]:
        with generate_master_key(request.param) as key:
            yield key

    @pytest.fixture
    def provider_class(self) -> type[MasterKeyProvider]:
        return VaultProvider

    @pytest.fixture(params=["auto", "2"])
    def make_provider(
        self, bao: Any, expected_key: MasterKey, request: pytest.FixtureRequest
    ) -> Callable[..., MasterKeyProvider]:
        name = f"contract-{uuid.uuid4().hex[:12]}"
        bao.admin().secrets.kv.v2.create_or_update_secret(
            path=name, secret={"acra_master_key": text_of(expected_key)}, mount_point="secret"
        )

        def make(**options: Any) -> MasterKeyProvider:
            config = {
                "address": bao.address,
                "token": bao.token,
                "secrets_path": f"secret/{name}",
                "kv_version": request.param,
                "keystore_version": "auto",
            }
            return VaultProvider({**config, **options})

        return make

    @pytest.fixture
    def broken_provider(self, bao: Any) -> MasterKeyProvider:
        return VaultProvider(
            {
                "address": bao.address,
                "token": bao.token,
                "secrets_path": f"secret/missing-{uuid.uuid4().hex[:12]}",
            }
        )
