"""Acra keystore v2 in Redis: Acra's own Redis dump read with the manifest's keys, keys
generated, rotated, destroyed and rewrapped in Acra's layout, and Acra's ``.lock`` shared."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from keyloader.api import open_keystore
from keyloader.errors import KeyloaderError, KeyStoreError
from keyloader.keyrings import format as rings_format
from keyloader.keyrings.backend import VERSION_TEXT
from keyloader.keyrings.engine import RingKeyManager
from keyloader.keyrings.rewrap import rewrap_rings
from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader.secret import SecretBytes
from keyloader.testing import RingBackendContract
from keyloader_redis import RedisKeyStore
from keyloader_redis.rings import RedisRings

from ..acrav2 import FIXTURES
from .conftest import RedisServer

DUMP = json.loads((FIXTURES / "redis" / "dump.json").read_text())
REDIS_MANIFEST = json.loads((FIXTURES / "redis" / "manifest.json").read_text())
ACRA_ROOT = ".acrakeys-v2"


def _pair() -> MasterKey:
    keys = REDIS_MANIFEST["master_keys"]["v2"]
    return MasterKey(
        SecretBytes(base64.b64decode(keys["encryption"])),
        SecretBytes(base64.b64decode(keys["signature"])),
    )


def _load_acras_dump(server: RedisServer, prefix: str) -> None:
    """Acra's v2 keys, as its Redis backend wrote them, moved under ``prefix``."""
    client = server.client()
    for key, entry in DUMP.items():
        if key.startswith(ACRA_ROOT + "/"):
            client.set(prefix + key[len(ACRA_ROOT) :], entry["value"])


def _open(server: RedisServer, prefix: str, **options: Any) -> RingKeyManager:
    store = RedisKeyStore({"url": server.url, "keys_dir": prefix, **options})
    rings = store.key_rings()
    assert rings is not None
    return RingKeyManager(rings, _pair())


@pytest.fixture
def acra_store(redis_server: RedisServer, prefix: str) -> Iterator[RingKeyManager]:
    _load_acras_dump(redis_server, prefix)
    with _open(redis_server, prefix) as manager:
        yield manager


def test_acras_redis_keystore_reads_back_with_the_manifests_keys(
    acra_store: RingKeyManager,
) -> None:
    described = {ring["path"]: ring for ring in REDIS_MANIFEST["v2"]["redis"]["v2"]["key_rings"]}
    assert sorted(acra_store.store.list()) == sorted(described)
    symmetric = [key["symmetric_key"] for key in described["client/client1/storage-sym"]["keys"]]
    with acra_store.read("client/client1/symmetric") as key:  # current: seqnum 2
        assert base64.b64encode(key.bytes()).decode() == symmetric[1]
    with acra_store.read("client/client1/symmetric", 2) as key:  # the rotated seqnum 1
        assert base64.b64encode(key.bytes()).decode() == symmetric[0]
    storage = described["client/client1/storage"]["keys"][0]
    with acra_store.read("client/client1/storage") as key:
        assert base64.b64encode(key.bytes()).decode() == storage["private_key"]
    public = acra_store.read_public("client/client1/storage")
    assert base64.b64encode(public).decode() == storage["public_key"]
    hmac_key = described["client/client1/hmac-sym"]["keys"][0]["symmetric_key"]
    with acra_store.use("client/client1/searchable") as key:
        assert base64.b64encode(key.bytes()).decode() == hmac_key
    assert all(result.ok for result in acra_store.verify())


def test_open_keystore_picks_the_v2_engine_for_acras_redis_keystore(
    redis_server: RedisServer, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _load_acras_dump(redis_server, prefix)
    monkeypatch.setenv("ACRA_MASTER_KEY", REDIS_MANIFEST["master_keys"]["v2"]["ACRA_MASTER_KEY"])
    with open_keystore(
        provider="env",
        keystore="redis",
        store_options={"url": redis_server.url, "keys_dir": prefix},
    ) as keys:
        assert isinstance(keys, RingKeyManager)
        row = b"a row kept in Redis"
        assert (
            keys.decrypt("client/client1/symmetric", keys.encrypt("client/client1/symmetric", row))
            == row
        )


def test_a_new_redis_keystore_v2_is_made_and_changed_as_acra_would(
    redis_server: RedisServer, prefix: str
) -> None:
    client = redis_server.client()
    with generate_master_key("v2") as pair:
        copy = MasterKey(SecretBytes(pair.encryption.buffer), SecretBytes(pair.signature.buffer))
        store = RedisKeyStore(
            {"url": redis_server.url, "keys_dir": prefix, "keystore_version": "v2"}
        )
        rings = store.key_rings()
        assert rings is not None
        assert client.get(f"{prefix}/version") == VERSION_TEXT  # raw, as Acra writes it
        with RingKeyManager(rings, copy) as keys:
            keys.generate(["symmetric", "searchable", "storage"], client_id="client-one")
            keys.generate(["poison-record", "poison-record-symmetric", "audit-log"])
            keys.rotate("client/client-one/symmetric")
            keys.destroy("client/client-one/symmetric", 2)
            listed = keys.list(rotated=True, check=True)
            assert all(info.decrypts for info in listed)
            assert keys.make_poison_record("acrablock")
        paths = sorted(
            key.decode()[len(prefix) + 1 :] for key in client.scan_iter(match=f"{prefix}/*")
        )
        assert paths == sorted(
            [
                "version",
                "audit-log.keyring",
                "poison-record.keyring",
                "poison-record-sym.keyring",
                "client/client-one/storage.keyring",
                "client/client-one/storage-sym.keyring",
                "client/client-one/hmac-sym.keyring",
            ]
        )
        # each ring is base64 of a DER ring that verifies under the pair's signature half
        raw = client.get(f"{prefix}/client/client-one/storage-sym.keyring")
        ring = rings_format.open_ring(
            base64.b64decode(raw, validate=True), "client/client-one/storage-sym", pair.signature
        )
        assert [key.seqnum for key in ring.keys] == [1, 2]
        assert ring.keys[0].destroyed
        assert ring.current == 2


def test_an_existing_v1_prefix_stays_v1(redis_server: RedisServer, prefix: str) -> None:
    store = RedisKeyStore({"url": redis_server.url, "keys_dir": prefix})
    with KeyManager(store, generate_master_key()) as keys:
        keys.generate(["symmetric"], client_id="client-one")
    again = RedisKeyStore({"url": redis_server.url, "keys_dir": prefix, "keystore_version": "v2"})
    try:
        assert again.key_rings() is None  # the keystore's own version wins
        assert redis_server.client().get(f"{prefix}/version") is None
    finally:
        again.close()


def test_acras_lock_and_keyloaders_exclude_each_other(
    acra_store: RingKeyManager, redis_server: RedisServer, prefix: str
) -> None:
    client = redis_server.client()
    lock = f"{prefix}/.lock"
    rings = acra_store.store
    assert isinstance(rings, RedisRings)
    # Acra holds its lock (`SET <root>/.lock locked NX EX 10`): keyloader's writers wait
    assert client.set(lock, "locked", nx=True, ex=10)
    rings.lease.timeout = 0.3
    before = client.get(f"{prefix}/client/client1/storage-sym.keyring")
    with pytest.raises(KeyStoreError, match=r"\.lock"):
        acra_store.rotate("client/client1/symmetric")
    assert client.get(f"{prefix}/client/client1/storage-sym.keyring") == before
    with acra_store.read("client/client1/symmetric") as key:  # readers go on
        assert len(key.bytes()) == 32
    client.delete(lock)
    # keyloader holds it: Acra's SET NX fails, and the lock outlives Acra's 10 s by renewal
    with rings.locked(exclusive=True):
        assert client.set(lock, "locked", nx=True, ex=10) is None
        ttl = client.pttl(lock)
        assert 0 < ttl <= 10_000
    assert client.get(lock) is None  # released
    acra_store.rotate("client/client1/symmetric")


def test_a_dead_acra_writers_new_ring_is_dropped_by_the_next_write(
    acra_store: RingKeyManager, redis_server: RedisServer, prefix: str
) -> None:
    client = redis_server.client()
    leftover = f"{prefix}/client/client1/storage-sym.keyring.new"
    client.set(leftover, "aGFsZg==")  # Acra's Put of .new succeeded, its Rename never ran
    acra_store.rotate("client/client1/symmetric")
    assert client.get(leftover) is None
    assert "client/client1/storage-sym" in acra_store.store.list()
    with acra_store.read("client/client1/symmetric", 3) as key:  # the two older keys stay
        assert len(key.bytes()) == 32


def test_a_ring_that_is_not_base64_is_a_typed_error_naming_it(
    acra_store: RingKeyManager, redis_server: RedisServer, prefix: str
) -> None:
    redis_server.client().set(f"{prefix}/audit-log.keyring", "not*base64")
    with pytest.raises(KeyloaderError, match="audit-log") as caught:
        acra_store.read("audit-log")
    assert "not*base64" not in str(caught.value)
    with acra_store.read("client/client1/symmetric") as key:  # the rest is untouched
        assert len(key.bytes()) == 32


def test_rewrap_moves_every_ring_to_a_new_pair(acra_store: RingKeyManager) -> None:
    before = {}
    for path in acra_store.store.list():
        data = acra_store.store.read(path)
        assert data is not None
        before[path] = data
    with generate_master_key("v2") as new:
        copy = MasterKey(SecretBytes(new.encryption.buffer), SecretBytes(new.signature.buffer))
        report = rewrap_rings(acra_store, copy)
        assert report.complete
        for path in before:
            data = acra_store.store.read(path)
            assert data is not None
            assert data != before[path]
            rings_format.open_ring(data, path, new.signature)


def test_a_rewrap_holding_the_lock_longer_than_acras_lease_keeps_it(
    acra_store: RingKeyManager, redis_server: RedisServer, prefix: str
) -> None:
    rings = acra_store.store
    assert isinstance(rings, RedisRings)
    rings.lease.lease = 0.6  # renewed every 0.2 s
    client = redis_server.client()
    with rings.locked(exclusive=True):
        time.sleep(1.5)  # more than twice the lease
        assert client.set(f"{prefix}/.lock", "locked", nx=True, ex=10) is None
        rings.write("audit-log", rings.read("audit-log") or b"")


class TestRedisRingsContract(RingBackendContract):
    """The Redis backend passes the contract every keystore v2 backend passes."""

    @pytest.fixture
    def rings(self, make_store: Callable[..., RedisKeyStore]) -> Iterator[RedisRings]:
        backend = make_store(keystore_version="v2").key_rings()
        assert isinstance(backend, RedisRings)
        yield backend
        backend.close()


def test_a_forked_child_of_a_redis_v2_service_shares_no_lock_and_no_cached_key(
    acra_store: RingKeyManager,
) -> None:
    kid = "client/client1/symmetric"
    rings = acra_store.store
    assert isinstance(rings, RedisRings)
    rings.lease.timeout = 0.5
    with acra_store.use(kid) as key:
        value = key.bytes().hex()
    holding, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        with rings.locked(exclusive=True):
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    assert holding.wait(10)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: use the key, try to write, report
        try:
            os.close(read)
            cache = acra_store._cache
            inherited = len(cache._entries) if cache is not None else -1
            with acra_store.use(kid) as key:
                child_value = key.bytes().hex()
            try:
                acra_store.rotate(kid)
                rotated = "rotated"
            except KeyStoreError as exc:
                rotated = "timed out" if "timed out" in str(exc) else str(exc)
            report = f"{rings.lease.held},{inherited}|{child_value}|{rotated}"
            os.write(write, report.encode())
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    report = os.read(read, 4096).decode()
    os.close(read)
    release.set()
    holder.join(10)
    assert os.waitstatus_to_exitcode(status) == 0
    held, child_value, rotated = report.split("|")
    assert held == "False,0", "the child held the parent's lock, or its cached keys"
    assert child_value == value
    assert rotated == "timed out", "the child wrote while the parent held Acra's lock"
    with acra_store.use(kid) as key:  # the parent's cache and connection still work
        assert key.bytes().hex() == value
    acra_store.rotate(kid)
    with acra_store.use(kid) as key:
        assert key.bytes().hex() != value
