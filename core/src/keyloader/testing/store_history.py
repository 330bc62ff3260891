"""History checks of ``KeyStoreContract``: rotation, history entries, missing names.

Acra keeps rotated keys as ``<name>.old/<timestamp>``; every store keeps the
same history under its own layout, oldest first, with stable numbering.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from ..errors import KeyNotFoundError
from ..stores.base import BlobWrite, KeyStore, StoredBlob
from ..stores.timestamps import parse_history_timestamp

__all__ = ["EVERY_BYTE", "NAMES", "StoreHistoryChecks", "creates_history", "listed"]

EVERY_BYTE = bytes(range(256))
NAMES = (
    "client1_storage_sym",
    "client1_hmac",
    "secure_log_key",
    ".poison_key/poison_key_sym",
    ".poison_key/poison_key",
    "client1_storage",
)


def listed(store: KeyStore, name: str) -> StoredBlob | None:
    """The listing row of ``name``, or None."""
    return next((blob for blob in store.list() if blob.name == name), None)


def creates_history(store: KeyStore) -> bool:
    """Whether the store implements ``create_history`` (the base class refuses)."""
    return type(store).create_history is not KeyStore.create_history


class StoreHistoryChecks:
    """Rotation and history entries; missing names and entries raise ``KeyNotFoundError``."""

    # -- history ---------------------------------------------------------------------------

    def test_rotate_keeps_old_blobs_oldest_first(self, store: KeyStore) -> None:
        with store.lock():
            store.create("client1_storage_sym", b"v0")
        stamps: list[str] = []
        for i in range(1, 6):
            with store.lock():
                stamps.append(store.rotate("client1_storage_sym", f"v{i}".encode()))
            blob = listed(store, "client1_storage_sym")
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
        blob = listed(store, "client1_storage_sym")
        assert blob is not None
        assert (blob.current, blob.history) == (False, (timestamp,))
        with store.lock():
            with pytest.raises(KeyNotFoundError):
                store.rotate("client1_storage_sym", b"no current to rotate")
            store.create("client1_storage_sym", b"fresh")
        blob = listed(store, "client1_storage_sym")
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
        blob = listed(store, "client1_hmac")
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
        blob = listed(store, "client1_hmac")
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
        blob = listed(store, "client1_hmac")
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
        blob = listed(store, "client1_hmac")
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

    def test_a_keypairs_public_history_round_trips(self, store: KeyStore) -> None:
        """Keypairs keep ``<name>.pub.old/<ts>`` beside ``<name>.old/<ts>`` (one timestamp)."""
        stamp = "2024-01-02T03:04:05.5"
        store.put_many(
            [
                BlobWrite("client1_storage", b"old private", timestamp=stamp),
                BlobWrite("client1_storage", b"new private"),
                BlobWrite("client1_storage.pub", b"old public", timestamp=stamp, public=True),
                BlobWrite("client1_storage.pub", b"new public", public=True),
            ]
        )
        private, public = listed(store, "client1_storage"), listed(store, "client1_storage.pub")
        assert private is not None
        assert public is not None
        assert private.history == public.history == (stamp,)
        assert store.get_history("client1_storage.pub", stamp) == b"old public"
        assert store.get("client1_storage.pub") == b"new public"
        store.delete_history("client1_storage.pub", stamp)
        public = listed(store, "client1_storage.pub")
        assert public is not None
        assert public.history == ()
        assert store.get_history("client1_storage", stamp) == b"old private"
