"""The ``memory`` key store: the conformance suite, thread safety and its own rules."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from keyloader.errors import ConfigError, KeyExistsError, KeyStoreError
from keyloader.stores import MemoryKeyStore
from keyloader.stores.timestamps import parse_history_timestamp
from keyloader.testing import KeyStoreContract


@pytest.fixture
def store() -> Iterator[MemoryKeyStore]:
    memory = MemoryKeyStore({"keys_dir": ".acrakeys", "lock_timeout": 5.0})
    yield memory
    memory.close()


class TestMemoryKeyStore(KeyStoreContract):
    """The conformance suite on a fresh in-memory store (one process only)."""

    spans_processes = False


def test_options_and_location() -> None:
    options = {o.name: o for o in MemoryKeyStore.options}
    assert options["keys_dir"].default == ".acrakeys"
    assert options["lock_timeout"].default == 30.0
    assert MemoryKeyStore.name == "memory"
    store = MemoryKeyStore({"keys_dir": "/srv/keys"})
    assert store.location == "memory:/srv/keys"
    assert repr(store) == "<MemoryKeyStore memory:/srv/keys>"
    with pytest.raises(ConfigError, match="lock_timeout"):
        MemoryKeyStore({"keys_dir": "x", "lock_timeout": -1})


@pytest.mark.parametrize(
    "name",
    ["", "/abs", "../x", "a//b", "./x", "x\0y", "sub/x", ".keyloader.lock", "version", "x.old"],
)
def test_unsafe_names_are_refused_like_the_filesystem(store: MemoryKeyStore, name: str) -> None:
    calls: list[Callable[[], object]] = [
        lambda: store.get(name),
        lambda: store.create(name, b"x"),
        lambda: store.put(name, b"x"),
        lambda: store.revision(name),
    ]
    for call in calls:
        with pytest.raises(ConfigError, match="invalid key store name"):
            call()
    assert store.list() == []


def test_public_flag_and_timestamps_are_checked(store: MemoryKeyStore) -> None:
    with pytest.raises(ConfigError, match=r"\.pub"):
        store.put("client1_storage", b"x", public=True)
    store.create("client1_hmac", b"x")
    with pytest.raises(ConfigError, match="history timestamp"):
        store.get_history("client1_hmac", "../client1_hmac")
    assert [b.name for b in store.list()] == ["client1_hmac"]


def test_stored_blobs_are_copies(store: MemoryKeyStore) -> None:
    data = bytearray(b"mutable")
    store.create("client1_hmac", data)  # type: ignore[arg-type]
    data[:] = b"changed"
    assert store.get("client1_hmac") == b"mutable"


def test_fast_rotations_never_collide(store: MemoryKeyStore) -> None:
    store.create("client1_hmac", b"0")
    stamps = [store.rotate("client1_hmac", str(i).encode()) for i in range(1, 201)]
    assert len(set(stamps)) == 200
    times = [parse_history_timestamp(t) for t in stamps]
    assert times == sorted(times)
    [blob] = store.list()
    assert blob.history == tuple(stamps)


def test_revision_is_per_slot(store: MemoryKeyStore) -> None:
    store.create("client1_hmac", b"a")
    store.create("client2_hmac", b"b")
    before = store.revision("client1_hmac")
    store.put("client2_hmac", b"c")
    assert store.revision("client1_hmac") == before
    store.put("client1_hmac", b"a")  # same bytes, still a new write
    assert store.revision("client1_hmac") != before


def test_lock_times_out_across_threads() -> None:
    store = MemoryKeyStore({"keys_dir": "x", "lock_timeout": 0.1})
    held, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold() -> None:
        with store.lock():
            held.set()
            release.wait(5)

    def write() -> None:
        try:
            store.put("client1_hmac", b"x")
        except KeyStoreError as exc:
            errors.append(exc)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(5)
    writer = threading.Thread(target=write)
    writer.start()
    writer.join(5)
    assert [type(e) for e in errors] == [KeyStoreError]
    assert "memory:x" in str(errors[0])
    assert store.list() == []
    release.set()
    holder.join(5)
    write()
    assert store.get("client1_hmac") == b"x"


def test_threads_lose_no_writes(store: MemoryKeyStore) -> None:
    store.create("shared_hmac", b"initial")
    winners: list[int] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        for i in range(25):
            with store.lock():
                store.rotate("shared_hmac", f"{n}-{i}".encode())
        try:
            store.create("race_hmac", str(n).encode())
        except KeyExistsError:
            return
        with lock:
            winners.append(n)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    [blob] = [b for b in store.list() if b.name == "shared_hmac"]
    seen = [store.get_history("shared_hmac", t) for t in blob.history] + [store.get("shared_hmac")]
    expected = {b"initial"} | {f"{n}-{i}".encode() for n in range(6) for i in range(25)}
    assert len(seen) == len(expected) == 151
    assert set(seen) == expected
    for n in range(6):  # each thread's writes appear in the order it made them
        own = [int(s.split(b"-")[1]) for s in seen if s.startswith(f"{n}-".encode())]
        assert own == list(range(25))
    assert len(winners) == 1
    assert store.get("race_hmac") == str(winners[0]).encode()


def test_reads_do_not_wait_for_the_writer_lock(store: MemoryKeyStore) -> None:
    store.create("client1_hmac", b"x")
    results: list[bytes] = []
    with store.lock():
        reader = threading.Thread(target=lambda: results.append(store.get("client1_hmac")))
        reader.start()
        reader.join(5)
    assert results == [b"x"]
