"""The vault provider against a three-node OpenBao raft cluster (tests/vault/cluster.py, one
per module): loads through every node, a store on one node then a load on another (the
``X-Vault-Index`` of the write sent back), and the active node stopped (SIGSTOP) or killed
(SIGKILL) in the middle of a stream of loads."""

from __future__ import annotations

import base64
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keyloader.errors import KeyloaderError
from keyloader.masterkey import generate_master_key
from keyloader_vault import VaultProvider

from .cluster import Cluster, start_cluster

TIMEOUT = 10.0
ATTEMPT = 1.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    started = start_cluster(tmp_path_factory.mktemp("raft"))
    try:
        yield started
    finally:
        started.stop()


def _provider(cluster: Cluster, address: str, path: str, **options: Any) -> VaultProvider:
    return VaultProvider(
        {
            "address": address,
            "token": cluster.token,
            "secrets_path": path,
            "kv_version": "2",
            "timeout": TIMEOUT,
            "attempt_timeout": ATTEMPT,
            **options,
        }
    )


def _put(cluster: Cluster, name: str) -> bytes:
    """A new key at ``secret/<name>``, once every running node serves it."""
    with generate_master_key() as key, key.to_text() as text:
        cluster.admin(
            "POST", f"secret/data/{name}", data={"acra_master_key": text.bytes().decode()}
        )
        cluster.wait_readable(f"secret/data/{name}")
        return key.encryption.bytes()


def test_every_node_serves_loads(cluster: Cluster) -> None:
    raw = _put(cluster, "every-node")
    assert len(cluster.standbys()) == 2
    for node in cluster.nodes:
        provider = _provider(cluster, node.address, "secret/every-node")
        try:
            with provider.load() as loaded:
                assert loaded.encryption.bytes() == raw, node.name
        finally:
            provider.close()


def test_a_store_on_one_node_is_what_a_load_on_another_reads(cluster: Cluster) -> None:
    """The provider sends back the X-Vault-Index of its write: a standby that has not
    applied it yet answers 412 and another node is asked, never the old key."""
    _put(cluster, "store-then-load")
    first, second = cluster.standbys()
    address = f"{first.address},{second.address}"
    provider = _provider(cluster, address, "secret/store-then-load")
    stale = 0
    try:
        for _ in range(20):
            with generate_master_key() as key:
                provider.store(key, force=True)
                provider._connect().adapter.preferred = 1  # the load goes to the other standby
                with provider.load() as loaded:
                    stale += loaded != key
    finally:
        provider.close()
    assert stale == 0


def _stream(provider: VaultProvider, seconds: float) -> list[tuple[float, bool]]:
    """Loads one after another for ``seconds``: (duration, ok) of each."""
    results = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        try:
            provider.load().close()
            ok = True
        except KeyloaderError:
            ok = False
        results.append((time.monotonic() - started, ok))
        time.sleep(0.05)
    return results


def test_a_stopped_active_node_costs_one_attempt_timeout(cluster: Cluster) -> None:
    _put(cluster, "sigstop")
    active = cluster.active()
    others = [node for node in cluster.nodes if node is not active]
    address = ",".join(node.address for node in [active, *others])  # the active node first
    provider = _provider(cluster, address, "secret/sigstop")
    try:
        provider.load().close()
        active.signal(signal.SIGSTOP)
        try:
            results = _stream(provider, 6.0)
        finally:
            active.signal(signal.SIGCONT)
    finally:
        provider.close()
    assert results, "no load ran"
    assert all(duration < TIMEOUT for duration, _ in results)  # none took the deadline
    assert sum(ok for _, ok in results) >= len(results) - 2, results  # an election may fail one
    assert max(duration for duration, _ in results) < 3 * ATTEMPT + 2, results


def test_a_killed_active_node_is_left_for_a_healthy_one(cluster: Cluster, tmp_path: Path) -> None:
    _put(cluster, "sigkill")
    active = cluster.active()
    others = [node for node in cluster.nodes if node is not active]
    address = ",".join(node.address for node in [active, *others])
    provider = _provider(cluster, address, "secret/sigkill")
    try:
        provider.load().close()
        killed_at = time.monotonic()
        active.signal(signal.SIGKILL)
        recovered = None
        while time.monotonic() - killed_at < 30:
            try:
                provider.load().close()
            except KeyloaderError:
                continue
            recovered = time.monotonic() - killed_at
            break
    finally:
        provider.close()
        cluster.restart(active)  # the cluster whole again, whatever test runs next
    assert recovered is not None, "no load succeeded after the active node was killed"
    print(f"first successful load {recovered:.2f} s after SIGKILL of the active node")
    (tmp_path / "recovered").write_text(base64.b64encode(str(recovered).encode()).decode())
