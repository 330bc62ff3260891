"""Several nodes in ``address``: a hung node costs one ``attempt_timeout``, a refusing or
sealed one nothing much, the node that answered is asked first next time, and a stopped
node in the middle of a stream of loads fails none of them (dev servers and loopback
stand-ins; the raft cluster is tests/vault/test_vault_cluster.py)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from keyloader.errors import ProviderUnavailableError
from keyloader.masterkey import MasterKey
from keyloader_vault import VaultProvider

from ..keytext import text_of
from ..servers import LOOPBACK, free_port
from ..slow_servers import silent_server
from .test_vault_load import put_v2, unique

__all__ = ["silent_server"]  # a fixture, used by name below


@pytest.fixture
def stored(bao: Any, key: MasterKey) -> str:
    name = unique()
    put_v2(bao, name, {"acra_master_key": text_of(key)})
    return f"secret/{name}"


class Requests:
    """The URL of every answer the provider's session got."""

    def __init__(self, provider: VaultProvider) -> None:
        self.urls: list[str] = []
        provider.http_session().hooks["response"].append(self._record)

    def _record(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.urls.append(response.request.url or "")


def test_a_hung_node_costs_one_attempt_timeout_and_is_not_asked_first_again(
    bao: Any, key: MasterKey, stored: str, silent_server: str
) -> None:
    options = {"token": bao.token, "secrets_path": stored, "kv_version": "2"}
    provider = VaultProvider(
        {"address": f"{silent_server},{bao.address}", "attempt_timeout": 0.5, **options}
    )
    seen = Requests(provider)
    try:
        started = time.monotonic()
        with provider.load() as loaded:
            assert loaded == key
        first = time.monotonic() - started
        started = time.monotonic()
        with provider.load() as loaded:
            assert loaded == key
        second = time.monotonic() - started
    finally:
        provider.close()
    assert 0.5 <= first < 3, first  # one attempt timed out at the hung node, then the next
    assert second < 0.5, second  # the node that answered is asked first
    assert all(url.startswith(bao.address) for url in seen.urls)


def test_refused_and_sealed_nodes_are_passed_over(
    bao: Any, key: MasterKey, stored: str, start_own_bao: Any
) -> None:
    sealed = start_own_bao()
    sealed.admin().sys.seal()
    refused = f"http://{LOOPBACK}:{free_port()}"
    address = f"{refused},{sealed.address},{bao.address}"
    provider = VaultProvider({"address": address, "token": bao.token, "secrets_path": stored})
    try:
        with provider.load() as loaded:
            assert loaded == key
    finally:
        provider.close()


def test_when_every_node_fails_the_message_names_the_last_one(silent_server: str) -> None:
    refused = f"http://{LOOPBACK}:{free_port()}"
    provider = VaultProvider(
        {
            "address": f"{refused},{silent_server}",
            "token": "hvs.a-real-looking-token",
            "secrets_path": "secret/acra",
            "kv_version": "2",
            "attempt_timeout": 0.3,
            "retries": 1,
        }
    )
    started = time.monotonic()
    try:
        with pytest.raises(ProviderUnavailableError) as caught:
            provider.load()
    finally:
        provider.close()
    assert time.monotonic() - started < 3
    message = str(caught.value)
    assert f"from {silent_server}" in message
    assert "each given 0.3 s" in message
    assert "4 attempts" in message
    assert "attempt_timeout" in message
