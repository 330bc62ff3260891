"""The random pool data keys and ivs come from, and the cache's borrowed keys."""

from __future__ import annotations

import os
import threading

import pytest

from keyloader import datakeys
from keyloader.keycache import KeyCache
from keyloader.secret import SecretBytes


def draws(count: int) -> list[bytes]:
    out = []
    with SecretBytes.zeroed(32) as slot:
        for _ in range(count):
            datakeys.draw(slot.buffer)
            out.append(slot.buffer.tobytes())
    return out


def fresh_ivs() -> bytes:
    with SecretBytes.zeroed(1) as slot:
        return datakeys.draw(slot.buffer, 12)


def test_the_pool_hands_out_each_byte_once_and_zeroes_it_then() -> None:
    count = 3 * datakeys.POOL_SIZE // 32  # three refills
    keys = draws(count)
    assert len(set(keys)) == count
    assert bytes(32) not in keys
    with SecretBytes.zeroed(32) as slot:
        pairs = [(datakeys.draw(slot.buffer, 24), slot.buffer.tobytes()) for _ in range(100)]
    assert len({ivs for ivs, _ in pairs}) == 100
    assert all(len(ivs) == 24 for ivs, _ in pairs)
    assert not {ivs[:12] for ivs, _ in pairs} & {ivs[12:] for ivs, _ in pairs}
    assert not {key for _, key in pairs} & set(keys)
    pool = datakeys._pool()
    assert pool.next > 0
    assert not any(pool.bytes.buffer[: pool.next]), "bytes handed out are still in the pool"


def test_each_thread_draws_from_a_pool_of_its_own() -> None:
    seen: dict[str, list[bytes]] = {}

    def run(name: str) -> None:
        seen[name] = draws(50)

    threads = [threading.Thread(target=run, args=(f"t{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [key for keys in seen.values() for key in keys]
    assert len(set(every)) == len(every) == 200


def test_a_forked_child_never_draws_what_its_parent_draws() -> None:
    draws(1)  # the parent's pool exists, with bytes not yet handed out
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        try:
            os.close(read_end)
            os.write(write_end, b"".join(draws(4)) + fresh_ivs())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        child = pipe.read()
    os.waitpid(pid, 0)
    parent = b"".join(draws(4)) + fresh_ivs()
    assert len(child) == len(parent) == 4 * 32 + 12
    assert child != parent
    # the parent's pages read as zeroes in a child: without a pool of its own, zero keys
    assert bytes(32) not in {child[n : n + 32] for n in range(0, 128, 32)}


def test_peek_lends_the_cached_key_itself_while_it_is_valid() -> None:
    cache = KeyCache(size=2, ttl=0)
    key = SecretBytes(os.urandom(32))
    lease = cache.put(("a", None), 1, key)
    lease.wipe()
    assert cache.peek(("a", None), 1) is key
    assert cache.peek(("a", None), 2) is None  # another revision: stale
    assert cache.peek(("a", None), None) is None  # no token: nothing to trust
    assert cache.peek(("b", None), 1) is None
    cache.put(("b", None), 1, SecretBytes(os.urandom(32))).wipe()
    assert cache.peek(("a", None), 1) is key  # a is now the most recent
    cache.put(("c", None), 1, SecretBytes(os.urandom(32))).wipe()
    assert cache.peek(("b", None), 1) is None  # so b, not a, was evicted
    assert cache.peek(("a", None), 1) is key
    held = cache.peek(("a", None), 1)
    cache.drop()
    assert held is key
    assert not key.wiped  # holding it keeps its bytes, as a lease does
    cache.close()


def test_a_draw_inside_a_draw_never_shares_or_zeroes_pool_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A signal handler that encrypts runs between two bytecodes of this thread's own draw:
    here, right after the outer draw took the pool's last bytes, when the inner draw would
    refill the pool in place under the outer one's view."""
    pool = datakeys._pool()
    pool.next = datakeys.POOL_SIZE - 56  # the outer draw takes the last 56 bytes
    inner: list[bytes] = []
    take = datakeys._Pool.take

    def interrupted(self: datakeys._Pool, size: int) -> memoryview:
        view = take(self, size)
        if not inner:  # the "signal handler", once
            with SecretBytes.zeroed(32) as slot:
                inner.append(datakeys.draw(slot.buffer, 24) + slot.buffer.tobytes())
        return view

    monkeypatch.setattr(datakeys._Pool, "take", interrupted)
    with SecretBytes.zeroed(32) as slot:
        outer = datakeys.draw(slot.buffer, 24) + slot.buffer.tobytes()
    monkeypatch.undo()
    assert inner
    assert outer != inner[0]
    assert bytes(24) not in (outer[:24], inner[0][:24])
    later = draws(datakeys.POOL_SIZE // 32)  # once round the pool: no byte handed out zeroed
    assert bytes(32) not in later
    assert outer[24:] not in later
