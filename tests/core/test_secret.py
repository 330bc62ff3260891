"""SecretBytes: a wipeable buffer that never shows, pickles or hashes its content."""

from __future__ import annotations

import copy
import ctypes
import os
import pickle
import sys

import pytest

from keyloader.secret import SecretBytes, burn, overwrite_bytes


def test_wipe_zeroes_the_buffer_in_place() -> None:
    data = os.urandom(32)
    secret = SecretBytes(data)
    buffer = secret.buffer
    view = memoryview(buffer)  # a live view pins the size: the bytes must still be zeroed
    secret.wipe()
    assert bytes(view) == bytes(32)
    assert secret.wiped
    view.release()
    secret.wipe()  # idempotent, and now also empties the buffer
    assert len(secret) == 0


def test_wipe_empties_the_buffer_when_nothing_pins_it() -> None:
    secret = SecretBytes(os.urandom(16))
    secret.wipe()
    assert len(secret) == 0
    assert not secret


def test_context_manager_wipes_on_exit_and_on_error() -> None:
    with SecretBytes(b"k" * 32) as secret:
        assert secret.bytes() == b"k" * 32
    assert secret.wiped
    with pytest.raises(RuntimeError), SecretBytes(b"k" * 32) as other:
        raise RuntimeError("boom")
    assert other.wiped


def test_copies_its_input_and_adopt_moves_it_into_secret_pages() -> None:
    source = bytearray(b"abcdefgh")
    copied = SecretBytes(source)
    source[0] = 0
    assert copied.bytes() == b"abcdefgh"
    adopted = SecretBytes.adopt(source)
    assert source == bytes(8)  # the heap copy is zeroed at once
    assert adopted.bytes() == b"\x00bcdefgh"
    adopted.wipe()
    assert len(adopted) == 0


def test_repr_and_str_show_only_the_length() -> None:
    data = b"super secret key material 123456"
    secret = SecretBytes(data)
    for text in (repr(secret), str(secret), f"{secret}", f"{secret!r}"):
        assert "32 bytes" in text
        assert "secret key" not in text
        assert data.hex() not in text


def test_pickling_is_refused() -> None:
    secret = SecretBytes(b"x" * 32)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(secret, protocol=protocol)


def test_not_hashable_and_equality() -> None:
    a = SecretBytes(b"same-bytes")
    with pytest.raises(TypeError):
        hash(a)
    assert a == SecretBytes(b"same-bytes")
    assert a == b"same-bytes"
    assert a == bytearray(b"same-bytes")
    assert a != SecretBytes(b"other-byte")
    assert a != b"same-bytes-longer"
    assert (a == "same-bytes") is False  # text is never equal to key bytes


def test_views_and_copies() -> None:
    secret = SecretBytes(b"0123456789")
    view = secret.view
    assert view.readonly
    assert bytes(view) == b"0123456789"
    view.release()
    duplicate = copy.deepcopy(secret)
    assert duplicate == secret
    assert duplicate.buffer is not secret.buffer
    assert copy.copy(secret).buffer is not secret.buffer


def test_zeroed_allocates_a_fillable_buffer() -> None:
    secret = SecretBytes.zeroed(12)
    assert secret.bytes() == bytes(12)
    secret.buffer[:3] = b"abc"
    assert secret.bytes().startswith(b"abc")


def test_a_lease_keeps_the_bytes_alive_and_read_only_until_both_let_go() -> None:
    owner = SecretBytes(b"k" * 32)
    slot = owner.buffer[:]  # a derived view: reads the slot after it is given back
    lease = owner.lease()
    assert lease == b"k" * 32
    assert lease.buffer.readonly
    del owner  # the cache dropped its entry: the lease still holds the key
    assert lease.bytes() == b"k" * 32
    assert slot == b"k" * 32
    lease.wipe()
    assert lease.wiped
    assert len(lease) == 0
    assert slot == bytes(32)  # no holder left: zeroed


def test_detach_copies_a_lease_and_returns_an_owned_key_itself() -> None:
    owner = SecretBytes(b"k" * 32)
    owned = owner.lease().detach()
    owner.wipe()
    assert owned.bytes() == b"k" * 32
    assert owned.detach() is owned
    owned.wipe()


def test_what_is_derived_from_a_key_is_made_once_and_wiped_with_it() -> None:
    made: list[SecretBytes] = []

    def derive(key: SecretBytes) -> tuple[bytes, SecretBytes]:
        made.append(SecretBytes(bytes(reversed(key.bytes()))))
        return b"id", made[-1]

    key = SecretBytes(os.urandom(32))
    lease = key.lease()
    first = lease._derived("label", derive)
    assert key._derived("label", derive) is first  # the lease asked its owner
    assert len(made) == 1
    assert first[1] == bytes(reversed(key.bytes()))
    lease.wipe()
    with pytest.raises(ValueError, match="let go"):
        lease._derived("label", derive)
    assert not made[0].wiped  # letting a lease go keeps the owner's
    key.wipe()
    assert made[0].wiped
    assert len(made[0]) == 0


@pytest.mark.skipif(sys.implementation.name != "cpython", reason="CPython's bytes layout")
def test_overwrite_bytes_overwrites_exactly_the_payload() -> None:
    value = bytes(bytearray(os.urandom(48)))  # a new object, referenced here only
    header = sys.getsizeof(b"") - 1
    address = id(value)
    assert ctypes.string_at(address + header, len(value)) == value  # the offset is the payload
    assert ctypes.string_at(address + header + len(value), 1) == b"\0"  # and its NUL follows
    before = ctypes.string_at(address + 8, header - 8)  # type, size, hash: all but the refcount
    assert overwrite_bytes(value)
    assert value == bytes(48)
    assert len(value) == 48
    assert ctypes.string_at(address + 8, header - 8) == before
    assert ctypes.string_at(address + header + 48, 1) == b"\0"


def test_overwrite_bytes_refuses_shared_singletons_and_other_types() -> None:
    for value in (b"", b"a"):
        assert not overwrite_bytes(value)
    assert bytes([97]) == b"a"
    for other in (bytearray(b"abc"), "abc"):
        assert not overwrite_bytes(other)  # type: ignore[arg-type]


@pytest.mark.skipif(sys.implementation.name != "cpython", reason="CPython's bytes layout")
@pytest.mark.parametrize("size", [2, 32, 256, 257, 5000])
def test_burn_zeroes_the_payload_of_a_fresh_object_of_any_size(size: int) -> None:
    value = os.urandom(size)  # up to 256 bytes through the address-space view, then memset
    header = sys.getsizeof(b"") - 1
    address = id(value)
    burn(value)
    assert ctypes.string_at(address + header, size + 1) == bytes(size + 1)
    assert len(value) == size


def test_burn_leaves_an_object_that_something_else_holds() -> None:
    value = os.urandom(32)
    kept = [value]  # another holder: burning would change what it sees
    burn(value)
    assert kept[0] == value
    assert value != bytes(32)
