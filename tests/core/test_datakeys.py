"""Data keys and ivs: one CSPRNG read, the key into secret pages, the heap copy burnt."""

from __future__ import annotations

import ctypes
import os
import sys

import pytest

from keyloader import datakeys
from keyloader.containers import acrablock
from keyloader.keycache import KeyCache
from keyloader.secret import SecretBytes
from keyloader.themis import scell

PATTERN = bytes(range(1, 57))


def test_a_draw_puts_the_key_in_its_slot_and_hands_out_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drawn: list[tuple[int, int]] = []

    def known(size: int) -> bytes:
        value = bytes(bytearray(PATTERN[:size]))  # a new object each time, as urandom's
        drawn.append((id(value), size))
        return value

    monkeypatch.setattr(datakeys.os, "urandom", known)
    with SecretBytes.zeroed(32) as slot:
        ivs = datakeys.draw(slot.buffer, 24)
        assert slot.buffer.tobytes() == PATTERN[:32]
        assert ivs == PATTERN[32:]
        if sys.implementation.name == "cpython":  # the heap copy was zeroed before it was freed
            address, size = drawn[0]
            payload = ctypes.string_at(address + sys.getsizeof(b"") - 1, size)
            assert PATTERN[:32] not in payload


def test_draws_are_fresh_each_time() -> None:
    with SecretBytes.zeroed(32) as slot:
        pairs = [(datakeys.draw(slot.buffer, 24), slot.buffer.tobytes()) for _ in range(200)]
    keys = {key for _, key in pairs}
    ivs = {iv for iv, _ in pairs}
    assert len(keys) == len(ivs) == 200
    assert bytes(32) not in keys


def test_a_block_uses_the_ivs_where_its_cells_have_them_and_never_the_key() -> None:
    with SecretBytes(os.urandom(32)) as key, SecretBytes.zeroed(32) as data_key:
        kept = acrablock.kept_kek(key)
        ivs = datakeys.draw(data_key.buffer, 2 * scell.IV_SIZE)
        block = acrablock.seal_kept(kept, b"row", data_key.buffer, ivs, enveloped=False)
        key_cell = acrablock.MIN_SIZE
        data_cell = key_cell + scell.HEADER_SIZE + 32
        assert block[key_cell + 16 : key_cell + 28] == ivs[:12]
        assert block[data_cell + 16 : data_cell + 28] == ivs[12:]
        assert data_key.buffer.tobytes() not in block
        with acrablock.Kek.of(key) as kek:
            assert acrablock.parse(memoryview(block)).decrypt([kek]) == b"row"


def test_peek_lends_the_cached_key_itself_while_it_is_valid() -> None:
    cache = KeyCache(size=2, ttl=0)
    key = SecretBytes(os.urandom(32))
    cache.put(("a", None), 1, key).wipe()
    assert cache.peek(("a", None), 1) is key
    assert cache.peek(("a", None), 2) is None  # another revision: stale
    assert cache.peek(("a", None), None) is None  # no token: nothing to trust
    assert cache.peek(("b", None), 1) is None
    cache.put(("b", None), 1, SecretBytes(os.urandom(32))).wipe()
    assert cache.peek(("a", None), 1) is key  # a is now the most recent
    cache.put(("c", None), 1, SecretBytes(os.urandom(32))).wipe()
    assert cache.peek(("b", None), 1) is None  # so b, not a, was evicted
    assert cache.peek(("a", None), 1) is key
    cache.close()
    assert key.wiped  # close() wipes every entry, borrowed or not
