"""Acra's keystore v1 export bundles (``acra-keys export`` on a v1 store), read and written.

Acra 0.96 (``keystore/filesystem/filesystem_backup.go``): the secret file is 32 raw random
bytes, as keyloader's own; the bundle is a Secure Cell Seal under it with **no** context
of a Go ``encoding/gob`` stream of one ``[]*keystore.Key``, where ``Key`` is
``struct { Name string; Content []byte }``: ``Name`` the file's path in the key directory
(``client1_storage_sym``, ``.poison_key/poison_key.pub``, history as
``client1_storage.old/<ts>``), ``Content`` the plaintext key or the public key file.

Gob, as much of it as that stream uses: messages of ``uint length | int type id | body``;
a negative id defines type ``-id`` (a ``wireType``: a slice type or a struct type), a
positive one carries a value (a top-level non-struct value after a zero byte); structs
are ``(uint field delta, value)*`` ended by 0; ``uint`` is one byte below 128, else the
negated byte count and the big-endian bytes; ``int`` is zig-zag. Type ids are assigned
per process: they are read from the type messages, never assumed. Anything else is a
malformed bundle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import IntegrityError
from .secret import SecretBytes
from .themis import scell

__all__ = [
    "SECRET_SIZE",
    "AcraEntry",
    "is_acra_v1_bundle",
    "read_acra_v1_bundle",
    "seal_acra_v1",
]

_BYTES, _STRING = 5, 6  # gob's predefined ids of []byte and string
_WIRE_SLICE, _WIRE_STRUCT = 2, 3  # fields of wireType


@dataclass(frozen=True)
class AcraEntry:
    """One ``keystore.Key`` of the bundle: its file name and its plaintext content."""

    name: str
    content: SecretBytes


def is_acra_v1_bundle(sealed: bytes, secret: SecretBytes) -> bool:
    """Whether ``sealed`` opens under ``secret`` as Acra's v1 bundles do (no context)."""
    try:
        scell.decrypt(secret.buffer, sealed).wipe()
    except IntegrityError:
        return False
    return True


def read_acra_v1_bundle(sealed: bytes, secret: SecretBytes, source: Path) -> list[AcraEntry]:
    """The entries of Acra's v1 bundle ``sealed`` (from ``source``) under ``secret``;
    :class:`IntegrityError` if it does not open or is not the gob Acra writes. The caller
    wipes every entry's content."""
    try:
        plain = scell.decrypt(secret.buffer, sealed)
    except IntegrityError:
        raise IntegrityError(
            f"bundle {source} does not open with that secret file (another export's secret, "
            "or a damaged bundle); nothing was imported"
        ) from None
    with plain:
        return _Gob(plain.buffer, source).entries()


class _Gob:
    def __init__(self, data: memoryview, source: Path) -> None:
        self.data = data
        self.source = source
        self.pos = 0
        self.end = len(data)
        self.types: dict[int, tuple[int, object]] = {}  # id -> (kind, detail)

    def malformed(self, why: str) -> IntegrityError:
        return IntegrityError(
            f"bundle {self.source} is not an Acra v1 export bundle: {why}; nothing was imported"
        )

    def byte(self) -> int:
        if self.pos >= self.end:
            raise self.malformed("it ends early")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def uint(self) -> int:
        first = self.byte()
        if first < 0x80:
            return first
        count = 0x100 - first
        if count > 8 or self.pos + count > self.end:
            raise self.malformed("an unsigned integer runs past the end")
        value = int.from_bytes(self.data[self.pos : self.pos + count], "big")
        self.pos += count
        return value

    def signed(self) -> int:
        value = self.uint()
        return ~(value >> 1) if value & 1 else value >> 1

    def text(self) -> bytes:
        return bytes(self.view())

    def view(self) -> memoryview:
        """A string's or byte slice's bytes, in place (a key's content is never copied
        out of the secret pages it was decrypted into, but into new ones)."""
        size = self.uint()
        if self.pos + size > self.end:
            raise self.malformed("a string runs past the end")
        value = self.data[self.pos : self.pos + size]
        self.pos += size
        return value

    def entries(self) -> list[AcraEntry]:
        found: list[AcraEntry] | None = None
        while self.pos < self.end:
            size = self.uint()
            stop = self.pos + size
            if size == 0 or stop > self.end:
                raise self.malformed("a message runs past the end")
            saved, self.end = self.end, stop
            type_id = self.signed()
            if type_id < 0:
                self.define(-type_id)
            elif found is not None:
                raise self.malformed("it holds more than one value")
            else:
                found = self.slice_value(type_id)
            if self.pos != stop:
                raise self.malformed("a message has bytes left over")
            self.end = saved
        if found is None:
            raise self.malformed("it holds no value")
        return found

    def define(self, type_id: int) -> None:
        """A ``wireType``: ``SliceT`` or ``StructT`` (each with its ``CommonType``)."""
        delta = self.uint()
        kind = delta  # the wireType field that is set: 2 slice, 3 struct
        if kind not in (_WIRE_SLICE, _WIRE_STRUCT):
            raise self.malformed(f"type {type_id} is neither a slice nor a struct type")
        if self.uint() != 1:  # CommonType is the first field of SliceT and StructT
            raise self.malformed(f"type {type_id} has no CommonType")
        field = 0
        while delta := self.uint():  # CommonType: Name (1), Id (2)
            field += delta
            if field == 1:
                self.text()
            elif field == 2:
                self.signed()
            else:
                raise self.malformed(f"type {type_id} has an unknown CommonType field")
        if kind == _WIRE_SLICE:
            if self.uint() != 1:
                raise self.malformed(f"slice type {type_id} has no element type")
            element = self.signed()
            if self.uint() != 0:
                raise self.malformed(f"slice type {type_id} does not end")
            self.types[type_id] = (_WIRE_SLICE, element)
        else:
            fields: list[tuple[bytes, int]] = []
            if self.uint() != 1:
                raise self.malformed(f"struct type {type_id} has no fields")
            for _ in range(self.uint()):
                name, field_type, field = b"", 0, 0
                while delta := self.uint():
                    field += delta
                    if field == 1:
                        name = self.text()
                    elif field == 2:
                        field_type = self.signed()
                    else:
                        raise self.malformed(f"struct type {type_id} has an unknown field part")
                fields.append((name, field_type))
            if self.uint() != 0:
                raise self.malformed(f"struct type {type_id} does not end")
            self.types[type_id] = (_WIRE_STRUCT, fields)
        if self.uint() != 0:
            raise self.malformed(f"type {type_id} does not end")

    def slice_value(self, type_id: int) -> list[AcraEntry]:
        kind, element = self.types.get(type_id, (0, None))
        if kind != _WIRE_SLICE or not isinstance(element, int):
            raise self.malformed("its value is not a slice")
        element_kind, fields = self.types.get(element, (0, None))
        if element_kind != _WIRE_STRUCT or not isinstance(fields, list):
            raise self.malformed("its slice does not hold structs")
        if [name for name, _ in fields] != [b"Name", b"Content"] or [t for _, t in fields] != [
            _STRING,
            _BYTES,
        ]:
            raise self.malformed("its structs are not keystore.Key {Name string; Content []byte}")
        if self.byte() != 0:  # a top-level non-struct value follows a zero delta
            raise self.malformed("its value does not start as gob's do")
        entries: list[AcraEntry] = []
        try:
            for _ in range(self.uint()):
                name, content, field = b"", memoryview(b""), 0
                while delta := self.uint():
                    field += delta
                    if field == 1:
                        name = self.text()
                    elif field == 2:
                        content = self.view()
                    else:
                        raise self.malformed("a key has an unknown field")
                try:
                    text = name.decode()
                except UnicodeDecodeError:
                    raise self.malformed("a key's name is not UTF-8") from None
                secret = SecretBytes(content)
                entries.append(AcraEntry(text, secret))
        except BaseException:
            for entry in entries:
                entry.content.wipe()
            raise
        return entries


# -- writing: what `acra-keys import` reads ---------------------------------------------

_SLICE_ID, _STRUCT_ID = 66, 65  # the ids Go's encoder gives []*Key and Key in a new stream
SECRET_SIZE = 32


def _uint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    body = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return bytes((0x100 - len(body),)) + body


def _int(value: int) -> bytes:
    return _uint(value << 1 if value >= 0 else ((~value) << 1) | 1)


def _text(value: bytes) -> bytes:
    return _uint(len(value)) + value


def _message(body: bytes) -> bytes:
    return _uint(len(body)) + body


def _type_messages() -> bytes:
    """The two type definitions Go sends first: ``[]*Key``, then ``Key``."""
    common = b"\x01\x02" + _int(_SLICE_ID) + b"\x00"  # CommonType{Id}, no name
    slice_type = _int(-_SLICE_ID) + b"\x02" + common + b"\x01" + _int(_STRUCT_ID) + b"\x00\x00"
    fields = b"".join(
        b"\x01" + _text(name) + b"\x01" + _int(type_id) + b"\x00"
        for name, type_id in ((b"Name", _STRING), (b"Content", _BYTES))
    )
    struct_common = b"\x01\x02" + _int(_STRUCT_ID) + b"\x00"
    struct_type = _int(-_STRUCT_ID) + b"\x03" + struct_common + b"\x01\x02" + fields + b"\x00\x00"
    return _message(slice_type) + _message(struct_type)


def seal_acra_v1(
    items: list[tuple[str, int]], fill: Callable[[int, memoryview], None]
) -> tuple[bytes, SecretBytes]:
    """Acra's v1 bundle of ``items`` (``(name, content length)``; ``fill(i, target)``
    writes item ``i``'s content into ``target``) and its fresh 32-byte secret. The gob
    stream is built in secret pages and sealed there; only the sealed bundle leaves."""
    head = _type_messages()
    parts: list[bytes] = []  # the value message, with each content's place left out
    sizes: list[int] = []
    for name, size in items:
        encoded = name.encode()
        entry = (b"\x01" + _text(encoded) if encoded else b"") + (
            (b"\x01" if encoded else b"\x02") + _uint(size) if size else b""
        )
        parts.append(entry)
        sizes.append(size)
    body_size = len(_int(_SLICE_ID)) + 1 + len(_uint(len(items)))
    body_size += sum(len(p) + s + 1 for p, s in zip(parts, sizes, strict=True))
    prefix = _uint(body_size) + _int(_SLICE_ID) + b"\x00" + _uint(len(items))
    stream = SecretBytes.zeroed(
        len(head) + len(prefix) + body_size - len(_int(_SLICE_ID)) - 1 - len(_uint(len(items)))
    )
    try:
        view = stream.buffer
        at = len(head) + len(prefix)
        view[:at] = head + prefix
        for index, (part, size) in enumerate(zip(parts, sizes, strict=True)):
            view[at : at + len(part)] = part
            at += len(part)
            if size:
                fill(index, view[at : at + size])
                at += size
            view[at] = 0  # the struct ends
            at += 1
        assert at == len(view)
        secret = SecretBytes.random(SECRET_SIZE)
        return scell.encrypt(secret.buffer, view), secret
    finally:
        stream.wipe()
