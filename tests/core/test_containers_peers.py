"""Acra's data containers against the peers that define them.

tests/core/vectors/acra_containers.json was made by vectors/make_acra_containers.py
with Acra's own Python ``acrawriter`` (PyPI) and pythemis on libthemis built from
source: AcraStructs, Secure Messages and Secure Cells keyloader must open. The other
direction, keyloader-made values opened by the peers, is
vectors/keyloader_containers.json: made by vectors/make_keyloader_containers.py and
checked with ``make_acra_containers.py --check`` (its output is recorded in the file).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from keyloader.containers import acrablock, acrastruct, envelope
from keyloader.errors import IntegrityError
from keyloader.themis import keys as themis_keys
from keyloader.themis import scell, smessage

VECTORS = Path(__file__).parent / "vectors"
PEER: dict[str, Any] = json.loads((VECTORS / "acra_containers.json").read_text())
OURS: dict[str, Any] = json.loads((VECTORS / "keyloader_containers.json").read_text())
PAIRS = PEER["storage_keypairs"]


def _hex(value: str | None) -> bytes | None:
    return None if value is None else bytes.fromhex(value)


@pytest.mark.parametrize("case", PEER["acrastructs"], ids=lambda c: f"{len(c['plaintext']) // 2}")
def test_an_acrawriter_acrastruct_opens_with_its_private_key(case: dict[str, Any]) -> None:
    pair = PAIRS[case["public_index"]]
    private = themis_keys.load_private(bytes.fromhex(pair["private"]))
    value = memoryview(bytes.fromhex(case["acrastruct"]))
    parsed = acrastruct.parse(value)
    assert bytes(parsed.throwaway_public) == bytes.fromhex(case["throwaway_public"])
    context = _hex(case["context"])
    assert parsed.decrypt(private, context) == bytes.fromhex(case["plaintext"])
    if context is not None:  # the context binds the data cell
        with pytest.raises(IntegrityError):
            parsed.decrypt(private, None)
    other = themis_keys.load_private(bytes.fromhex(PAIRS[1 - case["public_index"]]["private"]))
    with pytest.raises(IntegrityError):
        parsed.decrypt(other, context)


@pytest.mark.parametrize(
    "case", PEER["secure_messages"], ids=lambda c: f"{len(c['plaintext']) // 2}"
)
def test_a_pythemis_secure_message_opens_and_ours_has_its_layout(case: dict[str, Any]) -> None:
    recipient = themis_keys.load_private(bytes.fromhex(case["recipient_private"]))
    sender_public = themis_keys.load_public(bytes.fromhex(case["sender_public"]))
    message = bytes.fromhex(case["message"])
    with smessage.decrypt(recipient, sender_public, message) as plain:
        assert plain.bytes() == bytes.fromhex(case["plaintext"])
    sender = themis_keys.load_private(bytes.fromhex(case["sender_private"]))
    recipient_public = themis_keys.load_public(bytes.fromhex(case["recipient_public"]))
    ours = smessage.encrypt(sender, recipient_public, bytes.fromhex(case["plaintext"]))
    assert len(ours) == len(message)
    assert ours[:8] == message[:8]
    with smessage.decrypt(recipient, sender_public, ours) as plain:
        assert plain.bytes() == bytes.fromhex(case["plaintext"])
    with pytest.raises(IntegrityError):
        smessage.decrypt(sender, sender_public, message)  # not the recipient


@pytest.mark.parametrize("case", PEER["scells"], ids=lambda c: f"{len(c['plaintext']) // 2}")
def test_a_pythemis_secure_cell_opens(case: dict[str, Any]) -> None:
    key, context = bytes.fromhex(case["key"]), _hex(case["context"]) or b""
    with scell.decrypt(key, bytes.fromhex(case["blob"]), context) as plain:
        assert plain.bytes() == bytes.fromhex(case["plaintext"])


def test_the_keyloader_made_file_records_a_passing_peer_check() -> None:
    check = OURS["peer_check"]
    total = sum(len(OURS[kind]) for kind in ("secure_messages", "acrastructs", "scells"))
    assert check["failed"] == 0
    assert check["passed"] == total > 0
    assert "pythemis" in check["peer"]


@pytest.mark.parametrize("case", OURS["acrastructs"], ids=lambda c: f"{len(c['plaintext']) // 2}")
def test_keyloader_acrastructs_the_peer_opened_still_open_here(case: dict[str, Any]) -> None:
    private = themis_keys.load_private(bytes.fromhex(case["private"]))
    found, inner = envelope.unwrap(memoryview(bytes.fromhex(case["acrastruct"])))
    assert found in (None, envelope.ACRASTRUCT)
    plain = acrastruct.parse(inner).decrypt(private, _hex(case["context"]))
    assert plain == bytes.fromhex(case["plaintext"])


@pytest.mark.parametrize("case", OURS["acrablocks"], ids=lambda c: f"{len(c['plaintext']) // 2}")
def test_keyloader_acrablock_cells_are_the_ones_the_peer_opened(case: dict[str, Any]) -> None:
    """An AcraBlock's two inner cells are in the peer-checked ``scells`` list."""
    key, context = bytearray.fromhex(case["key"]), _hex(case["context"])
    found, inner = envelope.unwrap(memoryview(bytes.fromhex(case["acrablock"])))
    assert found == envelope.ACRABLOCK
    block = acrablock.parse(inner)
    cells = {entry["blob"] for entry in OURS["scells"]}
    assert block.sealed_key.hex() in cells
    assert block.sealed_data.hex() in cells
    with acrablock.Kek(key, context) as kek:
        assert block.decrypt([kek]) == bytes.fromhex(case["plaintext"])
