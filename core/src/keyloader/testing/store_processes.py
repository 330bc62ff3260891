"""Checks of ``KeyStoreContract`` that need several processes on one store.

Many services (and the CLI) open the same key store at once, so its lock must
serialize writers across processes and its writes must never be seen torn. A
store subclassing the contract provides, beside ``store``, a ``reopen_store``
fixture: a callable that opens the same store again (keyword arguments override
options, e.g. ``reopen_store(lock_timeout=0.3)``). It is called in child
processes started with ``fork``. A store that lives in one process (``memory``)
sets ``spans_processes = False`` and these checks skip for it.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from ..errors import KeyStoreError
from ..stores.base import KeyStore

__all__ = ["StoreProcessChecks"]

_NAME = "client1_hmac"
_WRITERS = 4
_INCREMENTS = 25
_WAIT = 60.0


def _increment(reopen: Callable[..., KeyStore], times: int) -> None:
    store = reopen()
    try:
        for _ in range(times):
            with store.lock():
                value = int(store.get(_NAME))
                store.put(_NAME, str(value + 1).encode())
    finally:
        store.close()


def _hold_lock(reopen: Callable[..., KeyStore], held: Any, release: Any) -> None:
    store = reopen()
    try:
        with store.lock():
            held.set()
            release.wait(_WAIT)
    finally:
        store.close()


def _value(round_: int) -> bytes:
    """The blob a writer puts in round ``round_``: one repeated byte, a length of its own."""
    return bytes([round_ % 251 + 1]) * (100 + (round_ % 7) * 550)


def _write_rounds(reopen: Callable[..., KeyStore], rounds: int) -> None:
    store = reopen()
    try:
        for round_ in range(1, rounds + 1):
            store.put(_NAME, _value(round_))
            if round_ % 10 == 0:
                store.rotate("secure_log_key", _value(round_))
    finally:
        store.close()


class StoreProcessChecks:
    """Writers in several processes, ``lock_timeout`` across processes, no torn reads, and
    a store opened before ``fork()`` that serves both sides."""

    spans_processes: ClassVar[bool] = True
    """False for a store that cannot be opened again from another process."""

    def _reopener(self, request: pytest.FixtureRequest) -> Callable[..., KeyStore]:
        if not self.spans_processes:
            pytest.skip(f"{type(self).__name__} declares spans_processes = False")
        try:
            reopen: Callable[..., KeyStore] = request.getfixturevalue("reopen_store")
        except pytest.FixtureLookupError:
            pytest.fail(
                "KeyStoreContract needs a `reopen_store` fixture (a callable opening the same "
                "store again, keyword arguments overriding options), or set "
                "`spans_processes = False` for a store that lives in one process"
            )
        return reopen

    def test_writers_in_several_processes_are_serialized(
        self, store: KeyStore, request: pytest.FixtureRequest
    ) -> None:
        reopen = self._reopener(request)
        store.create(_NAME, b"0")
        context = multiprocessing.get_context("fork")
        writers = [
            context.Process(target=_increment, args=(reopen, _INCREMENTS)) for _ in range(_WRITERS)
        ]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join(_WAIT)
        assert [w.exitcode for w in writers] == [0] * _WRITERS, "a writer process failed"
        assert int(store.get(_NAME)) == _WRITERS * _INCREMENTS  # no update lost

    def test_lock_timeout_is_honoured_across_processes(
        self, store: KeyStore, request: pytest.FixtureRequest
    ) -> None:
        reopen = self._reopener(request)
        context = multiprocessing.get_context("fork")
        held, release = context.Event(), context.Event()
        holder = context.Process(target=_hold_lock, args=(reopen, held, release))
        holder.start()
        try:
            assert held.wait(_WAIT), "the lock holder never got the lock"
            waiter = reopen(lock_timeout=0.3)
            try:
                started = time.monotonic()
                with pytest.raises(KeyStoreError), waiter.lock():
                    pytest.fail("the lock was granted while another process held it")
                waited = time.monotonic() - started
                assert 0.25 <= waited < 10, f"lock_timeout 0.3 s, waited {waited:.2f} s"
                release.set()
                holder.join(_WAIT)
                with waiter.lock():  # free again once the holder let go
                    waiter.put(_NAME, b"after the holder")
            finally:
                waiter.close()
        finally:
            release.set()
            holder.join(_WAIT)
        assert holder.exitcode == 0
        assert store.get(_NAME) == b"after the holder"

    def test_readers_never_see_a_torn_value(
        self, store: KeyStore, request: pytest.FixtureRequest
    ) -> None:
        reopen = self._reopener(request)
        rounds = 300
        store.create(_NAME, _value(0))
        store.create("secure_log_key", _value(0))
        valid = {_value(round_) for round_ in range(rounds + 1)}
        context = multiprocessing.get_context("fork")
        writer = context.Process(target=_write_rounds, args=(reopen, rounds))
        writer.start()
        reads = 0
        try:
            while writer.is_alive() or reads == 0:
                for name in (_NAME, "secure_log_key"):
                    value = store.get(name)
                    assert value in valid, f"torn read of {name}: {len(value)} bytes"
                reads += 1
        finally:
            writer.join(_WAIT)
        assert writer.exitcode == 0
        assert store.get(_NAME) == _value(rounds)

    def test_a_store_opened_before_a_fork_serves_both_sides(
        self, store: KeyStore, request: pytest.FixtureRequest
    ) -> None:
        """The preload pattern (docs/embedding.md): a store opened before ``fork()`` is used
        in the child, and closed in the parent while the child still writes; no write of
        either side is lost, and the child's own ``close()`` leaves the parent's store whole."""
        reopen = self._reopener(request)
        store.create(_NAME, b"before the fork")
        context = multiprocessing.get_context("fork")
        wrote, parent_closed = context.Event(), context.Event()
        child = context.Process(target=_use_after_fork, args=(store, wrote, parent_closed))
        child.start()
        try:
            assert wrote.wait(_WAIT), "the forked child could not use the store it inherited"
            store.put("client2_hmac", b"the parent, after the fork")
            store.close()  # the parent is done; the child goes on
            parent_closed.set()
            child.join(_WAIT)
        finally:
            parent_closed.set()
            child.join(_WAIT)
        assert child.exitcode == 0, (
            "the forked child failed to use the store it inherited, or to write after the "
            "parent closed it: a store must work in a child forked after it was opened (open "
            "connections again when os.getpid() changed, or with os.register_at_fork) and "
            "close() must not destroy what another process still uses (docs/plugins.md, "
            "Writing a key store)"
        )
        again = reopen()
        try:
            assert again.get(_NAME) == b"the child, before the parent closed"
            assert again.get("client2_hmac") == b"the parent, after the fork"
            assert again.get("client3_hmac") == b"the child, after the parent closed"
        finally:
            again.close()


def _use_after_fork(store: KeyStore, wrote: Any, parent_closed: Any) -> None:
    """In the forked child: the inherited store, used before and after the parent closes it."""
    assert store.get(_NAME) == b"before the fork"
    store.put(_NAME, b"the child, before the parent closed")
    wrote.set()
    assert parent_closed.wait(_WAIT)
    store.put("client3_hmac", b"the child, after the parent closed")
    store.close()
