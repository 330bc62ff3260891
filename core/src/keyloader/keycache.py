"""What the engine keeps in memory: the master key, loaded once, and the sealed-key cache."""

from __future__ import annotations

import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import ConfigError
from .masterkey import MasterKey
from .providers import MasterKeyProvider
from .secret import SecretBytes

__all__ = ["V2_UNSUPPORTED", "MasterKeySlot", "MasterKeySource", "SealedKeyCache"]

V2_UNSUPPORTED = (
    "keystore v2 is not supported yet: keyloader manages Acra keystore v1 directories, "
    "sealed with a v1 master key (one base64 key of at least 32 bytes; "
    "generate one with `keyloader master-key generate`)"
)

MasterKeySource = MasterKeyProvider | MasterKey | Callable[[], MasterKey]
"""Where the engine gets a master key: a provider, a loaded key, or a loader function."""


class MasterKeySlot:
    """A master key loaded on first use, from a provider, a key or a loader."""

    def __init__(self, source: MasterKeySource, provider_name: str | None) -> None:
        self._source = source
        self._key: MasterKey | None = None
        self.provider_name = provider_name or (
            source.name if isinstance(source, MasterKeyProvider) else None
        )

    @property
    def loaded(self) -> bool:
        return self._key is not None

    def get(self, on_load: Callable[[MasterKey], None]) -> MasterKey:
        if self._key is None:
            source = self._source
            if isinstance(source, MasterKey):
                key = source
            elif isinstance(source, MasterKeyProvider):
                key = source.load()
            else:
                key = source()
            if key.version != "v1":
                key.close()
                raise ConfigError(V2_UNSUPPORTED)
            self._key = key
            on_load(key)
        return self._key

    def close(self) -> None:
        if self._key is not None:
            self._key.close()
        if isinstance(self._source, MasterKeyProvider):
            self._source.close()


class SealedKeyCache:
    """LRU of decrypted keys re-sealed under a random per-process key; never plaintext.

    Entries are AES-256-GCM under a key made for this cache (so a hit costs one
    AES-GCM open, no KDF), bound to their slot by the associated data, and
    revalidated on every hit with the store's revision token (or ``ttl``).
    """

    def __init__(self, size: int, ttl: float) -> None:
        self.size = size
        self.ttl = ttl
        key = bytearray(secrets.token_bytes(32))
        self._aead: AESGCM | None = AESGCM(key)
        key[:] = bytes(32)
        # slot -> (revision, time stored, associated data, nonce || ciphertext)
        self._entries: OrderedDict[tuple[str, str | None], tuple[object, float, bytes, bytes]] = (
            OrderedDict()
        )

    def get(self, slot: tuple[str, str | None], revision: object) -> SecretBytes | None:
        entry = self._entries.get(slot)
        if entry is None or self._aead is None:
            return None
        cached_revision, stamp, aad, blob = entry
        if revision is None:
            if time.monotonic() - stamp > self.ttl:
                del self._entries[slot]
                return None
        elif revision != cached_revision:
            del self._entries[slot]
            return None
        self._entries.move_to_end(slot)
        plain = SecretBytes.zeroed(len(blob) - _NONCE - _TAG)
        self._aead.decrypt_into(blob[:_NONCE], blob[_NONCE:], aad, plain.buffer)
        return plain

    def put(self, slot: tuple[str, str | None], revision: object, plain: SecretBytes) -> None:
        if self._aead is None:
            return
        aad = f"{slot[0]}\0{slot[1] or ''}".encode()
        nonce = os.urandom(_NONCE)
        blob = nonce + self._aead.encrypt(nonce, plain.buffer, aad)
        self._entries[slot] = (revision, time.monotonic(), aad, blob)
        self._entries.move_to_end(slot)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def drop(self, name: str | None = None) -> None:
        if name is None:
            self._entries.clear()
        else:
            for slot in [s for s in self._entries if s[0] == name]:
                del self._entries[slot]

    def close(self) -> None:
        self._entries.clear()
        self._aead = None


_NONCE = 12
_TAG = 16
