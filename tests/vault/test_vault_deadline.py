"""The documented deadline holds against slow servers (loopback servers written for the test).

docs/vault.md: ``timeout`` bounds a whole load, retries included. One server accepts and
never answers; the other sends its headers, then one byte at a time, slowly: requests'
per-read timeout alone would never fire against it.
"""

from __future__ import annotations

import time

import pytest

from keyloader.errors import ProviderUnavailableError
from keyloader_vault import VaultProvider

from ..slow_servers import dripping_server, silent_server

__all__ = ["dripping_server", "silent_server"]  # fixtures used by name below


@pytest.mark.parametrize("server", ["silent_server", "dripping_server"])
@pytest.mark.parametrize("kv_version", ["auto", "2"])
def test_a_load_fails_cleanly_within_the_timeout(
    request: pytest.FixtureRequest, server: str, kv_version: str
) -> None:
    address = request.getfixturevalue(server)
    provider = VaultProvider(
        {
            "address": address,
            "token": "t",
            "secrets_path": "secret/acra",
            "kv_version": kv_version,
            "timeout": 1.5,
            "retries": 2,
        }
    )
    started = time.monotonic()
    try:
        with pytest.raises(ProviderUnavailableError, match=r"1\.5"):
            provider.load()
    finally:
        provider.close()
    elapsed = time.monotonic() - started
    assert elapsed < 4, f"the 1.5 s deadline took {elapsed:.1f} s"


def test_a_timeout_names_the_node_and_the_time_not_urllib3(silent_server: str) -> None:
    provider = VaultProvider(
        {"address": silent_server, "token": "t", "secrets_path": "secret/root/acra"}
        | {"timeout": 1.0, "retries": 0, "kv_version": "2"}
    )
    try:
        with pytest.raises(ProviderUnavailableError) as caught:
            provider.load()
        error = caught.value
    finally:
        provider.close()
    message = str(error)
    assert f"no answer from Vault at {silent_server} within the 1 s timeout" in message
    assert "read timed out" in message
    assert "HTTPConnectionPool" not in message
    assert "<redac" not in message
