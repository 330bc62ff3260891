"""The ``redis`` store on a real Redis Cluster (three masters on loopback).

One keystore sits in one hash slot (a hash tag in ``keys_dir``), so the Lua
scripts and batches stay atomic. Options, the contract suite, the CLI, and reads
that go on while the keystore's slot migrates to another node (ASK, then MOVED).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis.cluster import key_slot

from keyloader.errors import ConfigError
from keyloader.masterkey import generate_master_key
from keyloader.testing.stores import KeyStoreContract
from keyloader_redis import RedisKeyStore

from .clusters import RedisClusterNodes, start_cluster
from .conftest import manager

KEYLOADER = str(Path(sys.executable).with_name("keyloader"))

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterNodes]:
    nodes = start_cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield nodes
    finally:
        nodes.stop()


@pytest.fixture
def prefix() -> str:
    """A keys dir with its own hash tag: one slot per test."""
    return "{" + f"kl-{uuid.uuid4().hex[:10]}" + "}/.acrakeys"


@pytest.fixture
def make_cluster_store(
    cluster: RedisClusterNodes, prefix: str, open_stores: Callable[..., RedisKeyStore]
) -> Callable[..., RedisKeyStore]:
    base = {"cluster": True, "url": cluster.url, "keys_dir": prefix}
    return functools.partial(open_stores, base)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"cluster": True, "keys_dir": ".acrakeys"}, r"has no hash tag.*\{acrakeys\}"),
        ({"cluster": True, "keys_dir": "{}/.acrakeys"}, "has no hash tag"),
        ({"cluster": True, "keys_dir": "{a}", "db": 2}, "only database 0"),
        ({"cluster": True, "keys_dir": "{a}", "url": "redis://h:1/3"}, "only database 0"),
        ({"cluster": True, "sentinels": "h:1", "service_name": "k"}, "'cluster' and 'sentinels'"),
    ],
)
def test_bad_cluster_options(options: dict[str, object], expected: str) -> None:
    schema = {option.name: option for option in RedisKeyStore.options}
    config = {name: option.default for name, option in schema.items()}
    config.update(options)
    with pytest.raises(ConfigError, match=expected):
        RedisKeyStore(config)


def test_every_key_of_a_keystore_and_its_lock_share_one_slot(
    make_cluster_store: Callable[..., RedisKeyStore], prefix: str
) -> None:
    store = make_cluster_store()
    keys = [store.lock_key, store.redis_key("client1_storage_sym")]
    keys += [
        store.redis_key(".poison_key/poison_key_sym"),
        store.redis_key("a", "2024-01-01T00:00:00"),
    ]
    assert len({key_slot(key.encode()) for key in keys}) == 1
    assert store.location.startswith("redis+cluster://")


class TestClusterKeyStoreContract(KeyStoreContract):
    @pytest.fixture
    def store(self, make_cluster_store: Callable[..., RedisKeyStore]) -> RedisKeyStore:
        return make_cluster_store()

    @pytest.fixture
    def reopen_store(
        self, make_cluster_store: Callable[..., RedisKeyStore]
    ) -> Callable[..., RedisKeyStore]:
        return make_cluster_store


def test_cli_keys_on_a_cluster(cluster: RedisClusterNodes, prefix: str, tmp_path: Path) -> None:
    with generate_master_key() as master, master.to_text() as text:
        env = {**os.environ, "ACRA_MASTER_KEY": text.bytes().decode()}
        store = ["--keystore", "redis", "-s", "cluster=true", "-s", f"url={cluster.url}"]
        store += ["--keys-dir", prefix]

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [KEYLOADER, *store, *args],
                capture_output=True,
                text=True,
                env=env,
                cwd=tmp_path,
                timeout=60,
                check=False,
            )

        assert run("keys", "generate", "--client-id", "client1").returncode == 0
        assert run("keys", "rotate", "client/client1/symmetric").returncode == 0
        listed = run("keys", "list", "--rotated", "--check")
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.count("client/client1/symmetric") == 2
        assert "false" not in listed.stdout.split()


def test_reads_go_on_while_the_slot_migrates(
    cluster: RedisClusterNodes, make_cluster_store: Callable[..., RedisKeyStore], prefix: str
) -> None:
    store = make_cluster_store()
    with generate_master_key() as master, manager(store, master) as keys:
        kids = keys.generate(["symmetric", "searchable"], client_id="client1")
        for n in range(20):
            keys.generate(["symmetric"], client_id=f"client{n:03d}x")
        values = {}
        for kid in kids:
            with keys.use(kid) as key:
                values[str(kid)] = key.bytes()
        slot = key_slot(store.lock_key.encode())
        source = cluster.owner(slot)
        target = next(port for port in cluster.ports if port != source)
        stop = threading.Event()
        errors: list[BaseException] = []
        reads = [0]

        def read_forever() -> None:
            reader = manager(make_cluster_store(cache_size=0), master)
            with reader:
                while not stop.is_set():
                    for kid, value in values.items():
                        try:
                            with reader.use(kid) as key:
                                assert key.bytes() == value
                        except BaseException as exc:
                            errors.append(exc)
                            return
                        reads[0] += 1

        thread = threading.Thread(target=read_forever)
        thread.start()
        try:
            cluster.migrate_slot(slot, target)
        finally:
            stop.set()
            thread.join(30)
        assert errors == [], errors[:1]
        assert reads[0] > 20
        assert cluster.owner(slot) == target
        keys.rotate(kids[0])  # writes follow the slot to its new node
        assert all(result.ok for result in keys.verify())
