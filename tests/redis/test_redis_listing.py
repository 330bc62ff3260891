"""Listing on a real server: the server-side joined SCAN agrees with a plain SCAN, key by key."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
import redis

from keyloader.errors import KeyStoreError
from keyloader.stores.base import StoredBlob
from keyloader_redis import RedisKeyStore
from keyloader_redis.listing import SCAN_COUNT

from .conftest import LOOPBACK, RedisServer

StoreFactory = Callable[..., RedisKeyStore]

ODD_KEYS = [
    "client1_storage_sym",
    "client1_hmac",
    "client1_storage.pub",
    "client1_storage_sym.old/2024-01-02T03:04:05.5",
    "client1_storage_sym.old/2024-03-02T03:04:05.123456789",
    "client1_storage_sym.old/not-a-timestamp",
    ".poison_key/poison_key_sym",
    ".poison_key/poison_key_sym.old/2024-01-02T03:04:05",
    "version",
    ".keyloader.lock",
    "клиент_storage_sym",
    "client2_storage_sym.old/2024-01-02T03:04:05/deeper",
]
RAW_ODD_KEYS = (b"nul\x00inside_storage_sym", b"latin1\xe9_storage_sym")


def plain(store: RedisKeyStore) -> list[StoredBlob]:
    """The same store's listing with the server-side script switched off."""
    store.lister.server_scan = False
    try:
        return store.list()
    finally:
        store.lister.server_scan = True


def fill(server: RedisServer, prefix: str, names: list[str], raw: tuple[bytes, ...] = ()) -> None:
    client = server.client()
    pipe = client.pipeline(transaction=False)
    value = base64.b64encode(b"\x00" * 48)
    for name in names:
        pipe.set(f"{prefix}/{name}", value)
    for name_bytes in raw:
        pipe.set(prefix.encode() + b"/" + name_bytes, value)
    pipe.execute()
    client.close()


def test_odd_keys_list_the_same_both_ways(
    make_store: StoreFactory, redis_server: RedisServer, prefix: str
) -> None:
    fill(redis_server, prefix, ODD_KEYS)
    fill(redis_server, prefix + "x", ["outside_storage_sym"])  # a longer prefix: not ours
    store = make_store()

    listed = store.list()

    assert listed == plain(store)
    assert store.lister.server_scan  # the script was used, not refused
    by_name = {blob.name: blob for blob in listed}
    assert by_name["client1_storage_sym"].history == (
        "2024-01-02T03:04:05.5",
        "2024-03-02T03:04:05.123456789",
    )
    assert by_name[".poison_key/poison_key_sym"].history == ("2024-01-02T03:04:05",)
    assert "клиент_storage_sym" in by_name
    assert not {"version", ".keyloader.lock", "outside_storage_sym"} & by_name.keys()
    assert [blob.name for blob in listed] == sorted(by_name)


def test_a_nul_byte_or_non_utf8_key_falls_back_for_its_step(
    make_store: StoreFactory, redis_server: RedisServer, prefix: str
) -> None:
    fill(redis_server, prefix, ["client1_storage_sym", "клиент_hmac"], RAW_ODD_KEYS)
    store = make_store()

    listed = store.list()

    assert listed == plain(store)
    assert store.lister.server_scan  # one step re-scanned, the script stays in use
    names = [blob.name for blob in listed]
    assert names == ["client1_storage_sym", "nul\x00inside_storage_sym", "клиент_hmac"]


def test_many_steps_list_every_key_once(
    make_store: StoreFactory, redis_server: RedisServer, prefix: str
) -> None:
    names = [f"client{i:05d}_storage_sym" for i in range(SCAN_COUNT * 2 + 500)]
    fill(redis_server, prefix, names)
    store = make_store()

    listed = store.list()

    assert [blob.name for blob in listed] == sorted(names)
    assert all(blob.current and blob.history == () and blob.created is None for blob in listed)
    assert listed == plain(store)


def test_rotate_finds_history_through_the_script(
    make_store: StoreFactory, redis_server: RedisServer, prefix: str
) -> None:
    later = "2999-01-01T00:00:00"  # a history entry from a clock far ahead
    fill(redis_server, prefix, ["client1_storage_sym", f"client1_storage_sym.old/{later}"])
    store = make_store()

    timestamp = store.rotate("client1_storage_sym", b"\x01" * 48)

    assert timestamp > later  # still ordered after the newest entry
    assert store.list()[0].history == (later, timestamp)


def test_a_user_without_scripts_still_lists(
    redis_server: RedisServer, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ACL user allowed to read but not to run scripts: listing falls back to plain SCAN."""
    fill(
        redis_server, prefix, ["client1_storage_sym", "client1_storage_sym.old/2024-01-02T03:04:05"]
    )
    admin = redis_server.client()
    user, password = f"reader-{prefix.split('/')[0]}", "reader-pass-4c1d"
    admin.acl_setuser(
        user,
        enabled=True,
        passwords=[f"+{password}"],
        keys=["*"],
        commands=["+@read", "+@connection", "-@scripting"],
    )
    monkeypatch.setenv("KEYLOADER_STORE_REDIS_PASSWORD", password)
    store = RedisKeyStore(
        {
            "url": f"redis://{LOOPBACK}:{redis_server.port}/0",
            "keys_dir": prefix,
            "username": user,
            "password": password,
        }
    )
    try:
        reader = redis.Redis(
            host=LOOPBACK, port=redis_server.port, username=user, password=password
        )
        with pytest.raises(redis.exceptions.NoPermissionError):
            reader.eval("return 1", 0)  # the ACL really refuses scripts
        reader.close()
        listed = store.list()
        assert not store.lister.server_scan  # refused once, plain SCAN from now on
        assert listed == [StoredBlob("client1_storage_sym", True, ("2024-01-02T03:04:05",), None)]
        assert store.get("client1_storage_sym") == b"\x00" * 48
        with pytest.raises(KeyStoreError, match="no permissions"):
            store.put("client1_storage_sym", b"\x02" * 48)
    finally:
        store.close()
        admin.acl_deluser(user)
        admin.close()
