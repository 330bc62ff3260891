"""Key ids: the CLI names of intermediate keys and their Acra v1 store names and contexts."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from functools import cached_property

from .errors import ConfigError

__all__ = [
    "CLIENT_ID_PATTERN",
    "KeyId",
    "KeyKind",
    "StoreName",
    "classify",
    "key_id_of",
    "validate_client_id",
]

CLIENT_ID_PATTERN = re.compile(r"[A-Za-z0-9_\- ]{5,256}")
POISON_DIR = ".poison_key"
PUBLIC_SUFFIX = ".pub"


class KeyKind(enum.StrEnum):
    """What an intermediate key is for (Acra keystore v1)."""

    SYMMETRIC = "symmetric"  # client/<cid>/symmetric: AcraStruct/AcraBlock storage
    SEARCHABLE = "searchable"  # client/<cid>/searchable: HMAC for searchable encryption
    STORAGE = "storage"  # client/<cid>/storage: storage keypair (opaque here)
    AUDIT_LOG = "audit-log"  # secure log signing key
    POISON_RECORD_SYMMETRIC = "poison-record-symmetric"
    POISON_RECORD = "poison-record"  # poison record keypair (opaque here)

    @property
    def per_client(self) -> bool:
        return self in _CLIENT_SUFFIX

    @property
    def keypair(self) -> bool:
        """Keypairs have a plaintext ``.pub`` beside them and are never generated here."""
        return self in (KeyKind.STORAGE, KeyKind.POISON_RECORD)


_CLIENT_SUFFIX = {
    KeyKind.SYMMETRIC: "_storage_sym",
    KeyKind.SEARCHABLE: "_hmac",
    KeyKind.STORAGE: "_storage",
}
_GLOBAL_NAME = {
    KeyKind.AUDIT_LOG: "secure_log_key",
    KeyKind.POISON_RECORD_SYMMETRIC: f"{POISON_DIR}/poison_key_sym",
    KeyKind.POISON_RECORD: f"{POISON_DIR}/poison_key",
}
_RING_SUFFIX = {
    KeyKind.SYMMETRIC: "storage-sym",
    KeyKind.SEARCHABLE: "hmac-sym",
    KeyKind.STORAGE: "storage",
}
_GLOBAL_RING = {
    KeyKind.AUDIT_LOG: "audit-log",
    KeyKind.POISON_RECORD_SYMMETRIC: "poison-record-sym",
    KeyKind.POISON_RECORD: "poison-record",
}
# Longest suffix first, so "<cid>_storage_sym" is not read as a keypair of "<cid>_storage".
_SUFFIX_ORDER = sorted(_CLIENT_SUFFIX.items(), key=lambda item: -len(item[1]))


def validate_client_id(client_id: str) -> str:
    """Return ``client_id`` if valid (5 to 256 of ``[A-Za-z0-9_\\- ]``), else raise ConfigError."""
    if not CLIENT_ID_PATTERN.fullmatch(client_id):
        raise ConfigError(
            f"invalid client id {client_id[:64]!r}: use 5 to 256 characters of "
            "letters, digits, '_', '-' and space"
        )
    return client_id


@dataclass(frozen=True, order=True)
class KeyId:
    """One intermediate key: its kind and, for per-client kinds, the client id."""

    kind: KeyKind
    client_id: str | None = None

    def __post_init__(self) -> None:
        if self.kind.per_client:
            if self.client_id is None:
                raise ConfigError(f"key kind {self.kind.value!r} needs a client id")
            validate_client_id(self.client_id)
        elif self.client_id is not None:
            raise ConfigError(f"key kind {self.kind.value!r} takes no client id")

    @classmethod
    def parse(cls, text: str) -> KeyId:
        """Parse a CLI key id: ``client/<cid>/<kind>``, ``audit-log``, ``poison-record...``."""
        if text.startswith("client/"):
            cid, sep, kind = text[len("client/") :].rpartition("/")
            if sep and kind in {k.value for k in _CLIENT_SUFFIX}:
                return cls(KeyKind(kind), cid)
        elif text in {k.value for k in _GLOBAL_NAME}:
            return cls(KeyKind(text))
        raise ConfigError(
            f"invalid key id {text[:80]!r}: expected client/<client-id>/symmetric, "
            "client/<client-id>/searchable, client/<client-id>/storage, audit-log, "
            "poison-record-symmetric or poison-record"
        )

    @cached_property  # asked on every use: made once (a frozen dataclass keeps no other state)
    def store_name(self) -> str:
        """The Acra v1 file name under the keys directory."""
        if self.client_id is not None:
            return self.client_id + _CLIENT_SUFFIX[self.kind]
        return _GLOBAL_NAME[self.kind]

    @cached_property
    def ring_path(self) -> str:
        """The Acra keystore v2 ring that holds this key (``client/<cid>/storage-sym``)."""
        if self.client_id is not None:
            return f"client/{self.client_id}/{_RING_SUFFIX[self.kind]}"
        return _GLOBAL_RING[self.kind]

    @property
    def public_name(self) -> str | None:
        """The plaintext public-key file of a keypair, else None."""
        return self.store_name + PUBLIC_SUFFIX if self.kind.keypair else None

    @property
    def context(self) -> bytes:
        """The Secure Cell context that binds the blob to its name."""
        if self.client_id is not None:
            return self.client_id.encode()
        return self.store_name.encode()

    def __str__(self) -> str:
        if self.client_id is not None:
            return f"client/{self.client_id}/{self.kind.value}"
        return self.kind.value


def key_id_of_ring(path: str) -> KeyId | None:
    """The key id an Acra keystore v2 ring path holds, or None for another path."""
    for kind, ring in _GLOBAL_RING.items():
        if path == ring:
            return KeyId(kind)
    prefix, _, rest = path.partition("/")
    client, _, suffix = rest.rpartition("/")
    if prefix == "client" and CLIENT_ID_PATTERN.fullmatch(client):
        for kind, ring_suffix in _RING_SUFFIX.items():
            if suffix == ring_suffix:
                return KeyId(kind, client)
    return None


@dataclass(frozen=True)
class StoreName:
    """What a store name is: a key's private blob, its public half, or unknown (``key_id`` None)."""

    name: str
    key_id: KeyId | None
    public: bool = False


def classify(name: str) -> StoreName:
    """Map a store name back to its key id; anything else is unknown and never modified."""
    public = name.endswith(PUBLIC_SUFFIX)
    base = name[: -len(PUBLIC_SUFFIX)] if public else name
    key_id = _key_id_of(base)
    if key_id is None or (public and not key_id.kind.keypair):
        return StoreName(name, None)
    return StoreName(name, key_id, public)


def _key_id_of(base: str) -> KeyId | None:
    for kind, global_name in _GLOBAL_NAME.items():
        if base == global_name:
            return KeyId(kind)
    for kind, suffix in _SUFFIX_ORDER:
        if base.endswith(suffix):
            cid = base[: -len(suffix)]
            if CLIENT_ID_PATTERN.fullmatch(cid):
                return KeyId(kind, cid)
            return None
    return None


_KEY_IDS: dict[str, KeyId] = {}


def key_id_of(key_id: KeyId | str) -> KeyId:
    """``key_id`` as a :class:`KeyId` (parsed ids are remembered: ``use()`` is hot)."""
    if isinstance(key_id, KeyId):
        return key_id
    kid = _KEY_IDS.get(key_id)
    if kid is None:
        kid = KeyId.parse(key_id)
        if len(_KEY_IDS) < 65536:
            _KEY_IDS[key_id] = kid
    return kid
