"""``KeyStoreContract``: the conformance suite every ``KeyStore`` must pass.

Subclass it in your store's tests (the subclass name must start with ``Test``)
and provide a ``store`` fixture returning a fresh, empty store, and a
``reopen_store`` fixture that opens the same store again (in other processes)::

    class TestRedisStore(KeyStoreContract):
        @pytest.fixture
        def prefix(self) -> str:
            return uuid4().hex

        @pytest.fixture
        def store(self, redis_url: str, prefix: str) -> Iterator[KeyStore]:
            store = RedisKeyStore({"url": redis_url, "keys_dir": prefix})
            yield store
            store.close()

        @pytest.fixture
        def reopen_store(self, redis_url: str, prefix: str) -> Callable[..., KeyStore]:
            return lambda **options: RedisKeyStore(
                {"url": redis_url, "keys_dir": prefix, **options}
            )

A store that lives in one process sets ``spans_processes = False`` instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

import pytest

from ..errors import ConfigError, KeyExistsError, KeyNotFoundError
from ..stores.base import BlobWrite, KeyStore, StoredBlob
from ..stores.timestamps import parse_history_timestamp
from .store_processes import StoreProcessChecks

__all__ = ["KeyStoreContract"]

EVERY_BYTE = bytes(range(256))
NAMES = (
    "client1_storage_sym",
    "client1_hmac",
    "secure_log_key",
    ".poison_key/poison_key_sym",
    ".poison_key/poison_key",
    "client1_storage",
)


def _listed(store: KeyStore, name: str) -> StoredBlob | None:
    return next((blob for blob in store.list() if blob.name == name), None)


def _creates_history(store: KeyStore) -> bool:
    return type(store).create_history is not KeyStore.create_history


class KeyStoreContract(StoreProcessChecks):
    """What every key store does: names, blobs, history, atomic writes, a re-entrant lock.

    Needs a ``store`` fixture (a fresh, empty store instance) and a
    ``reopen_store`` fixture (the same store opened again, for the checks across
    processes; see :mod:`keyloader.testing.store_processes`), or
    ``spans_processes = False``.
    """

    # -- a fresh store ---------------------------------------------------------------------

    def test_fresh_store_is_empty(self, store: KeyStore) -> None:
        assert store.list() == []
        assert store.version() is None
        assert isinstance(store.location, str)
        assert store.location
        assert store.location in repr(store)

    # -- create, get, put ------------------------------------------------------------------

    def test_create_then_get(self, store: KeyStore) -> None:
        with store.lock():
            store.create("client1_storage_sym", b"blob one")
        data = store.get("client1_storage_sym")
        assert data == b"blob one"
        assert isinstance(data, bytes)

    def test_create_is_exclusive(self, store: KeyStore) -> None:
        with store.lock():
            store.create("client1_hmac", b"first")
            with pytest.raises(KeyExistsError, match="client1_hmac"):
                store.create("client1_hmac", b"second")
        assert store.get("client1_hmac") == b"first"
        blob = _listed(store, "client1_hmac")
        assert blob is not None
        assert blob.history == ()

    def test_put_creates_and_replaces_without_history(self, store: KeyStore) -> None:
        with store.lock():
            store.put("secure_log_key", b"v1")
            assert store.get("secure_log_key") == b"v1"
            store.put("secure_log_key", b"v2 longer than the first")
            store.put("secure_log_key", b"v3")
        assert store.get("secure_log_key") == b"v3"
        assert [(b.name, b.current, b.history) for b in store.list()] == [
            ("secure_log_key", True, ())
        ]

    @pytest.mark.parametrize(
        "data", [EVERY_BYTE, EVERY_BYTE[::-1] * 64, b"\0", b"\n\r\n", b"\xff" * 1000]
    )
    def test_binary_data_round_trips(self, store: KeyStore, data: bytes) -> None:
        with store.lock():
            store.create("client1_storage", data)
            store.put(".poison_key/poison_key", data)
            store.create("client2_storage", b"old")
            store.rotate("client2_storage", data)
            timestamp = store.rotate("client2_storage", b"new")
        assert store.get("client1_storage") == data
        assert store.get(".poison_key/poison_key") == data
        assert store.get_history("client2_storage", timestamp) == data

    def test_public_blob(self, store: KeyStore) -> None:
        with store.lock():
            store.create("client1_storage.pub", b"public half", public=True)
            store.put(".poison_key/poison_key.pub", b"poison public", public=True)
        assert store.get("client1_storage.pub") == b"public half"
        assert store.get(".poison_key/poison_key.pub") == b"poison public"
        assert [b.name for b in store.list()] == [
            ".poison_key/poison_key.pub",
            "client1_storage.pub",
        ]

    def test_poison_names(self, store: KeyStore) -> None:
        with store.lock():
            store.create(".poison_key/poison_key_sym", b"sym")
            timestamp = store.rotate(".poison_key/poison_key_sym", b"sym 2")
        assert store.get(".poison_key/poison_key_sym") == b"sym 2"
        assert store.get_history(".poison_key/poison_key_sym", timestamp) == b"sym"
        with pytest.raises(KeyNotFoundError):
            store.get("poison_key_sym")
        assert [b.name for b in store.list()] == [".poison_key/poison_key_sym"]

    # -- listing ---------------------------------------------------------------------------

    def test_list_is_sorted_and_complete(self, store: KeyStore) -> None:
        before = time.time()
        with store.lock():
            for name in reversed(NAMES):
                store.create(name, name.encode())
            store.create("client1_storage.pub", b"pub", public=True)
            store.rotate("client1_hmac", b"next")
        after = time.time()
        listed = store.list()
        names = [blob.name for blob in listed]
        assert names == sorted([*NAMES, "client1_storage.pub"])
        for blob in listed:
            assert blob.current
            if blob.name != "client1_hmac":
                assert blob.history == ()
            if blob.created is not None:
                assert before - 2 <= blob.created <= after + 2
        hmac = _listed(store, "client1_hmac")
        assert hmac is not None
        assert len(hmac.history) == 1

    # -- history ---------------------------------------------------------------------------

    def test_rotate_keeps_old_blobs_oldest_first(self, store: KeyStore) -> None:
        with store.lock():
            store.create("client1_storage_sym", b"v0")
        stamps: list[str] = []
        for i in range(1, 6):
            with store.lock():
                stamps.append(store.rotate("client1_storage_sym", f"v{i}".encode()))
            blob = _listed(store, "client1_storage_sym")
            assert blob is not None
            # numbering is stable: earlier entries keep their places, the new one is last
            assert blob.history == tuple(stamps)
            assert blob.current
        assert len(set(stamps)) == 5
        times = [parse_history_timestamp(ts) for ts in stamps]
        assert times == sorted(times)
        assert len(set(times)) == 5
        assert store.get("client1_storage_sym") == b"v5"
        for i, ts in enumerate(stamps):
            assert store.get_history("client1_storage_sym", ts) == f"v{i}".encode()

    def test_rotate_timestamp_is_now(self, store: KeyStore) -> None:
        with store.lock():
            store.create("client1_hmac", b"a")
            before = time.time_ns()
            timestamp = store.rotate("client1_hmac", b"b")
            after = time.time_ns()
        assert before - 2_000_000_000 <= parse_history_timestamp(timestamp) <= after + 2_000_000_000

    def test_rotate_missing_name(self, store: KeyStore) -> None:
        with store.lock(), pytest.raises(KeyNotFoundError, match="client9_hmac"):
            store.rotate("client9_hmac", b"new")
        assert store.list() == []

    def test_history_survives_delete_of_current(self, store: KeyStore) -> None:
        with store.lock():
            store.create("client1_storage_sym", b"old")
            timestamp = store.rotate("client1_storage_sym", b"current")
            store.delete("client1_storage_sym")
        with pytest.raises(KeyNotFoundError):
            store.get("client1_storage_sym")
        assert store.get_history("client1_storage_sym", timestamp) == b"old"
        blob = _listed(store, "client1_storage_sym")
        assert blob is not None
        assert (blob.current, blob.history) == (False, (timestamp,))
        with store.lock():
            with pytest.raises(KeyNotFoundError):
                store.rotate("client1_storage_sym", b"no current to rotate")
            store.create("client1_storage_sym", b"fresh")
        blob = _listed(store, "client1_storage_sym")
        assert blob is not None
        assert (blob.current, blob.history) == (True, (timestamp,))
        assert store.get("client1_storage_sym") == b"fresh"

    def test_put_history_replaces_one_entry(self, store: KeyStore) -> None:
        with store.lock():
            store.create("client1_hmac", b"a")
            first = store.rotate("client1_hmac", b"b")
            second = store.rotate("client1_hmac", b"c")
            store.put_history("client1_hmac", first, b"a rewrapped")
        assert store.get_history("client1_hmac", first) == b"a rewrapped"
        assert store.get_history("client1_hmac", second) == b"b"
        assert store.get("client1_hmac") == b"c"
        blob = _listed(store, "client1_hmac")
        assert blob is not None
        assert blob.history == (first, second)

    def test_put_history_needs_an_existing_entry(self, store: KeyStore) -> None:
        with store.lock():
            store.create("client1_hmac", b"a")
            timestamp = store.rotate("client1_hmac", b"b")
            unused = "2001-02-03T04:05:06.789"
            with pytest.raises(KeyNotFoundError):
                store.put_history("client1_hmac", unused, b"x")
            with pytest.raises(KeyNotFoundError):
                store.put_history("client2_hmac", timestamp, b"x")
        blob = _listed(store, "client1_hmac")
        assert blob is not None
        assert blob.history == (timestamp,)

    def test_delete_history(self, store: KeyStore) -> None:
        with store.lock():
            store.create("client1_hmac", b"a")
            first = store.rotate("client1_hmac", b"b")
            second = store.rotate("client1_hmac", b"c")
            third = store.rotate("client1_hmac", b"d")
            store.delete_history("client1_hmac", second)
            with pytest.raises(KeyNotFoundError):
                store.delete_history("client1_hmac", second)
        with pytest.raises(KeyNotFoundError):
            store.get_history("client1_hmac", second)
        blob = _listed(store, "client1_hmac")
        assert blob is not None
        assert blob.history == (first, third)
        assert store.get_history("client1_hmac", third) == b"c"

    def test_name_disappears_when_nothing_is_left(self, store: KeyStore) -> None:
        with store.lock():
            store.create("client1_hmac", b"a")
            timestamp = store.rotate("client1_hmac", b"b")
            store.delete("client1_hmac")
            store.delete_history("client1_hmac", timestamp)
        assert store.list() == []
        with store.lock():
            store.create("client1_hmac", b"again")
        blob = _listed(store, "client1_hmac")
        assert blob is not None
        assert blob.history == ()

    # -- missing names ---------------------------------------------------------------------

    @pytest.mark.parametrize(
        "operation",
        ["get", "delete", "get_history", "put_history", "delete_history", "rotate"],
    )
    def test_missing_names_raise_key_not_found(self, store: KeyStore, operation: str) -> None:
        with store.lock():
            store.create("client1_hmac", b"present")
            present_ts = store.rotate("client1_hmac", b"present too")
        timestamp = "2020-01-01T00:00:00.5"
        calls: dict[str, Callable[[], object]] = {
            "get": lambda: store.get("client2_hmac"),
            "delete": lambda: store.delete("client2_hmac"),
            "get_history": lambda: store.get_history("client1_hmac", timestamp),
            "put_history": lambda: store.put_history("client2_hmac", present_ts, b"x"),
            "delete_history": lambda: store.delete_history("client2_hmac", present_ts),
            "rotate": lambda: store.rotate("client2_hmac", b"x"),
        }
        with store.lock(), pytest.raises(KeyNotFoundError):
            calls[operation]()
        assert [b.name for b in store.list()] == ["client1_hmac"]

    def test_missing_history_of_missing_name(self, store: KeyStore) -> None:
        with pytest.raises(KeyNotFoundError):
            store.get_history("client1_hmac", "2020-01-01T00:00:00")
        with store.lock(), pytest.raises(KeyNotFoundError):
            store.delete_history(".poison_key/poison_key", "2020-01-01T00:00:00")

    # -- lock and revisions ----------------------------------------------------------------

    def test_lock_is_reentrant(self, store: KeyStore) -> None:
        with store.lock():
            with store.lock():
                store.create("client1_hmac", b"inner")
            store.put("client1_hmac", b"outer")
        with store.lock():  # released and usable again
            store.put("client1_hmac", b"again")
        assert store.get("client1_hmac") == b"again"

    def test_lock_is_released_on_error(self, store: KeyStore) -> None:
        with pytest.raises(RuntimeError), store.lock():
            raise RuntimeError("boom")
        with store.lock():
            store.create("client1_hmac", b"after an error")
        assert store.get("client1_hmac") == b"after an error"

    def test_revision_changes_on_write(self, store: KeyStore) -> None:
        assert store.revision("client1_hmac") is None
        with store.lock():
            store.create("client1_hmac", b"a")
        first = store.revision("client1_hmac")
        if first is None:
            pytest.skip("this store does not report revisions (cache_ttl applies)")
        assert isinstance(first, Hashable)
        assert store.revision("client1_hmac") == first  # stable while unchanged
        with store.lock():
            store.put("client1_hmac", b"b")
        second = store.revision("client1_hmac")
        assert second != first
        with store.lock():
            timestamp = store.rotate("client1_hmac", b"c")
        third = store.revision("client1_hmac")
        assert third != second
        history = store.revision("client1_hmac", timestamp)
        assert history is not None
        with store.lock():
            store.put_history("client1_hmac", timestamp, b"b rewrapped")
        assert store.revision("client1_hmac", timestamp) != history
        assert store.revision("client1_hmac") == third
        with store.lock():
            store.delete("client1_hmac")
        assert store.revision("client1_hmac") is None
        assert store.revision("client1_hmac", "2020-01-01T00:00:00") is None

    # -- batches and restored history (import) ---------------------------------------------

    def test_create_history_restores_an_entry(self, store: KeyStore) -> None:
        if not _creates_history(store):
            pytest.skip("this store does not implement create_history (import of history)")
        older, newer = "2020-01-02T03:04:05.5", "2021-01-02T03:04:05"
        with store.lock():
            store.create_history("client1_hmac", newer, b"newer")  # no current blob needed
            store.create_history("client1_hmac", older, b"older")
            with pytest.raises(KeyExistsError, match="client1_hmac"):
                store.create_history("client1_hmac", older, b"again")
        blob = _listed(store, "client1_hmac")
        assert blob is not None
        assert (blob.current, blob.history) == (False, (older, newer))
        assert store.get_history("client1_hmac", older) == b"older"
        assert store.get_history("client1_hmac", newer) == b"newer"
        with store.lock():
            store.create(".poison_key/poison_key", b"current")
            store.create_history(".poison_key/poison_key", older, EVERY_BYTE)
        assert store.get_history(".poison_key/poison_key", older) == EVERY_BYTE
        assert store.get(".poison_key/poison_key") == b"current"

    def test_put_many_writes_current_and_history(self, store: KeyStore) -> None:
        history = _creates_history(store)
        with store.lock():
            store.create("client1_storage_sym", b"old current")
            stamp = store.rotate("client1_storage_sym", b"current")
        restored = "2019-05-06T07:08:09.123"
        writes = [
            BlobWrite("client1_storage_sym", b"replaced"),
            BlobWrite("client1_storage_sym", b"old replaced", stamp),
            BlobWrite("secure_log_key", EVERY_BYTE),
            BlobWrite("client1_storage.pub", b"public half", public=True),
            BlobWrite(".poison_key/poison_key_sym", b"poison"),
        ]
        if history:
            writes.append(BlobWrite("client2_hmac", b"restored", restored))
        store.put_many(writes)
        assert store.get("client1_storage_sym") == b"replaced"
        assert store.get_history("client1_storage_sym", stamp) == b"old replaced"
        assert store.get("secure_log_key") == EVERY_BYTE
        assert store.get("client1_storage.pub") == b"public half"
        assert store.get(".poison_key/poison_key_sym") == b"poison"
        expected = [
            ".poison_key/poison_key_sym",
            "client1_storage.pub",
            "client1_storage_sym",
            "secure_log_key",
        ]
        if history:
            assert store.get_history("client2_hmac", restored) == b"restored"
            expected = sorted([*expected, "client2_hmac"])
        assert sorted(b.name for b in store.list()) == expected
        blob = _listed(store, "client1_storage_sym")
        assert blob is not None
        assert blob.history == (stamp,)
        store.put_many([])  # an empty batch is fine
        assert sorted(b.name for b in store.list()) == expected

    def test_put_many_refuses_bad_names(self, store: KeyStore) -> None:
        with pytest.raises(ConfigError):
            store.put_many([BlobWrite("../escape", b"x"), BlobWrite("client1_hmac", b"y")])
        with pytest.raises(ConfigError):
            store.put_many([BlobWrite("client1_hmac", b"x", "not a timestamp")])
        assert store.list() == []
