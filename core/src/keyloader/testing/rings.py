"""``RingBackendContract``: the conformance suite of a keystore v2 backend.

A store plugin whose :meth:`~keyloader.stores.KeyStore.key_rings` returns a
:class:`~keyloader.keyrings.backend.RingBackend` subclasses it (the subclass name must
start with ``Test``) and provides a ``rings`` fixture: a fresh, empty keystore v2 of that
store, made the way ``open_keystore`` makes one::

    class TestRedisRings(RingBackendContract):
        @pytest.fixture
        def rings(self, redis_url: str) -> Iterator[RingBackend]:
            store = RedisKeyStore(
                {"url": redis_url, "keys_dir": uuid4().hex, "keystore_version": "v2"}
            )
            backend = store.key_rings()
            assert backend is not None
            yield backend
            backend.close()

Rings are opaque bytes here: the engine's own tests cover what goes in them.
"""

from __future__ import annotations

import threading

import pytest

from ..errors import KeyStoreError
from ..keyrings.backend import RingBackend

__all__ = ["RingBackendContract"]

PATHS = ["client/some client/storage-sym", "audit-log", "client/some client/storage", "z-last"]


class RingBackendContract:
    """What every keystore v2 backend does: rings by path, atomic replacement, revisions
    that follow every write, Acra's listing order, and a lock."""

    def test_it_is_a_ring_backend(self, rings: RingBackend) -> None:
        assert isinstance(rings, RingBackend)
        assert isinstance(rings.name, str)
        assert rings.name
        assert rings.location
        assert "audit-log" in rings.where("audit-log")

    def test_a_fresh_keystore_has_no_rings(self, rings: RingBackend) -> None:
        assert rings.list() == []
        assert rings.read("audit-log") is None
        assert rings.revision("audit-log") is None

    def test_written_rings_read_back_byte_for_byte(self, rings: RingBackend) -> None:
        every_byte = bytes(range(256)) * 3
        with rings.locked(exclusive=True):
            rings.write("client/some client/storage", every_byte)
            rings.write("audit-log", b"\x30\x00")
        assert rings.read("client/some client/storage") == every_byte
        assert rings.read("audit-log") == b"\x30\x00"

    def test_a_write_replaces_the_ring_and_changes_its_revision(self, rings: RingBackend) -> None:
        with rings.locked(exclusive=True):
            rings.write("audit-log", b"first")
        first = rings.revision("audit-log")
        assert first is not None
        assert rings.revision("audit-log") == first  # stable while nothing changes
        with rings.locked(exclusive=True):
            rings.write("audit-log", b"other")  # same length, other content
        assert rings.read("audit-log") == b"other"
        assert rings.revision("audit-log") not in (None, first)

    def test_listing_is_in_acras_order(self, rings: RingBackend) -> None:
        with rings.locked(exclusive=True):
            for path in PATHS:
                rings.write(path, path.encode())
        listed = rings.list()
        assert sorted(listed) == sorted(PATHS)
        # Acra sorts by the stored name (``<path>.keyring``): "storage-sym" before "storage"
        assert listed.index("client/some client/storage-sym") < listed.index(
            "client/some client/storage"
        )

    @pytest.mark.parametrize("path", ["", "a//b", "../escape", "client/./x", "nul\0byte"])
    def test_a_bad_ring_path_is_refused(self, rings: RingBackend, path: str) -> None:
        with pytest.raises(KeyStoreError):
            rings.read(path)
        with pytest.raises(KeyStoreError), rings.locked(exclusive=True):
            rings.write(path, b"x")

    def test_the_lock_is_reentrant_and_a_write_inside_a_read_is_refused(
        self, rings: RingBackend
    ) -> None:
        with (
            rings.locked(exclusive=True),
            rings.locked(exclusive=True),
            rings.locked(exclusive=False),
        ):
            rings.write("audit-log", b"nested")
        assert rings.read("audit-log") == b"nested"
        with (
            pytest.raises(KeyStoreError),
            rings.locked(exclusive=False),
            rings.locked(exclusive=True),
        ):
            pass  # pragma: no cover - refused before
        with rings.locked(exclusive=True):  # the refusal left nothing held
            rings.write("audit-log", b"after")

    def test_writers_in_threads_exclude_each_other(self, rings: RingBackend) -> None:
        counter = "client/some client/storage-sym"
        with rings.locked(exclusive=True):
            rings.write(counter, b"0")

        def add(times: int) -> None:
            for _ in range(times):
                with rings.locked(exclusive=True):
                    value = int(rings.read(counter) or b"0")
                    rings.write(counter, str(value + 1).encode())

        threads = [threading.Thread(target=add, args=(15,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert rings.read(counter) == b"60"  # no lost update
