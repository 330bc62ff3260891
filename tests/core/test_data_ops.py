"""Acra's data containers through the engine: every store, every malformed input.

The store-independent checks are tests/datachecks.py (run here on the filesystem
and memory stores, and on Redis in tests/redis). Below them: the format's edges,
checked byte by byte (every truncation, every bit flip, the inputs that crash
Acra's own Go code), each one :class:`DecryptionError` naming the key id and never
the data.
"""

from __future__ import annotations

import array
import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keyloader import datakeys, freshbytes
from keyloader.containers import acrablock, acrastruct, envelope, searchable
from keyloader.errors import ConfigError, DecryptionError, IntegrityError
from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader.secret import SecretBytes
from keyloader.stores import MemoryKeyStore
from keyloader.stores.filesystem import FilesystemKeyStore

from ..datachecks import STORAGE, SYM, DataOperationsChecks, count_unseals

__all__ = ["count_unseals"]  # a fixture the checks use

ROW = b"a secret row: 4111-1111"


class TestDataOnFilesystem(DataOperationsChecks):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[FilesystemKeyStore]:
        fs = FilesystemKeyStore({"keys_dir": tmp_path / "keys"})
        yield fs
        fs.close()


class TestDataOnMemory(DataOperationsChecks):
    @pytest.fixture
    def store(self) -> Iterator[MemoryKeyStore]:
        memory = MemoryKeyStore({})
        yield memory
        memory.close()


@pytest.fixture(scope="module")
def keys() -> Iterator[KeyManager]:
    with generate_master_key() as key:
        manager = KeyManager(MemoryKeyStore({}), MasterKey(SecretBytes(key.encryption.buffer)))
        manager.generate(["symmetric", "searchable", "storage"], client_id="client1")
        manager.generate(["poison-record", "poison-record-symmetric"])
        with manager:
            yield manager


def _refused(keys: KeyManager, key_id: str, value: bytes, **kwargs: object) -> None:
    with pytest.raises(DecryptionError) as failed:
        keys.decrypt(key_id, value, **kwargs)  # type: ignore[arg-type]
    message = str(failed.value)
    assert key_id in message
    assert ROW.decode() not in message
    assert value.hex()[:16] not in message


@pytest.mark.parametrize("key_id", [SYM, STORAGE])
@pytest.mark.parametrize("wrapped", [True, False], ids=["enveloped", "bare"])
def test_every_truncation_is_refused(keys: KeyManager, key_id: str, wrapped: bool) -> None:
    value = keys.encrypt(key_id, ROW, envelope=wrapped)
    for size in range(1, len(value)):
        _refused(keys, key_id, value[:size])
    assert keys.decrypt(key_id, value) == ROW


@pytest.mark.parametrize("key_id", [SYM, STORAGE])
@pytest.mark.parametrize("wrapped", [True, False], ids=["enveloped", "bare"])
def test_every_bit_flip_is_refused(keys: KeyManager, key_id: str, wrapped: bool) -> None:
    value = bytearray(keys.encrypt(key_id, ROW, envelope=wrapped))
    for position in range(len(value)):
        for bit in range(8):
            value[position] ^= 1 << bit
            _refused(keys, key_id, bytes(value))
            value[position] ^= 1 << bit
    assert keys.decrypt(key_id, bytes(value)) == ROW


def test_every_bit_flip_of_a_searchable_hash_is_refused(keys: KeyManager) -> None:
    value = bytearray(keys.encrypt(SYM, ROW, searchable=True))
    for position in range(searchable.HASH_SIZE):
        for bit in range(8):
            value[position] ^= 1 << bit
            _refused(keys, SYM, bytes(value), searchable=True)
            value[position] ^= 1 << bit


def test_bytes_after_an_acrablock_are_ignored_as_acra_does(keys: KeyManager) -> None:
    bare = keys.encrypt(SYM, ROW, envelope=False)
    assert keys.decrypt(SYM, bare + b"trailing") == ROW
    wrapped = keys.encrypt(SYM, ROW)
    assert keys.decrypt(SYM, wrapped + b"trailing") == ROW


def test_bytes_after_an_acrastruct_are_refused_as_acra_does(keys: KeyManager) -> None:
    _refused(keys, STORAGE, keys.encrypt(STORAGE, ROW, envelope=False) + b"x")


def _block(rest: int, key_size: int, body: bytes = b"") -> bytes:
    return struct.pack("<4sQB2sBH", b'""""', rest, 0, b"\0\0", 0, key_size) + body


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(_block(rest, 76, bytes(200)), id=f"rest-{rest}")
        for rest in range(14)  # Go: any rest length under 14 runs past the block
    ]
    + [
        pytest.param(_block(214, 0xFFFF, bytes(200)), id="data-key-length-ffff"),
        pytest.param(_block(14 + 77, 77, bytes(77)), id="data-key-77-no-data-cell"),
        pytest.param(_block(2**63, 76, b"\0"), id="rest-2^63-19-bytes"),
        pytest.param(_block(2**64 - 1, 76, b"\0"), id="rest-2^64-1"),
        pytest.param(_block(2**64 - 4, 76, bytes(200)), id="rest-wraps-past-the-tag"),
        pytest.param(b"%%%" + struct.pack("<Q", 2**63) + b"\xf0" + _block(214, 76), id="env-2^63"),
        pytest.param(b"%%%" + struct.pack("<Q", 3) + b"\xf0" + _block(214, 76), id="env-short"),
        pytest.param(b"%%%" + struct.pack("<Q", 40) + b"\xf7" + bytes(40), id="env-unknown-id"),
        pytest.param(b'""""', id="tag-only"),
    ],
)
def test_acrablocks_that_crash_acras_go_code_are_refused(keys: KeyManager, value: bytes) -> None:
    assert len(value) >= 4
    _refused(keys, SYM, value)


def test_an_acrastruct_length_of_2_63_is_refused(keys: KeyManager) -> None:
    value = bytearray(keys.encrypt(STORAGE, ROW, envelope=False))
    struct.pack_into("<Q", value, acrastruct.MIN_SIZE - 8, 2**63)
    _refused(keys, STORAGE, bytes(value))


def test_a_searchable_value_without_its_prefix_is_refused(keys: KeyManager) -> None:
    for value in (b"\x7e" + bytes(32) + keys.encrypt(SYM, ROW), b"\x7f" * 33, b"\x7f"):
        _refused(keys, SYM, value, searchable=True)


@pytest.mark.parametrize(
    ("make", "parse"),
    [(acrablock.encrypt, acrablock.parse), (None, acrastruct.parse)],
    ids=["acrablock", "acrastruct"],
)
def test_parsers_refuse_every_short_prefix(
    keys: KeyManager, make: Callable[..., bytes] | None, parse: Callable[[memoryview], object]
) -> None:
    kind = SYM if make is not None else STORAGE
    value = keys.encrypt(kind, ROW, envelope=False)
    for size in range(len(value) - 1):
        with pytest.raises(IntegrityError):
            parse(memoryview(value[:size]))


@settings(max_examples=60, deadline=None)
@given(data=st.binary(min_size=1, max_size=300), context=st.none() | st.binary(max_size=40))
def test_acrablocks_round_trip_at_the_format_level(data: bytes, context: bytes | None) -> None:
    key = bytearray(range(32))
    with acrablock.Kek(key, context) as kek, acrablock.Kek(bytearray(32), context) as wrong:
        value = acrablock.encrypt(kek, data)
        block = acrablock.parse(memoryview(value))
        assert block.key_id == acrablock.key_id(key, context or b"")
        assert block.decrypt([wrong, kek]) == data  # a wrong key first
    assert len(value) == acrablock.MIN_SIZE + 76 + 44 + len(data)


@settings(max_examples=25, deadline=None)
@given(data=st.binary(min_size=1, max_size=300), context=st.none() | st.binary(max_size=40))
def test_acrastructs_round_trip_at_the_format_level(data: bytes, context: bytes | None) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    value = acrastruct.encrypt(private.public_key(), data, context)
    assert len(value) == acrastruct.MIN_SIZE + 44 + len(data)
    assert acrastruct.parse(memoryview(value)).decrypt(private, context) == data


@settings(max_examples=100, deadline=None)
@given(noise=st.binary(max_size=400))
def test_random_bytes_never_decrypt_and_never_crash(keys: KeyManager, noise: bytes) -> None:
    for key_id in (SYM, STORAGE):
        for value in (noise, b'""""' + noise, b'"' * 8 + noise, b"%%%" + noise):
            if value:
                with pytest.raises(DecryptionError):
                    keys.decrypt(key_id, value)
        assert keys.is_poison_record(noise) is False


def test_the_envelope_header_is_acras(keys: KeyManager) -> None:
    for key_id, envelope_id in ((SYM, 0xF0), (STORAGE, 0xF1)):
        value = keys.encrypt(key_id, ROW)
        assert value[:3] == b"%%%"
        assert struct.unpack_from("<Q", value, 3)[0] == len(value)
        assert value[11] == envelope_id
        bare = keys.encrypt(key_id, ROW, envelope=False)
        assert len(value) == len(bare) + 12


def test_an_acrablock_header_is_acras(keys: KeyManager) -> None:
    value = keys.encrypt(SYM, ROW, envelope=False)
    tag, rest, kek, key_id, data_backend, key_size = struct.unpack_from("<4sQB2sBH", value)
    assert (tag, rest, kek, data_backend, key_size) == (b'""""', len(value) - 4, 0, 0, 76)
    with keys.use(SYM) as key:
        assert key_id == acrablock.key_id(key.buffer)


def test_an_acrastruct_header_is_acras(keys: KeyManager) -> None:
    value = keys.encrypt(STORAGE, ROW, envelope=False)
    assert value[:8] == b'"' * 8
    assert value[8:12] == b"UEC2"
    assert value[53:57] == b"\x20\x27\x04\x26"  # Secure Message: encrypted, little-endian
    assert struct.unpack_from("<I", value, 57)[0] == 84
    assert struct.unpack_from("<Q", value, 137)[0] == len(value) - 145


def test_the_bulk_forms_give_one_result_per_value_in_order(keys: KeyManager) -> None:
    values = [b"row %d" % n for n in range(50)]
    for key_id in (SYM, STORAGE):
        sealed = keys.encrypt_many(key_id, iter(values), searchable=True)
        assert len(set(sealed)) == 50
        assert keys.decrypt_many(key_id, sealed, searchable=True) == values
        assert keys.decrypt_many(key_id, []) == []
        with pytest.raises(DecryptionError):
            keys.decrypt_many(key_id, [*sealed[:3], b"not a value"], searchable=True)


def test_envelope_wrap_refuses_an_unknown_id() -> None:
    with pytest.raises(ValueError, match="unknown envelope id"):
        envelope.wrap(b"x", 0x42)


@pytest.mark.parametrize("size", [acrablock.LARGE - 1, acrablock.LARGE, (1 << 20) + 3])
@pytest.mark.parametrize("context", [None, b"row-17"])
def test_large_blocks_are_written_in_place_with_the_same_layout(
    keys: KeyManager, size: int, context: bytes | None
) -> None:
    data = os.urandom(size)
    value = keys.encrypt(SYM, data, context=context)
    assert type(value) is bytes
    assert len(value) == envelope.HEADER_SIZE + acrablock.MIN_SIZE + 76 + 44 + size
    assert keys.decrypt(SYM, value, context=context) == data
    _found, inner = envelope.unwrap(memoryview(value))
    block = acrablock.parse(inner)
    with keys.read(SYM) as key, acrablock.Kek(key.bytes(), context) as kek:
        assert block.decrypt([kek]) == data  # a KEK derived here, not the cached one


def test_fresh_bytes_are_filled_through_their_view() -> None:
    value, view = freshbytes.fresh(5)
    with view:
        view[:] = b"hello"
    assert value == b"hello"
    assert type(value) is bytes
    with pytest.raises(ValueError, match="size of 2"):
        freshbytes.fresh(1)


def test_a_cached_key_derives_its_kek_once_and_the_data_key_slot_is_zeroed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    derive = acrablock._derive_kek

    def counted(key: SecretBytes) -> tuple[bytes, SecretBytes]:
        calls.append(1)
        return derive(key)

    monkeypatch.setattr(acrablock, "_derive_kek", counted)
    with generate_master_key() as master:
        manager = KeyManager(MemoryKeyStore({}), MasterKey(SecretBytes(master.encryption.buffer)))
        manager.generate(["symmetric"], client_id="client1")
        with manager:
            values = [manager.encrypt(SYM, ROW) for _ in range(5)]
            assert [manager.decrypt(SYM, value) for value in values] == [ROW] * 5
            assert len(calls) == 1  # made with the cached key, kept with it
            assert manager.encrypt(SYM, ROW, context=b"ctx")  # a context: not kept
            assert len(calls) == 1
            scratch = datakeys.take_scratch()
            assert scratch.buffer.tobytes() == bytes(32)  # the last data key is gone
            datakeys.give_back(scratch)
    uncached = KeyManager(MemoryKeyStore({}), MasterKey(SecretBytes(os.urandom(32))), cache_size=0)
    uncached.generate(["symmetric"], client_id="client1")
    with uncached:
        assert uncached.decrypt(SYM, uncached.encrypt(SYM, ROW)) == ROW
    assert len(calls) == 3  # without a cache: derived per call, wiped with the key


@pytest.mark.parametrize("key_id", [SYM, STORAGE])
def test_views_of_any_contiguous_shape_are_their_bytes_and_strided_ones_are_refused(
    keys: KeyManager, key_id: str
) -> None:
    words = array.array("I", range(1, 9))  # 32 bytes in 8 items
    rows = memoryview(bytearray(b"0123456789ab")).cast("B", (3, 4))  # 12 bytes in 3 rows
    for view, plain in ((memoryview(words), words.tobytes()), (rows, rows.tobytes())):
        value = keys.encrypt(key_id, view)
        assert keys.decrypt(key_id, value) == plain
        assert keys.decrypt(key_id, memoryview(value).cast("B", (1, len(value)))) == plain
    strided = memoryview(bytearray(b"abcdefgh"))[::2]
    with pytest.raises(ConfigError, match="contiguous"):
        keys.encrypt(key_id, strided)
    with pytest.raises(ConfigError, match="contiguous"):
        keys.decrypt(key_id, memoryview(keys.encrypt(key_id, b"abcd") * 2)[::2])


def test_a_decryption_interrupted_by_another_on_its_thread_still_opens(
    keys: KeyManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The common case opens data keys in one slot per thread. A decryption that runs inside
    another (a signal handler's) changes the key under the interrupted one, whose AES-GCM
    check then fails: it must take the general path and still return its own plaintext."""
    from keyloader.themis import scell

    outer, inner = keys.encrypt(SYM, b"outer row"), keys.encrypt(SYM, b"inner row")
    derive = scell._hmac
    nested: list[bytes] = []
    calls = [0]

    def interrupted(key: object, message: bytes, digest: str) -> bytes:
        calls[0] += 1
        if calls[0] == 1:  # the "signal handler": right after the outer's data key was opened
            nested.append(keys.decrypt(SYM, inner))
        return derive(key, message, digest)  # type: ignore[arg-type]

    general: list[int] = []
    open_block = datakeys.OpenedKeys.open_block

    def counted(self: datakeys.OpenedKeys, *args: object) -> bytes:
        general.append(1)
        return open_block(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(scell, "_hmac", interrupted)
    monkeypatch.setattr(datakeys.OpenedKeys, "open_block", counted)
    assert keys.decrypt(SYM, outer) == b"outer row"
    assert nested == [b"inner row"]
    assert general == [1]  # the outer one, whose data key the inner one changed
    monkeypatch.undo()
    assert not any(datakeys.opening_slot()), "a data key was left in the slot"
