"""What the rewrap crash tests check after each kill: which master key opens every blob."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from keyloader.errors import IntegrityError
from keyloader.keyids import classify
from keyloader.masterkey import MasterKey
from keyloader.stores.base import KeyStore
from keyloader.themis import scell

if TYPE_CHECKING:
    from keyloader.config import Settings

Slot = tuple[str, str | None]
"""A blob: its name and history timestamp (None for the current blob)."""


def settings_plaintexts(settings: Settings) -> dict[tuple[str, int], bytes]:
    """Every key (current and history) of the key store ``settings`` open, as plaintext."""
    from keyloader.api import open_keystore

    with open_keystore(settings) as keys:
        return {
            (info.key_id, info.index): keys.read(info.key_id, info.index).bytes()
            for info in keys.list(rotated=True)
            if info.key_id and info.index
        }


def plaintexts(store: KeyStore, *keys: MasterKey) -> dict[Slot, tuple[str, int]]:
    """Each private blob of ``store``: the sha256 of its plaintext and which of ``keys`` opens it.

    Public halves are skipped. Raises ``IntegrityError`` if none of ``keys`` opens a blob.
    """
    found: dict[Slot, tuple[str, int]] = {}
    for blob in store.list():
        what = classify(blob.name)
        assert what.key_id is not None, blob.name
        if what.public:
            continue
        for ts in ([None] if blob.current else []) + list(blob.history):
            data = store.get(blob.name) if ts is None else store.get_history(blob.name, ts)
            for which, key in enumerate(keys):
                try:
                    plain = scell.decrypt(key.encryption.buffer, data, what.key_id.context)
                except IntegrityError:
                    continue
                with plain:
                    found[(blob.name, ts)] = (hashlib.sha256(plain.buffer).hexdigest(), which)
                break
            else:
                where = blob.name if ts is None else f"{blob.name}.old/{ts}"
                raise IntegrityError(f"{where} decrypts under none of the keys")
    return found
