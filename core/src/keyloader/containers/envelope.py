"""The crypto envelope: ``%%%`` | u64 LE total length | envelope id | container.

Acra services (cossacklabs/acra ``crypto/registry_handler.go``) write every value
enveloped and accept both enveloped and bare containers. The length counts the
12 header bytes too; Acra ignores bytes after it.
"""

from __future__ import annotations

import struct

from ..errors import IntegrityError

__all__ = ["ACRABLOCK", "ACRASTRUCT", "HEADER_SIZE", "TAG", "header", "unwrap", "wrap"]

TAG = b"%%%"
HEADER_SIZE = 12
ACRABLOCK = 0xF0
"""Envelope id of an AcraBlock."""
ACRASTRUCT = 0xF1
"""Envelope id of an AcraStruct."""
NAMES = {ACRABLOCK: "AcraBlock", ACRASTRUCT: "AcraStruct"}
_LENGTH = struct.Struct("<Q")


def header(envelope_id: int, container_size: int) -> bytes:
    """The 12 bytes that go before a container of ``container_size`` bytes."""
    if envelope_id not in NAMES:
        raise ValueError(f"unknown envelope id {envelope_id:#x}")
    return TAG + _LENGTH.pack(HEADER_SIZE + container_size) + bytes((envelope_id,))


def wrap(container: bytes, envelope_id: int) -> bytes:
    """``container`` behind the envelope header."""
    return header(envelope_id, len(container)) + container


def unwrap(data: memoryview) -> tuple[int | None, memoryview]:
    """``(envelope id, container)`` of an enveloped value, ``(None, data)`` of a bare one.

    A value that starts with the tag but is not a whole envelope (short, length
    past the end, unknown id) is an :class:`IntegrityError`.
    """
    if data[: len(TAG)] != TAG:
        return None, data
    if len(data) <= HEADER_SIZE:
        raise IntegrityError("a crypto envelope shorter than its header")
    (length,) = _LENGTH.unpack_from(data, len(TAG))
    envelope_id = data[HEADER_SIZE - 1]
    if envelope_id not in NAMES:
        raise IntegrityError(f"a crypto envelope with an unknown id {envelope_id:#04x}")
    if not HEADER_SIZE < length <= len(data):
        raise IntegrityError("a crypto envelope whose length does not fit the value")
    return envelope_id, data[HEADER_SIZE:length]
