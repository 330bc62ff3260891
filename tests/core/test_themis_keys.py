"""Themis EC key containers: Themis-made keypairs parse, match and re-serialize byte for byte.

The vectors (tests/core/vectors/themis_keypairs.json) were made with the real Themis
(pythemis 0.15 on libthemis built from source) by vectors/make_themis_keypairs.py.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from keyloader.errors import IntegrityError, KeyFormatError
from keyloader.secret import SecretBytes
from keyloader.themis import keys as themis_keys
from keyloader.themis import scell

VECTORS = json.loads((Path(__file__).parent / "vectors" / "themis_keypairs.json").read_text())
PAIRS: list[dict[str, Any]] = VECTORS["keypairs"]
MASTER = bytes.fromhex(VECTORS["master_key"])


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p["public"][24:32])
def test_a_themis_keypair_parses_matches_and_reserializes(pair: dict[str, Any]) -> None:
    private, public = bytes.fromhex(pair["private"]), bytes.fromhex(pair["public"])
    key = themis_keys.load_private(private)
    themis_keys.load_public(public)
    assert themis_keys.public_of(private) == public  # the public half Themis made
    with themis_keys.private_container(key) as again:
        assert again.bytes() == private
    assert themis_keys.public_container(themis_keys.load_public(public)) == public


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p["context"])
def test_a_private_half_sealed_by_themis_opens_with_acras_context(pair: dict[str, Any]) -> None:
    sealed = bytes.fromhex(pair["sealed_private"])
    with scell.decrypt(MASTER, sealed, pair["context"].encode()) as plain:
        assert plain.bytes() == bytes.fromhex(pair["private"])
        assert themis_keys.public_of(plain) == bytes.fromhex(pair["public"])
    with pytest.raises(IntegrityError):
        scell.decrypt(MASTER, sealed, b"another context")


def test_keyloader_containers_have_exactly_themis_layout() -> None:
    for _ in range(20):
        private, public = themis_keys.generate_keypair()
        with private:
            raw = private.bytes()
        for container, tag in ((raw, b"REC2"), (public, b"UEC2")):
            assert len(container) == 45
            found, size = struct.unpack(">4sI", container[:8])
            assert (found, size) == (tag, 45)
            zeroed = container[:8] + b"\0\0\0\0" + container[12:]
            assert container[8:12] == themis_keys.crc32c(zeroed).to_bytes(4, "little")
        assert raw[12] == 0  # the 32-byte scalar left-padded to 33
        assert public[12] in (2, 3)  # SEC1 compressed
        assert themis_keys.public_of(raw) == public


def test_crc32c_is_the_standard_castagnoli_checksum() -> None:
    assert themis_keys.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert themis_keys.crc32c(b"") == 0


@pytest.mark.parametrize("pair", PAIRS[:3], ids=lambda p: p["public"][24:32])
def test_ecdh_between_keyloader_and_themis_keys_agrees_from_both_sides(
    pair: dict[str, Any],
) -> None:
    themis_private = themis_keys.load_private(bytes.fromhex(pair["private"]))
    themis_public = themis_keys.load_public(bytes.fromhex(pair["public"]))
    private, public = themis_keys.generate_keypair()
    with private:
        ours = themis_keys.load_private(private)
    ours_public = themis_keys.load_public(public)
    one = ours.exchange(ec.ECDH(), themis_public)
    other = themis_private.exchange(ec.ECDH(), ours_public)
    assert one == other
    assert len(one) == 32


def _with_checksum(container: bytearray) -> bytes:
    container[8:12] = b"\0\0\0\0"
    container[8:12] = themis_keys.crc32c(container).to_bytes(4, "little")
    return bytes(container)


PRIVATE = bytes.fromhex(PAIRS[0]["private"])
PUBLIC = bytes.fromhex(PAIRS[0]["public"])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: PRIVATE[:20], "45"),
        (lambda: PRIVATE + b"\0", "46 bytes"),
        (lambda: b"REC3" + PRIVATE[4:], "tag 'REC3'"),
        (lambda: PUBLIC, "tag 'UEC2', expected REC2"),
        (lambda: PRIVATE[:11] + bytes([PRIVATE[11] ^ 1]) + PRIVATE[12:], "checksum"),
        (lambda: PRIVATE[:-1] + bytes([PRIVATE[-1] ^ 1]), "checksum"),
        (lambda: _with_checksum(bytearray(PRIVATE[:12] + bytes(33))), "out of range"),
        (lambda: _with_checksum(bytearray(PRIVATE[:12] + b"\xff" * 33)), "out of range"),
        (lambda: b"", "0 bytes"),
    ],
)
def test_malformed_private_containers_are_typed_errors(make: Any, message: str) -> None:
    with pytest.raises(KeyFormatError, match=message) as excinfo:
        themis_keys.load_private(make(), "client1_storage")
    assert str(excinfo.value).startswith("client1_storage:")
    assert PRIVATE[13:].hex() not in str(excinfo.value)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: PRIVATE, "tag 'REC2', expected UEC2"),
        (lambda: _with_checksum(bytearray(PUBLIC[:12] + b"\x04" + PUBLIC[13:])), "compressed"),
        (lambda: _with_checksum(bytearray(PUBLIC[:12] + b"\x02" + b"\xff" * 32)), "not a point"),
        (lambda: PUBLIC[:30], "30 bytes"),
    ],
)
def test_malformed_public_containers_are_typed_errors(make: Any, message: str) -> None:
    with pytest.raises(KeyFormatError, match=message):
        themis_keys.load_public(make(), "client1_storage.pub")


@given(st.one_of(st.binary(max_size=60), st.binary(min_size=33, max_size=33)))
def test_any_bytes_are_a_key_or_a_key_format_error(data: bytes) -> None:
    """Random bytes (and random key bytes in a correct header) load only as valid keys."""
    candidates = [data]
    if len(data) == 33:
        candidates = [
            _with_checksum(bytearray(tag + b"\0\0\0\x2d\0\0\0\0" + data))
            for tag in (b"REC2", b"UEC2")
        ]
    for candidate in candidates:
        for load, tag in ((themis_keys.load_private, b"REC2"), (themis_keys.load_public, b"UEC2")):
            error: KeyFormatError | None = None
            try:
                key = load(candidate)
            except KeyFormatError as exc:
                error = exc
            if error is not None:
                assert len(candidate) < 13 or candidate[12:].hex() not in str(error)
            else:
                assert candidate[:4] == tag
                assert len(candidate) == 45
                assert isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey)


def test_private_containers_come_in_wipeable_buffers() -> None:
    private, _ = themis_keys.generate_keypair()
    assert isinstance(private, SecretBytes)
    assert "REC2" not in repr(private)
    private.wipe()
    assert private.wiped
