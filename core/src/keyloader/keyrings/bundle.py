"""Export bundles of a keystore v2 store: Acra's (``acra-keys export`` on a v2 store) and
keyloader's own, read and written.

Acra 0.96 (``keystore/v2/keystore/filesystem_backup.go``, ``filesystem/export.go``): the
secret file is the JSON of a fresh key pair, ``{"encryption": b64, "signature": b64}``;
the bundle is a signed container of content type 4 whose data is an OCTET STRING holding
a Secure Cell Seal (under the pair's encryption key, context ``AKSv2 keystore: exported
key rings``) of ``EncryptedKeys ::= SEQUENCE { SET OF KeyRing }``: the rings as stored,
their private and symmetric keys in the clear. The signature is HMAC-SHA256 under the
pair's signature key over ``AKSv2 keystore: exported key rings: `` and the payload.

:func:`import_ring_bundle` checks all of it, then writes each ring into a v2 store,
every key sealed again under the store's master key with its own context; the plaintext
stays in secret pages (parsed in place, never copied out as ``bytes``).

keyloader's own bundle of a v2 store (:data:`keyloader.bundle_format.RINGS_VERSION`) holds
the same ``EncryptedKeys`` behind ``KLBUNDLE`` and version 2, sealed as keyloader's v1
bundle is: a Secure Cell under 32 random bytes written raw to the secret file.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from ..bundle_format import (
    BUNDLE_CONTEXT,
    BUNDLE_MAGIC,
    RINGS_HEADER,
    RINGS_VERSION,
    SECRET_SIZE,
    read_bundle_file,
    read_secret_file,
)
from ..errors import ConfigError, IntegrityError, KeyloaderError, RingFormatError
from ..keyids import key_id_of_ring
from ..masterkey import MasterKey, master_key_from_bytes
from ..secret import SecretBytes
from ..themis import scell
from . import der
from . import format as rings
from .engine import RingKeyManager

__all__ = [
    "EXPORT_CONTEXT",
    "RingExportReport",
    "RingImportReport",
    "export_ring_bundle",
    "import_ring_bundle",
    "is_acra_v2_secret",
]

EXPORT_CONTEXT = b"AKSv2 keystore: exported key rings"
_PUBLIC, _PRIVATE, _SYMMETRIC = der.context(1), der.context(2), der.context(3)


@dataclass(frozen=True)
class RingImportReport:
    """What an import into a v2 store did: ring paths, never key material."""

    input: Path
    store: str
    fingerprint: str
    imported: tuple[str, ...]
    replaced: tuple[str, ...]
    kept: tuple[str, ...]
    identical: tuple[str, ...] = ()
    """Always empty: a ring is kept or replaced whole (the report's shape is v1's)."""


def is_acra_v2_secret(data: bytes | bytearray, end: int | None = None) -> bool:
    """Whether ``data[:end]`` looks like Acra's v2 export secret (a JSON pair).

    ``data`` is read in place: it may hold a key pair, so no copy of it is made."""
    stop = len(data) if end is None else end
    start = 0
    while start < stop and data[start] in b" \t\r\n":
        start += 1
    return (
        start < stop
        and data[start] == ord("{")
        and data.find(b'"encryption"', start, stop) >= 0
        and data.find(b'"signature"', start, stop) >= 0
    )


def import_ring_bundle(
    manager: RingKeyManager, bundle: Path, secret: Path, *, force: bool = False
) -> RingImportReport:
    """Import a bundle of a v2 store into ``manager``'s store: Acra's v2 bundle (its secret
    file is the JSON of a pair) or keyloader's (32 raw bytes).

    Everything is opened and checked first (signature or Secure Cell, content type,
    every ring and key); a ring already in the store is kept unless ``force`` (Acra
    refuses the whole import there, after the rings before it went in)."""
    key = _read_secret(secret)
    with key:
        sealed = read_bundle_file(bundle)
        if isinstance(key, MasterKey):
            plain, start = _open(sealed, key, bundle), 0
        else:
            plain, start = _open_keyloader(sealed, key, bundle, secret), RINGS_HEADER.size
    with plain:
        parsed = _rings(plain.buffer[start:], bundle)
        if not parsed:
            raise RingFormatError(
                f"bundle {bundle} holds no key rings (Acra 0.96's `acra-keys export --all "
                "--private_keys` exports nothing on a keystore v2 store: export by key id); "
                "nothing was imported"
            )
        outcomes = _write_rings(manager, parsed, force)
    manager.audit("keys_imported")
    return RingImportReport(
        input=bundle,
        store=manager.location,
        fingerprint=manager.fingerprint,
        imported=tuple(outcomes["imported"]),
        replaced=tuple(outcomes["replaced"]),
        kept=tuple(outcomes["kept"]),
    )


def _write_rings(
    manager: RingKeyManager, parsed: list[_PlainRing], force: bool
) -> dict[str, list[str]]:
    outcomes: dict[str, list[str]] = {"imported": [], "replaced": [], "kept": []}
    store = manager.store
    encryption, signature = manager.master_key.encryption, manager.master_key.signature
    if signature is None:  # pragma: no cover - the slot refuses a v1 key
        raise ConfigError("a keystore v2 store needs a v2 master key pair")
    try:
        with store.locked(exclusive=True):
            for ring in parsed:
                exists = store.read(ring.purpose) is not None
                if exists and not force:
                    outcomes["kept"].append(ring.purpose)
                    continue
                resealed = _reseal(ring, encryption)
                store.write(ring.purpose, rings.signed_ring(resealed, ring.purpose, signature))
                manager.forget(ring.purpose)
                outcomes["replaced" if exists else "imported"].append(ring.purpose)
    finally:
        scell.scrub()
    return outcomes


@dataclass(frozen=True)
class _PlainData:
    format: int
    public: bytes | None
    private: memoryview | None
    symmetric: memoryview | None


@dataclass(frozen=True)
class _PlainKey:
    seqnum: int
    state: int
    valid_since: datetime.datetime
    valid_until: datetime.datetime
    data: tuple[_PlainData, ...]


@dataclass(frozen=True)
class _PlainRing:
    """An exported ring: as stored, but its keys in the clear (views into secret pages)."""

    purpose: str
    keys: tuple[_PlainKey, ...]
    current: int


_MAX_PAIR_FILE = 4096


def _read_secret(path: Path) -> MasterKey | SecretBytes:
    """The secret file of a v2 store's bundle: Acra's JSON pair, or keyloader's 32 raw bytes."""
    data = bytearray(_MAX_PAIR_FILE + 1)
    try:
        with memoryview(data) as view:
            size = _read_into(path, view)
            if size > _MAX_PAIR_FILE:
                raise ConfigError(f"{path} is too large for the secret file of a bundle")
            if size == SECRET_SIZE and not is_acra_v2_secret(data, size):
                return read_secret_file(path)  # keyloader's: checks the file's mode too
            if not is_acra_v2_secret(data, size):
                raise ConfigError(
                    f"{path} is not the secret file of a keystore v2 bundle (the JSON of "
                    '{"encryption", "signature"} from acra-keys export, or the 32 raw bytes '
                    "of keyloader keys export)"
                )
            return master_key_from_bytes(view[:size], keystore_version="v2", source=str(path))
    finally:
        data[:] = bytes(len(data))


def _open_keyloader(sealed: bytes, key: SecretBytes, source: Path, secret: Path) -> SecretBytes:
    """The payload of keyloader's bundle of a v2 store: its header checked, rings after it."""
    try:
        plain = scell.decrypt(key.buffer, sealed, BUNDLE_CONTEXT)
    except IntegrityError:
        raise IntegrityError(
            f"cannot open bundle {source} with secret {secret}: wrong secret file, or the "
            "bundle was modified or truncated; nothing was imported"
        ) from None
    view = plain.buffer
    magic, version = RINGS_HEADER.unpack_from(view) if len(view) >= 10 else (b"", 0)
    if magic != BUNDLE_MAGIC or version != RINGS_VERSION:
        plain.wipe()
        if magic == BUNDLE_MAGIC:
            raise ConfigError(
                f"bundle {source} holds keystore v1 keys (bundle format version {version}): "
                "import it into a keystore v1 store, then `keyloader keys migrate` it to v2"
            )
        raise RingFormatError(f"bundle {source} is not a keyloader export bundle (bad magic)")
    return plain


def _read_into(path: Path, view: memoryview) -> int:
    """Fill ``view`` from ``path`` in place (no immutable copy of a secret) and say how much."""
    try:
        with open(path, "rb", buffering=0) as file:
            size = 0
            while size < len(view) and (count := file.readinto(view[size:])):
                size += count
            return size
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


def _open(sealed: bytes, pair: MasterKey, source: Path) -> SecretBytes:
    what = f"bundle {source}"
    container = rings.parse_container(sealed, what)
    assert pair.signature is not None
    try:
        container.verify(pair.signature, EXPORT_CONTEXT, what)
    except RingFormatError:
        raise IntegrityError(
            f"{what} does not verify with its secret file (another export's secret, or a "
            "changed bundle); nothing was imported"
        ) from None
    if container.content_type != rings.CONTENT_ENCRYPTED_KEYS or container.version != 2:
        raise RingFormatError(f"{what} is not a keystore v2 export (content type, version)")
    cell = der.Reader(container.data, what).octets("the encrypted key rings")
    try:
        return scell.decrypt(pair.encryption.buffer, cell, EXPORT_CONTEXT)
    except IntegrityError:
        raise IntegrityError(
            f"{what}: the key rings do not decrypt; nothing was imported"
        ) from None


def _rings(plain: memoryview, source: Path) -> list[_PlainRing]:
    """The exported rings, their key data as views into ``plain`` (secret pages)."""
    what = f"bundle {source}"
    top = der.Reader(plain, what)
    keys = top.nested(der.SEQUENCE, "EncryptedKeys")
    top.end()
    found = keys.nested(der.SET, "the key rings")
    keys.end()
    parsed: list[_PlainRing] = []
    while not found.at_end:
        whole, _ = found.read_tlv(der.SEQUENCE, "a key ring")
        ring = _plain_ring(whole, what)
        if key_id_of_ring(ring.purpose) is None:
            raise RingFormatError(f"{what}: {ring.purpose[:80]!r} is not the ring of an Acra key")
        parsed.append(ring)
    return parsed


def _plain_ring(whole: memoryview, what: str) -> _PlainRing:
    """A ring whose KeyData hold plaintext keys (views), parsed as the stored ones are."""
    reader = der.Reader(whole, what).nested(der.SEQUENCE, "a key ring")
    purpose = bytes(reader.octets("purpose")).decode("utf-8", "replace")
    keys: list[_PlainKey] = []
    listed = reader.nested(der.SEQUENCE, "keys")
    while not listed.at_end:
        entry = listed.nested(der.SEQUENCE, f"{purpose}, key {len(keys) + 1}")
        seqnum, state = entry.integer("seqnum"), entry.integer("state")
        since, until = entry.utc_time("validSince"), entry.utc_time("validUntil")
        forms = []
        data = entry.nested(der.SET, "data")
        while not data.at_end:
            form = data.nested(der.SEQUENCE, "key data")
            key_format = form.integer("format")
            fields: dict[int, memoryview] = {}
            for tag in (_PUBLIC, _PRIVATE, _SYMMETRIC):
                if form.peek_tag() == tag:
                    fields[tag] = form.octets("a key", tag)
            form.end()
            public = fields.get(_PUBLIC)
            forms.append(
                _PlainData(
                    key_format,
                    bytes(public) if public is not None else None,
                    fields.get(_PRIVATE),
                    fields.get(_SYMMETRIC),
                )
            )
        entry.end()
        keys.append(_PlainKey(seqnum, state, since, until, tuple(forms)))
    current = reader.integer("current")
    reader.end()
    return _PlainRing(purpose, tuple(keys), current)


def _reseal(ring: _PlainRing, encryption: SecretBytes) -> rings.KeyRing:
    """``ring`` as stored: every plaintext key sealed under ``encryption`` in its context."""
    keys = []
    for key in ring.keys:
        forms = []
        for plain in key.data:
            private = symmetric = None
            if plain.private is not None:
                private = _seal(encryption, plain.private, ring.purpose, key.seqnum, True)
            if plain.symmetric is not None:
                symmetric = _seal(encryption, plain.symmetric, ring.purpose, key.seqnum, False)
            forms.append(rings.KeyData(plain.format, plain.public, private, symmetric))
        keys.append(
            rings.RingKey(key.seqnum, key.state, key.valid_since, key.valid_until, tuple(forms))
        )
    return rings.KeyRing(ring.purpose, tuple(keys), ring.current)


def _seal(key: SecretBytes, plain: memoryview, path: str, seqnum: int, private: bool) -> bytes:
    if not plain:
        raise RingFormatError(f"{path}, key {seqnum}: no key data")
    try:
        context = rings.key_context(path, seqnum, private=private)
        return scell.encrypt(key.buffer, plain, context)
    except KeyloaderError as exc:  # pragma: no cover - the inputs were checked
        raise RingFormatError(f"{path}, key {seqnum}: {exc}") from None


# -- writing: what `acra-keys import` reads into a v2 store ---------------------------------


@dataclass(frozen=True)
class RingExportReport:
    """What an export of a v2 store wrote: paths and ring paths, never key material."""

    output: Path
    secret_output: Path
    store: str
    fingerprint: str
    key_ids: tuple[str, ...]
    """The rings exported (their paths)."""
    entries: int
    """Keys exported (every seqnum of every ring)."""
    history: int = 0
    public: int = 0
    unknown: tuple[str, ...] = ()


def export_ring_bundle(
    manager: RingKeyManager,
    ring_paths: list[str] | None,
    output: Path,
    secret_output: Path,
    *,
    force: bool = False,
    acra: bool = False,
) -> RingExportReport:
    """Write the rings (``None``: every ring) of ``manager``'s store as a bundle, their keys
    decrypted into the payload in secret pages: keyloader's (a fresh 32-byte secret), or
    with ``acra`` Acra's v2 bundle (a fresh pair, written as the JSON Acra writes). Both
    files 0600; see :func:`keyloader.bundle.export_keys` for ``force``."""
    from ..bundle import check_outputs, write_outputs

    check_outputs(output, secret_output, force)
    store = manager.store
    encryption = manager.master_key.encryption
    with store.locked(exclusive=False):
        paths = store.list() if ring_paths is None else ring_paths
        parsed = []
        for path in paths:
            ring = manager._ring(path)
            if ring is None:
                raise ConfigError(f"no key ring {path} in {manager.location}")
            parsed.append((path, ring))
    if not parsed:
        raise ConfigError(f"no key rings to export in {manager.location}")
    header = b"" if acra else RINGS_HEADER.pack(BUNDLE_MAGIC, RINGS_VERSION)
    plain, markers = _plain_payload(parsed, header)
    try:
        with plain:
            _fill(plain.buffer, markers, parsed, encryption)
            if acra:
                bundle, secret = _seal_acra(plain.buffer)
            else:
                secret = SecretBytes.random(SECRET_SIZE)
                bundle = scell.encrypt(secret.buffer, plain.buffer, BUNDLE_CONTEXT)
            with secret:
                write_outputs(output, bundle, secret_output, secret.buffer, force)
    finally:
        scell.scrub()
    manager.audit("keys_exported")
    return RingExportReport(
        output=output,
        secret_output=secret_output,
        store=manager.location,
        fingerprint=manager.fingerprint,
        key_ids=tuple(path for path, _ in parsed),
        entries=sum(len(ring.keys) for _, ring in parsed),
        history=sum(max(len(ring.keys) - 1, 0) for _, ring in parsed),
    )


def _seal_acra(plain: memoryview) -> tuple[bytes, SecretBytes]:
    """Acra's v2 bundle of ``plain`` and its secret file's bytes (the JSON of a fresh pair)."""
    from ..masterkey import generate_master_key

    with generate_master_key("v2") as pair:
        assert pair.signature is not None
        cell = scell.encrypt(pair.encryption.buffer, plain, EXPORT_CONTEXT)
        bundle = rings.encode_container(
            rings.CONTENT_ENCRYPTED_KEYS,
            datetime.datetime.now(datetime.UTC).replace(microsecond=0),
            der.encode(der.OCTET_STRING, cell),
            [pair.signature],
            EXPORT_CONTEXT,
        )
        return bundle, pair.to_bytes()


def _plain_payload(
    parsed: list[tuple[str, rings.KeyRing]], header: bytes
) -> tuple[SecretBytes, dict[tuple[str, int, bool], bytes]]:
    """``header`` and ``EncryptedKeys`` with a random marker (public, of the key's length)
    where each plaintext key goes, copied into secret pages; and the markers."""
    markers: dict[tuple[str, int, bool], bytes] = {}
    encoded = []
    for path, ring in parsed:
        keys = []
        for key in ring.keys:
            forms = []
            for form in key.data:
                private = symmetric = None
                if form.private is not None:
                    private = markers[(path, key.seqnum, True)] = os.urandom(
                        len(form.private) - scell.HEADER_SIZE
                    )
                if form.symmetric is not None:
                    symmetric = markers[(path, key.seqnum, False)] = os.urandom(
                        len(form.symmetric) - scell.HEADER_SIZE
                    )
                forms.append(rings.KeyData(form.format, form.public, private, symmetric))
            keys.append(
                rings.RingKey(key.seqnum, key.state, key.valid_since, key.valid_until, tuple(forms))
            )
        encoded.append(rings.encode_ring(rings.KeyRing(path, tuple(keys), ring.current)))
    document = der.encode(der.SEQUENCE, der.encode_set(encoded))
    return SecretBytes(header + document), markers


def _fill(
    plain: memoryview,
    markers: dict[tuple[str, int, bool], bytes],
    parsed: list[tuple[str, rings.KeyRing]],
    encryption: SecretBytes,
) -> None:
    """Each marker in ``plain`` replaced by the key it stands for, decrypted in place."""
    document = plain.tobytes()  # markers and structure only: no key is in it yet
    for path, ring in parsed:
        for key in ring.keys:
            for private in (True, False):
                marker = markers.get((path, key.seqnum, private))
                if marker is None:
                    continue
                at = document.find(marker)
                assert at >= 0  # random markers of 32 bytes or more: each found once
                assert document.find(marker, at + 1) < 0
                with rings.unseal_key(encryption, path, key, private=private) as secret:
                    plain[at : at + len(marker)] = secret.buffer
