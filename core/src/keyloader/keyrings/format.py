"""Acra keystore v2 key rings: the signed DER container and the ring inside it.

Byte-compatible with Acra 0.96 (cossacklabs/acra ``keystore/v2/keystore/``: ``asn1/``,
``signature/``, ``crypto/``, ``filesystem/keyRing.go``, ``key.go``). A ``.keyring`` file
is one ``SignedContainer``::

    SignedContainer ::= SEQUENCE {
      payload SEQUENCE { contentType INTEGER, version INTEGER (2),
                         lastModified UTCTime, data ANY },
      signatures SET OF SEQUENCE { algorithm OID (sha256), signature OCTET STRING } }
    KeyRing ::= SEQUENCE { purpose OCTET STRING, keys SEQUENCE OF Key, current INTEGER }
    Key     ::= SEQUENCE { seqnum INTEGER, state INTEGER, validSince UTCTime,
                           validUntil UTCTime, data SET OF KeyData }
    KeyData ::= SEQUENCE { format INTEGER, publicKey [1] OCTET STRING OPTIONAL,
                           privateKey [2] OCTET STRING OPTIONAL,
                           symmetricKey [3] OCTET STRING OPTIONAL }

(``contentType``, ``state`` and ``format`` are INTEGER in Acra's files, not the grammar
file's ENUMERATED, and Acra refuses ENUMERATED.) The signature is HMAC-SHA256 under the
master key's signature half over ``context ": " payload`` (the payload's whole TLV, as
read); a ring's context is ``AKSv2 keystore: key ring signature: <path>``. Private and
symmetric keys are Secure Cells under the encryption half with the context
``AKSv2 keystore: key ring <path>: private key <seqnum>`` (``symmetric key``).
"""

from __future__ import annotations

import datetime
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import IntegrityError, RingFormatError
from ..secret import SecretBytes
from ..themis import scell
from . import der

__all__ = [
    "CONTENT_ENCRYPTED_KEYS",
    "CONTENT_KEY_RING",
    "FORMAT_KEY_PAIR",
    "FORMAT_SYMMETRIC",
    "STATE_DESTROYED",
    "STATE_NAMES",
    "STATE_PRE_ACTIVE",
    "Container",
    "KeyData",
    "KeyRing",
    "RingKey",
    "encode_container",
    "encode_ring",
    "key_context",
    "open_ring",
    "parse_container",
    "parse_ring",
    "ring_of",
    "ring_signature_context",
    "signed_ring",
]

VERSION = 2
CONTENT_KEY_RING = 1
CONTENT_ENCRYPTED_KEYS = 4
FORMAT_KEY_PAIR = 1
FORMAT_SYMMETRIC = 3
STATE_PRE_ACTIVE = 1
STATE_DESTROYED = 6
STATE_NAMES = {
    1: "pre-active",
    2: "active",
    3: "suspended",
    4: "deactivated",
    5: "compromised",
    6: "destroyed",
}
NO_KEY = -1
"""``current`` of a ring without a current key."""
SHA256_OID = "2.16.840.1.101.3.4.2.1"
_PUBLIC, _PRIVATE, _SYMMETRIC = der.context(1), der.context(2), der.context(3)


def ring_signature_context(path: str) -> bytes:
    """What a ring's signature is computed under (before ``": "`` and the payload)."""
    return b"AKSv2 keystore: key ring signature: " + path.encode()


def key_context(path: str, seqnum: int, *, private: bool) -> bytes:
    """The Secure Cell context of key ``seqnum``'s private or symmetric half in ring ``path``."""
    kind = "private key" if private else "symmetric key"
    return f"AKSv2 keystore: key ring {path}: {kind} {seqnum}".encode()


@dataclass(frozen=True)
class KeyData:
    """One form of a key: a keypair's public container and sealed private one, or a
    sealed symmetric key (sealed: Secure Cells, as stored)."""

    format: int
    public: bytes | None = None
    private: bytes | None = None
    symmetric: bytes | None = None


@dataclass(frozen=True)
class RingKey:
    """A key of a ring: its seqnum, state, validity and data (empty once destroyed)."""

    seqnum: int
    state: int
    valid_since: datetime.datetime
    valid_until: datetime.datetime
    data: tuple[KeyData, ...]

    @property
    def destroyed(self) -> bool:
        return self.state == STATE_DESTROYED


@dataclass(frozen=True)
class KeyRing:
    """A ring: its purpose (Acra writes the ring's path), its keys oldest first, and the
    seqnum of the current one (:data:`NO_KEY`: none)."""

    purpose: str
    keys: tuple[RingKey, ...]
    current: int

    def key(self, seqnum: int) -> RingKey | None:
        for found in reversed(self.keys):  # as Acra searches, newest first
            if found.seqnum == seqnum:
                return found
        return None


@dataclass(frozen=True)
class Container:
    """A parsed ``SignedContainer``: the payload's fields, its TLV as read (what the
    signatures cover), and the signatures Acra's code knows (sha256)."""

    content_type: int
    version: int
    last_modified: datetime.datetime
    data: memoryview
    """The payload's ``data`` value, whole (tag and length included)."""
    payload: memoryview
    signatures: tuple[bytes, ...]

    def verify(self, signature_key: SecretBytes | memoryview, context: bytes, what: str) -> None:
        """Every sha256 signature must verify under ``signature_key``, and there must be
        one (Acra's ``verifySignatures``); :class:`RingFormatError` otherwise."""
        key = signature_key.buffer if isinstance(signature_key, SecretBytes) else signature_key
        if not self.signatures:
            raise RingFormatError(f"{what}: missing key ring signature")
        expected = hmac.digest(key, b"".join((context, b": ", self.payload)), "sha256")
        if not all(hmac.compare_digest(expected, found) for found in self.signatures):
            raise RingFormatError(
                f"{what}: invalid key ring signature (another master key, a changed file, "
                "or a ring moved to another path)"
            )


def parse_container(data: bytes | memoryview, what: str) -> Container:
    """Split a ``SignedContainer``; every encoding rule is checked, the signature is not."""
    top = der.Reader(data, what)
    container = top.nested(der.SEQUENCE, "the signed container")
    top.end()
    payload, content = container.read_tlv(der.SEQUENCE, "the payload")
    fields = der.Reader(content, f"{what}, the payload")
    content_type = fields.integer("contentType")
    version = fields.integer("version")
    last_modified = fields.utc_time("lastModified")
    data_tag = fields.peek_tag()
    if data_tag is None:
        raise RingFormatError(f"{what}: the payload has no data")
    value, _ = fields.read_tlv(data_tag, "data")
    fields.end()
    signatures: list[bytes] = []
    found = container.nested(der.SET, "signatures")
    while not found.at_end:
        signature = found.nested(der.SEQUENCE, "a signature")
        algorithm = signature.oid("its algorithm")
        digest = bytes(signature.octets("its value"))
        signature.end()
        if algorithm == SHA256_OID:  # Acra skips algorithms it does not know
            signatures.append(digest)
    container.end()
    return Container(content_type, version, last_modified, value, payload, tuple(signatures))


def parse_ring(value: memoryview, what: str) -> KeyRing:
    """The ``KeyRing`` of a container's data (its whole TLV)."""
    top = der.Reader(value, what)
    ring = top.nested(der.SEQUENCE, "the key ring")
    top.end()
    purpose = bytes(ring.octets("purpose"))
    keys: list[RingKey] = []
    listed = ring.nested(der.SEQUENCE, "keys")
    while not listed.at_end:
        entry = listed.nested(der.SEQUENCE, f"key {len(keys) + 1}")
        seqnum = entry.integer("seqnum")
        state = entry.integer("state")
        if state not in STATE_NAMES:
            raise entry.error(f"unknown key state {state}")
        since = entry.utc_time("validSince")
        until = entry.utc_time("validUntil")
        forms: list[KeyData] = []
        found = entry.nested(der.SET, "data")
        while not found.at_end:
            forms.append(_key_data(found.nested(der.SEQUENCE, "key data")))
        entry.end()
        keys.append(RingKey(seqnum, state, since, until, tuple(forms)))
    current = ring.integer("current")
    ring.end()
    try:
        text = purpose.decode()
    except UnicodeDecodeError:
        raise RingFormatError(f"{what}: the ring's purpose is not UTF-8") from None
    return KeyRing(text, tuple(keys), current)


def _key_data(reader: der.Reader) -> KeyData:
    key_format = reader.integer("format")
    if key_format not in (FORMAT_KEY_PAIR, FORMAT_SYMMETRIC):
        raise reader.error(f"unknown key format {key_format}")
    fields: dict[int, bytes] = {}
    for tag in (_PUBLIC, _PRIVATE, _SYMMETRIC):
        if reader.peek_tag() == tag:
            fields[tag] = bytes(reader.octets("a key", tag))
    reader.end()
    return KeyData(key_format, fields.get(_PUBLIC), fields.get(_PRIVATE), fields.get(_SYMMETRIC))


def signed_ring(ring: KeyRing, path: str, signature_key: SecretBytes | memoryview) -> bytes:
    """The ``.keyring`` file of ``ring`` at ``path``, signed under ``signature_key`` and
    stamped now (to the second), as Acra writes one: what :func:`open_ring` reads back."""
    return encode_container(
        CONTENT_KEY_RING,
        datetime.datetime.now(datetime.UTC).replace(microsecond=0),
        encode_ring(ring),
        [signature_key],
        ring_signature_context(path),
    )


def open_ring(
    data: bytes | memoryview, path: str, signature_key: SecretBytes | memoryview
) -> KeyRing:
    """Parse and verify the ``.keyring`` ``data`` of ring ``path``, as Acra's reader does:
    signature (under ``path``'s context: a ring copied to another path fails), content
    type, version, then the ring."""
    what = f"key ring {path}"
    container = parse_container(data, what)
    container.verify(signature_key, ring_signature_context(path), what)
    return ring_of(container, what)


def ring_of(container: Container, what: str) -> KeyRing:
    """The ring a verified ``container`` holds: its content type and version checked."""
    if container.content_type != CONTENT_KEY_RING:
        raise RingFormatError(f"{what}: incorrect content type {container.content_type}")
    if container.version != VERSION:
        raise RingFormatError(f"{what}: unsupported version {container.version}")
    return parse_ring(container.data, what)


def unseal_key(
    encryption_key: SecretBytes, path: str, key: RingKey, *, private: bool
) -> SecretBytes:
    """The private (keypair) or symmetric key of ``key``, in secret pages; the caller
    wipes it. :class:`RingFormatError` if it is destroyed, absent or does not open."""
    what = f"key ring {path}, key {key.seqnum}"
    if key.destroyed:
        raise RingFormatError(f"{what}: the key has been destroyed")
    for form in key.data:
        sealed = form.private if private else form.symmetric
        if sealed is None:
            continue
        try:
            return scell.decrypt(
                encryption_key.buffer, sealed, key_context(path, key.seqnum, private=private)
            )
        except IntegrityError:
            raise RingFormatError(
                f"{what}: the key does not decrypt (another master key, or a changed ring)"
            ) from None
    kind = "private" if private else "symmetric"
    raise RingFormatError(f"{what}: the key has no {kind} part")


def encode_ring(ring: KeyRing) -> bytes:
    """The DER of ``ring`` (a container's data), as Acra writes it."""
    keys = []
    for key in ring.keys:
        forms = [_encode_key_data(form) for form in key.data]
        keys.append(
            der.encode(
                der.SEQUENCE,
                der.encode_integer(key.seqnum),
                der.encode_integer(key.state),
                der.encode_utc_time(key.valid_since),
                der.encode_utc_time(key.valid_until),
                der.encode_set(forms),
            )
        )
    return der.encode(
        der.SEQUENCE,
        der.encode(der.OCTET_STRING, ring.purpose.encode()),
        der.encode(der.SEQUENCE, *keys),
        der.encode_integer(ring.current),
    )


def _encode_key_data(form: KeyData) -> bytes:
    parts = [der.encode_integer(form.format)]
    for tag, value in (
        (_PUBLIC, form.public),
        (_PRIVATE, form.private),
        (_SYMMETRIC, form.symmetric),
    ):
        if value is not None:
            parts.append(der.encode(tag, value))
    return der.encode(der.SEQUENCE, *parts)


def encode_container(
    content_type: int,
    last_modified: datetime.datetime,
    data: bytes,
    signature_keys: Sequence[SecretBytes | memoryview],
    context: bytes,
) -> bytes:
    """A ``SignedContainer`` of ``data`` (a whole TLV), signed under each key."""
    payload = der.encode(
        der.SEQUENCE,
        der.encode_integer(content_type),
        der.encode_integer(VERSION),
        der.encode_utc_time(last_modified),
        data,
    )
    signatures = []
    for key in signature_keys:
        raw = key.buffer if isinstance(key, SecretBytes) else key
        digest = hmac.digest(raw, b"".join((context, b": ", payload)), "sha256")
        signatures.append(
            der.encode(
                der.SEQUENCE, der.encode_oid(SHA256_OID), der.encode(der.OCTET_STRING, digest)
            )
        )
    return der.encode(der.SEQUENCE, payload, der.encode_set(signatures))
