"""Strict DER: the part of it Acra's keystore v2 writes (X.690, distinguished rules).

:class:`Reader` walks one encoded value and refuses anything DER does not allow or Acra
does not write: indefinite or non-minimal lengths, a length past the end or over
:data:`MAX_LENGTH`, non-minimal integers, a tag other than the one expected (an
ENUMERATED where Acra writes INTEGER), bytes left over. Each refusal is a
:class:`~keyloader.errors.RingFormatError` naming what was being read, never the bytes.
The ``encode_*`` functions write the same subset; :func:`encode_set` sorts its members,
as DER wants for SET OF.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from ..errors import RingFormatError

__all__ = [
    "INTEGER",
    "MAX_LENGTH",
    "OCTET_STRING",
    "OID",
    "SEQUENCE",
    "SET",
    "UTC_TIME",
    "Reader",
    "context",
    "encode",
    "encode_integer",
    "encode_oid",
    "encode_set",
    "encode_utc_time",
]

INTEGER = 0x02
OCTET_STRING = 0x04
OID = 0x06
ENUMERATED = 0x0A
UTC_TIME = 0x17
GENERALIZED_TIME = 0x18
SEQUENCE = 0x30
SET = 0x31
MAX_LENGTH = 1 << 24
"""No value in a key store comes near 16 MiB: a longer length is refused unread."""

_NAMES = {
    INTEGER: "INTEGER",
    OCTET_STRING: "OCTET STRING",
    OID: "OBJECT IDENTIFIER",
    ENUMERATED: "ENUMERATED",
    UTC_TIME: "UTCTime",
    GENERALIZED_TIME: "GeneralizedTime",
    SEQUENCE: "SEQUENCE",
    SET: "SET",
}


def context(number: int, *, constructed: bool = False) -> int:
    """The tag of context-specific ``[number]`` (IMPLICIT), primitive or constructed."""
    return (0xA0 if constructed else 0x80) | number


def _tag_name(tag: int) -> str:
    if tag in _NAMES:
        return _NAMES[tag]
    if tag & 0xC0 == 0x80:
        return f"[{tag & 0x1F}]"
    return f"tag {tag:#04x}"


class Reader:
    """The values of one DER encoding, read in order; ``what`` names it in errors."""

    __slots__ = ("_data", "_end", "_position", "what")

    def __init__(self, data: bytes | memoryview, what: str) -> None:
        self._data = memoryview(data)
        self._position = 0
        self._end = len(self._data)
        self.what = what

    def error(self, why: str) -> RingFormatError:
        return RingFormatError(f"{self.what}: {why}")

    @property
    def at_end(self) -> bool:
        return self._position >= self._end

    def peek_tag(self) -> int | None:
        """The tag of the next value, or None at the end."""
        return None if self.at_end else self._data[self._position]

    def read(self, tag: int, name: str) -> memoryview:
        """The content of the next value, which must have ``tag``."""
        return self.read_tlv(tag, name)[1]

    def read_tlv(self, tag: int, name: str) -> tuple[memoryview, memoryview]:
        """The next value, which must have ``tag``: whole (tag and length included), and
        its content."""
        start = self._position
        found = self.peek_tag()
        if found is None:
            raise self.error(f"{name} is missing")
        if found != tag:
            raise self.error(f"{name}: expected {_tag_name(tag)}, found {_tag_name(found)}")
        if found & 0x1F == 0x1F:
            raise self.error(f"{name}: multi-byte tags are not used here")
        position = self._position + 1
        if position >= self._end:
            raise self.error(f"{name}: no length")
        first = self._data[position]
        position += 1
        if first < 0x80:
            length = first
        elif first == 0x80:
            raise self.error(f"{name}: indefinite length (not DER)")
        else:
            count = first & 0x7F
            if count > 4 or position + count > self._end:
                raise self.error(f"{name}: length too large")
            length = int.from_bytes(self._data[position : position + count], "big")
            if self._data[position] == 0 or length < 0x80:
                raise self.error(f"{name}: length not in its shortest form (not DER)")
            position += count
        if length > MAX_LENGTH or position + length > self._end:
            raise self.error(f"{name}: length runs past the end")
        self._position = position + length
        return self._data[start : position + length], self._data[position : position + length]

    def nested(self, tag: int, name: str) -> Reader:
        """A reader over the content of the next value (a SEQUENCE, SET, tagged value)."""
        return Reader(self.read(tag, name), f"{self.what}, {name}")

    def integer(self, name: str) -> int:
        content = self.read(INTEGER, name)
        if not content:
            raise self.error(f"{name}: empty INTEGER")
        if len(content) > 1 and (
            (content[0] == 0 and content[1] < 0x80) or (content[0] == 0xFF and content[1] >= 0x80)
        ):
            raise self.error(f"{name}: INTEGER not in its shortest form (not DER)")
        if len(content) > 8:
            raise self.error(f"{name}: INTEGER out of range")
        return int.from_bytes(content, "big", signed=True)

    def octets(self, name: str, tag: int = OCTET_STRING) -> memoryview:
        return self.read(tag, name)

    def oid(self, name: str) -> str:
        content = self.read(OID, name)
        if not content or content[-1] & 0x80:
            raise self.error(f"{name}: malformed OBJECT IDENTIFIER")
        arcs: list[int] = []
        value = 0
        for index, byte in enumerate(content):
            if value == 0 and byte == 0x80:
                raise self.error(f"{name}: OBJECT IDENTIFIER not in its shortest form")
            value = (value << 7) | (byte & 0x7F)
            if not byte & 0x80:
                if not arcs:
                    first = min(value // 40, 2)
                    arcs.extend((first, value - 40 * first))
                else:
                    arcs.append(value)
                value = 0
            elif index == len(content) - 1:
                raise self.error(f"{name}: malformed OBJECT IDENTIFIER")
        return ".".join(map(str, arcs))

    def utc_time(self, name: str) -> datetime.datetime:
        """A UTCTime as Acra writes it: ``YYMMDDhhmmssZ`` or ``YYMMDDhhmmss+hhmm`` (the
        writer's local zone), as an aware datetime."""
        text = bytes(self.read(UTC_TIME, name)).decode("ascii", "replace")
        for layout in ("%y%m%d%H%M%SZ", "%y%m%d%H%M%S%z"):
            try:
                moment = datetime.datetime.strptime(text, layout)
            except ValueError:
                continue
            return moment.replace(tzinfo=moment.tzinfo or datetime.UTC)
        raise self.error(f"{name}: not a UTCTime Acra writes")

    def end(self) -> None:
        """Nothing may follow the values read."""
        if not self.at_end:
            raise self.error(f"{self._end - self._position} bytes after the last value")


def _length(size: int) -> bytes:
    if size < 0x80:
        return bytes((size,))
    body = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def encode(tag: int, *parts: bytes) -> bytes:
    """A value of ``tag`` whose content is ``parts`` joined."""
    content = b"".join(parts)
    return bytes((tag,)) + _length(len(content)) + content


def encode_integer(value: int) -> bytes:
    size = max(1, (value + (value < 0)).bit_length() // 8 + 1)
    return encode(INTEGER, value.to_bytes(size, "big", signed=True))


def encode_oid(dotted: str) -> bytes:
    arcs = [int(arc) for arc in dotted.split(".")]
    body = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return encode(OID, bytes(body))


def encode_set(members: Iterable[bytes]) -> bytes:
    """A SET OF: its members' encodings in ascending order, as DER wants."""
    return encode(SET, *sorted(members))


def encode_utc_time(moment: datetime.datetime) -> bytes:
    """A UTCTime in the moment's own zone, as Acra's Go code writes one: ``YYMMDDhhmmssZ``
    at offset zero, ``YYMMDDhhmmss+hhmm`` elsewhere (a naive moment is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    layout = "%y%m%d%H%M%SZ" if not moment.utcoffset() else "%y%m%d%H%M%S%z"
    return encode(UTC_TIME, moment.strftime(layout).encode("ascii"))
