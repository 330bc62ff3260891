"""The export bundle format: the sealed payload and the two files (docs/format.md, Export bundle).

A bundle is a Secure Cell Seal blob (context ``b"keyloader export bundle"``)
under a fresh random 32-byte bundle key, which is written raw to a separate
secret file. The sealed payload::

    magic "KLBUNDLE" | u16le version = 1 | u32le count | count entries
    entry: u8 flags (1 public, 2 history) | u16le name length | name (UTF-8)
           | [u8 timestamp length | timestamp (ASCII)] if history
           | u32le data length | data (the plaintext key, or the public key file)

A bundle of a keystore v2 store is version 2 (:data:`RINGS_VERSION`): ``magic | u16le
version = 2`` and then the rings, as :mod:`keyloader.keyrings.bundle` writes them.

Not compatible with ``acra-keys export``.
"""

from __future__ import annotations

import os
import shlex
import stat
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, InsecurePermissionsError, IntegrityError
from .keyids import classify
from .secret import SecretBytes
from .stores.timestamps import parse_history_timestamp
from .themis import scell

__all__ = [
    "BUNDLE_CONTEXT",
    "BUNDLE_MAGIC",
    "BUNDLE_VERSION",
    "MAX_BUNDLE_SIZE",
    "RINGS_HEADER",
    "RINGS_VERSION",
    "SECRET_SIZE",
    "BundleEntry",
    "parse_payload",
    "read_bundle_file",
    "read_secret_file",
    "seal_payload",
]

BUNDLE_MAGIC = b"KLBUNDLE"
BUNDLE_VERSION = 1
RINGS_VERSION = 2
"""The payload version of a keystore v2 store's bundle: the header, then ``EncryptedKeys``."""
RINGS_HEADER = struct.Struct("<8sH")  # magic, version
BUNDLE_CONTEXT = b"keyloader export bundle"
SECRET_SIZE = 32
MAX_BUNDLE_SIZE = 1 << 30
"""A bundle file larger than this (1 GiB) is refused before it is read."""

FLAG_PUBLIC = 0x01
FLAG_HISTORY = 0x02

_HEADER = struct.Struct("<8sHI")  # magic, version, count
_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")


@dataclass(frozen=True)
class BundleEntry:
    """One bundle entry: where it goes, and where its data sits in the payload."""

    name: str
    timestamp: str | None
    public: bool
    start: int
    end: int

    @property
    def context(self) -> bytes:
        kid = classify(self.name).key_id
        assert kid is not None  # parsing checked it
        return kid.context


def seal_payload(
    items: Sequence[tuple[str, str | None, bool, int]],
    fill: Callable[[int, memoryview], None],
    progress: Callable[[int, int], None] | None = None,
) -> tuple[bytes, SecretBytes]:
    """The sealed bundle and its fresh key.

    ``items`` are ``(name, timestamp, public, data length)``; ``fill(i, target)``
    writes the data of item ``i`` into ``target`` (a view into the payload, which
    is built in place and wiped at the end).
    """
    layout: list[tuple[bytes, bytes | None]] = []
    size = _HEADER.size
    for name, ts, _, length in items:
        encoded = name.encode()
        stamp = ts.encode("ascii") if ts is not None else None
        layout.append((encoded, stamp))
        size += 1 + 2 + len(encoded) + (1 + len(stamp) if stamp else 0) + 4 + length
    payload = SecretBytes.zeroed(size)
    try:
        with memoryview(payload.buffer) as view:
            _HEADER.pack_into(view, 0, BUNDLE_MAGIC, BUNDLE_VERSION, len(items))
            pos = _HEADER.size
            pairs = zip(items, layout, strict=True)
            for index, ((_, _, public, length), (encoded, stamp)) in enumerate(pairs):
                flags = (FLAG_PUBLIC if public else 0) | (FLAG_HISTORY if stamp else 0)
                pos = _put(view, pos, _U8, flags)
                pos = _put(view, pos, _U16, len(encoded))
                view[pos : pos + len(encoded)] = encoded
                pos += len(encoded)
                if stamp is not None:
                    pos = _put(view, pos, _U8, len(stamp))
                    view[pos : pos + len(stamp)] = stamp
                    pos += len(stamp)
                pos = _put(view, pos, _U32, length)
                fill(index, view[pos : pos + length])
                pos += length
                if progress is not None:
                    progress(index + 1, len(items))
        bundle_key = SecretBytes.random(SECRET_SIZE)
        sealed = scell.encrypt(bundle_key.buffer, payload.buffer, BUNDLE_CONTEXT)
    finally:
        payload.wipe()
    return sealed, bundle_key


def _put(view: memoryview, pos: int, field: struct.Struct, value: int) -> int:
    field.pack_into(view, pos, value)
    return pos + field.size


def read_secret_file(path: Path) -> SecretBytes:
    """The 32 raw bytes of a bundle secret file (mode must keep group and others out)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ConfigError(
            f"bundle secret file {path} does not exist: give the file `keyloader keys export "
            "--secret-output` wrote"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot open bundle secret file {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"bundle secret file {path} is not a regular file")
        if stat.S_IMODE(info.st_mode) & 0o077:
            raise InsecurePermissionsError(
                f"bundle secret file {path} has mode {stat.S_IMODE(info.st_mode):04o}: group "
                f"or others can access it; fix it with `chmod 600 {shlex.quote(str(path))}`"
            )
        key = SecretBytes.zeroed(SECRET_SIZE + 1)
        try:
            with memoryview(key.buffer) as view:
                size = 0
                while size < len(view) and (count := os.readv(fd, [view[size:]])):
                    size += count
        except BaseException:
            key.wipe()
            raise
    except OSError as exc:
        raise ConfigError(f"cannot read bundle secret file {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if size != SECRET_SIZE:
        key.wipe()
        shown = f"{size} bytes" if size <= SECRET_SIZE else "too large"
        raise ConfigError(
            f"bundle secret file {path} is {shown}, not a bundle secret ({SECRET_SIZE} raw "
            "bytes written by `keyloader keys export --secret-output`)"
        )
    with key:
        return SecretBytes(key.buffer[:SECRET_SIZE])


def read_bundle_file(path: Path) -> bytes:
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size > MAX_BUNDLE_SIZE:
                raise ConfigError(f"bundle {path} is {size} bytes: too large for a bundle")
            return file.read()
    except FileNotFoundError:
        raise ConfigError(
            f"bundle {path} does not exist: give the file `keyloader keys export --output` wrote"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"bundle {path} is a directory, not a bundle file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read bundle {path}: {exc.strerror}") from None


class _Reader:
    """Bounds-checked reads from the payload; any overrun is a malformed bundle."""

    def __init__(self, view: memoryview, source: Path) -> None:
        self.view = view
        self.source = source
        self.pos = 0

    def malformed(self, why: str) -> IntegrityError:
        return IntegrityError(f"bundle {self.source} is malformed: {why}; nothing was imported")

    def take(self, size: int, what: str) -> tuple[int, int]:
        start, end = self.pos, self.pos + size
        if end > len(self.view):
            raise self.malformed(f"it ends inside {what}")
        self.pos = end
        return start, end

    def number(self, field: struct.Struct, what: str) -> int:
        start, _ = self.take(field.size, what)
        value: int = field.unpack_from(self.view, start)[0]
        return value

    def text(self, size: int, what: str, encoding: str) -> str:
        start, end = self.take(size, what)
        try:
            return bytes(self.view[start:end]).decode(encoding)
        except UnicodeDecodeError:
            raise self.malformed(f"{what} is not {encoding} text") from None


def parse_payload(view: memoryview, source: Path) -> list[BundleEntry]:
    """Every entry of a decrypted payload, fully validated (names, flags, sizes, duplicates)."""
    reader = _Reader(view, source)
    if len(view) < _HEADER.size:
        raise reader.malformed("it is shorter than its header")
    magic, version, count = _HEADER.unpack_from(view)
    if magic != BUNDLE_MAGIC:
        raise reader.malformed("it is not a keyloader export bundle (bad magic)")
    if version == RINGS_VERSION:
        raise ConfigError(
            f"bundle {source} holds Acra keystore v2 key rings: import it into a keystore v2 "
            "store, or import it there and `keyloader keys migrate` the store to v1"
        )
    if version != BUNDLE_VERSION:
        raise ConfigError(
            f"bundle {source} has format version {version}; this keyloader reads version "
            f"{BUNDLE_VERSION}: import it with the keyloader release that wrote it, or a newer one"
        )
    reader.pos = _HEADER.size
    entries: list[BundleEntry] = []
    seen: set[tuple[str, str | None]] = set()
    for number in range(1, count + 1):
        what = f"entry {number}"
        flags = reader.number(_U8, what)
        if flags & ~(FLAG_PUBLIC | FLAG_HISTORY):
            raise reader.malformed(f"{what} has unknown flags {flags:#04x}")
        name = reader.text(reader.number(_U16, what), f"the name of {what}", "utf-8")
        timestamp = None
        if flags & FLAG_HISTORY:
            timestamp = reader.text(reader.number(_U8, what), f"the timestamp of {what}", "ascii")
            try:
                parse_history_timestamp(timestamp)
            except ValueError:
                raise reader.malformed(f"{what} has a bad history timestamp") from None
        start, end = reader.take(reader.number(_U32, what), f"the data of {what}")
        public = bool(flags & FLAG_PUBLIC)
        kind = classify(name)
        if kind.key_id is None:
            raise reader.malformed(f"{what} names {name[:80]!r}, not an Acra keystore v1 key")
        if kind.public != public:
            raise reader.malformed(f"{what} ({name}) has a wrong public flag")
        if start == end and not public:  # a key is never empty (a public file may be)
            raise reader.malformed(f"{what} ({name}) is empty")
        if (name, timestamp) in seen:
            raise reader.malformed(f"{what} ({name}) appears twice")
        seen.add((name, timestamp))
        entries.append(BundleEntry(name, timestamp, public, start, end))
    if reader.pos != len(view):
        raise reader.malformed(f"{len(view) - reader.pos} bytes follow the last entry")
    return entries
