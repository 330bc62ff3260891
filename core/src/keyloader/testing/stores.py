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
from collections.abc import Hashable

import pytest

from ..errors import ConfigError, KeyExistsError, KeyNotFoundError, KeyStoreError
from ..stores.base import BlobWrite, KeyStore
from ..stores.names import MAX_BLOB_SIZE
from .store_history import EVERY_BYTE, NAMES, StoreHistoryChecks, creates_history, listed
from .store_processes import StoreProcessChecks

__all__ = ["KeyStoreContract"]


class KeyStoreContract(StoreHistoryChecks, StoreProcessChecks):
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
        blob = listed(store, "client1_hmac")
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
        "data", [EVERY_BYTE, EVERY_BYTE[::-1] * 16, b"\0", b"\n\r\n", b"\xff" * 1000]
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

    def test_a_value_larger_than_any_key_is_refused_on_read(self, store: KeyStore) -> None:
        """A stored value past ``MAX_BLOB_SIZE`` is not a key: writing it works (a store does
        not judge values), reading it is a ``KeyStoreError``."""
        store.put("client1_hmac", bytes(MAX_BLOB_SIZE))
        assert store.get("client1_hmac") == bytes(MAX_BLOB_SIZE)
        store.put("client1_hmac", bytes(MAX_BLOB_SIZE + 1024))
        refused: KeyStoreError | None = None
        try:
            store.get("client1_hmac")
        except KeyStoreError as exc:
            refused = exc
        if refused is None:
            pytest.fail(
                f"get() returned a stored value of {MAX_BLOB_SIZE + 1024} bytes: a store must "
                "refuse a value larger than any key on read; call "
                "keyloader.stores.check_blob_size(size, what, location) in get() and "
                "get_history() before returning the value (docs/plugins.md, Writing a key store)"
            )
        assert "larger than any key" in str(refused), f"another KeyStoreError: {refused}"

    # -- listing ---------------------------------------------------------------------------

    def test_list_is_sorted_and_complete(self, store: KeyStore) -> None:
        before = time.time()
        with store.lock():
            for name in reversed(NAMES):
                store.create(name, name.encode())
            store.create("client1_storage.pub", b"pub", public=True)
            store.rotate("client1_hmac", b"next")
        after = time.time()
        listing = store.list()
        names = [blob.name for blob in listing]
        assert names == sorted([*NAMES, "client1_storage.pub"])
        for blob in listing:
            assert blob.current
            if blob.name != "client1_hmac":
                assert blob.history == ()
            if blob.created is not None:
                assert before - 2 <= blob.created <= after + 2
        hmac = listed(store, "client1_hmac")
        assert hmac is not None
        assert len(hmac.history) == 1

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
        if not creates_history(store):
            pytest.skip("this store does not implement create_history (import of history)")
        older, newer = "2020-01-02T03:04:05.5", "2021-01-02T03:04:05"
        with store.lock():
            store.create_history("client1_hmac", newer, b"newer")  # no current blob needed
            store.create_history("client1_hmac", older, b"older")
            with pytest.raises(KeyExistsError, match="client1_hmac"):
                store.create_history("client1_hmac", older, b"again")
        blob = listed(store, "client1_hmac")
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
        history = creates_history(store)
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
        blob = listed(store, "client1_storage_sym")
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
