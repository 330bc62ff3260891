"""Acra keystore v2 rings, read from the files Acra's own Go code wrote.

Every ring of both fixture stores (one written under UTC, one under TZ=Asia/Kolkata with
a destroyed key and an empty ring) parses, its signature verifies, every key decrypts to
the plaintext the manifest records, and writing the parsed ring again gives Acra's bytes
exactly. Then the bad input Acra's reader refuses, each a RingFormatError naming the ring.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Callable
from typing import Any

import pytest

from keyloader.errors import IntegrityError, RingFormatError
from keyloader.keyrings import der
from keyloader.keyrings import format as rings_format

from ..acrav2 import STORES, master_pair, rings

CASES = [(which, ring) for which in STORES for ring in rings(which)]
PATH = "client/client1/storage-sym"


def _case_id(value: object) -> str:
    return value if isinstance(value, str) else str(value["path"])  # type: ignore[index]


def _read(which: str, ring: dict[str, Any]) -> bytes:
    return (STORES[which] / ring["file"]).read_bytes()


@pytest.mark.parametrize(("which", "ring"), CASES, ids=_case_id)
def test_acra_rings_read_back_with_the_manifests_keys(which: str, ring: dict[str, Any]) -> None:
    encryption, signature = master_pair(which)
    parsed = rings_format.open_ring(_read(which, ring), ring["path"], signature)
    assert parsed.purpose == ring["path"]
    assert parsed.current == ring["current"]
    assert [key.seqnum for key in parsed.keys] == [key["seqnum"] for key in ring["keys"]]
    for key, described in zip(parsed.keys, ring["keys"], strict=True):
        assert key.state == described["state"]
        assert [form.format for form in key.data] == (described.get("formats") or [])
        for field, private in (("symmetric_key", False), ("private_key", True)):
            if field in described:
                with rings_format.unseal_key(encryption, ring["path"], key, private=private) as k:
                    assert k.bytes() == base64.b64decode(described[field])
        if "public_key" in described:
            assert key.data[0].public == base64.b64decode(described["public_key"])
        if key.destroyed:
            assert key.data == ()
            with pytest.raises(RingFormatError, match="destroyed"):
                rings_format.unseal_key(encryption, ring["path"], key, private=False)


@pytest.mark.parametrize(("which", "ring"), CASES, ids=_case_id)
def test_a_parsed_ring_is_written_back_as_acras_bytes(which: str, ring: dict[str, Any]) -> None:
    _, signature = master_pair(which)
    data = _read(which, ring)
    container = rings_format.parse_container(data, ring["path"])
    parsed = rings_format.parse_ring(container.data, ring["path"])
    again = rings_format.encode_container(
        container.content_type,
        container.last_modified,
        rings_format.encode_ring(parsed),
        [signature],
        rings_format.ring_signature_context(ring["path"]),
    )
    assert again == data


def test_the_edge_store_has_local_times_a_destroyed_key_and_an_empty_ring() -> None:
    _, signature = master_pair("edge")
    found = {ring["path"]: ring for ring in rings("edge")}
    poison = found["poison-record"]
    empty = rings_format.open_ring(_read("edge", poison), "poison-record", signature)
    assert empty.keys == ()
    assert empty.current == rings_format.NO_KEY
    hmac_path = "client/edge-client/hmac-sym"
    hmac_ring = rings_format.open_ring(_read("edge", found[hmac_path]), hmac_path, signature)
    assert hmac_ring.keys[0].destroyed
    offset = hmac_ring.keys[0].valid_since.utcoffset()
    assert offset is not None
    assert offset.total_seconds() == 5.5 * 3600


# -- what Acra's reader refuses ------------------------------------------------------------


def _acra_ring() -> bytes:
    return _read("main", next(ring for ring in rings() if ring["path"] == PATH))


def _refused(data: bytes, path: str = PATH, match: str | None = None) -> None:
    _, signature = master_pair()
    with pytest.raises(RingFormatError, match=match) as caught:
        rings_format.open_ring(data, path, signature)
    assert path in str(caught.value)


def _content_start(whole: bytes) -> int:
    return 2 if whole[1] < 0x80 else 2 + (whole[1] & 0x7F)


def _resigned(mutate: Callable[[bytes], bytes], *, whole: bool = False) -> bytes:
    """Acra's ring with its payload changed by ``mutate`` and signed again with the right
    key, so only the encoding is wrong. ``mutate`` gets the payload's content (its header
    is rebuilt), or with ``whole`` the payload's whole TLV."""
    _, signature = master_pair()
    payload = bytes(rings_format.parse_container(_acra_ring(), PATH).payload)
    if whole:
        payload = mutate(payload)
    else:
        payload = der.encode(der.SEQUENCE, mutate(payload[_content_start(payload) :]))
    context = rings_format.ring_signature_context(PATH)
    digest = hmac.digest(signature.buffer, context + b": " + payload, "sha256")
    signed = der.encode(
        der.SEQUENCE,
        der.encode_oid(rings_format.SHA256_OID),
        der.encode(der.OCTET_STRING, digest),
    )
    return der.encode(der.SEQUENCE, payload, der.encode_set([signed]))


def test_every_bit_flip_is_refused() -> None:
    data = _acra_ring()
    for index in range(len(data)):
        for bit in (0x01, 0x80):
            changed = bytearray(data)
            changed[index] ^= bit
            _refused(bytes(changed))


def test_every_truncation_and_trailing_bytes_are_refused() -> None:
    data = _acra_ring()
    for size in range(len(data)):
        _refused(data[:size])
    _refused(data + b"\x00", match="after the last value")


def test_a_ring_copied_to_another_path_or_signed_by_another_key_is_refused() -> None:
    _refused(_acra_ring(), "client/billing 2-x/storage-sym", match="signature")
    encryption, _ = master_pair()
    with pytest.raises(RingFormatError, match="signature"):
        rings_format.open_ring(_acra_ring(), PATH, encryption)


def test_the_resigned_ring_itself_is_accepted() -> None:
    _, signature = master_pair()
    unchanged = _resigned(lambda content: content)
    assert rings_format.open_ring(unchanged, PATH, signature).purpose == PATH


def test_enumerated_where_acra_writes_integer_is_refused() -> None:
    # the payload's content starts with contentType: 02 01 01
    _refused(_resigned(lambda c: b"\x0a" + c[1:]), match="expected INTEGER, found ENUMERATED")


def test_indefinite_non_minimal_and_huge_lengths_are_refused() -> None:
    _refused(_resigned(lambda c: b"\x02\x81\x01" + c[2:]), match="shortest form")
    _refused(
        _resigned(lambda w: b"\x30\x80" + w[_content_start(w) :] + b"\x00\x00", whole=True),
        match="indefinite",
    )
    _refused(
        _resigned(lambda w: b"\x30\x84\x7f\xff\xff\xff" + w[_content_start(w) :], whole=True),
        match="past the end",
    )


def test_an_unknown_content_type_or_version_is_refused() -> None:
    _refused(_resigned(lambda c: b"\x02\x01\x07" + c[3:]), match="content type")
    _refused(_resigned(lambda c: c[:3] + b"\x02\x01\x03" + c[6:]), match="version")
    assert issubclass(RingFormatError, IntegrityError)


def test_der_integers_and_object_identifiers_round_trip() -> None:
    for value in (0, 1, -1, 127, 128, 255, 256, -128, -129, 2**31, -(2**31)):
        encoded = der.encode_integer(value)
        assert der.Reader(encoded, "x").integer("n") == value
    for dotted in ("2.16.840.1.101.3.4.2.1", "1.2.3", "2.999.1"):
        assert der.Reader(der.encode_oid(dotted), "x").oid("oid") == dotted
    with pytest.raises(RingFormatError, match="shortest form"):
        der.Reader(b"\x02\x02\x00\x01", "x").integer("n")
    with pytest.raises(RingFormatError, match="shortest form"):
        der.Reader(b"\x02\x02\xff\xff", "x").integer("n")
