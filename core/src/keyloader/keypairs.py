"""Keypairs in a key store: the private half sealed, the public half plain, histories together.

Acra keystore v1 keeps a keypair as two files: ``<name>`` (the private Themis
container sealed with Secure Cell under the master key, Acra's context) and
``<name>.pub`` (the public container, plain). Rotation keeps both histories,
``<name>.old/<ts>`` and ``<name>.pub.old/<ts>``; keyloader gives both halves one
timestamp and writes the four blobs all-or-nothing (``put_many``). Callers hold
the store's lock.
"""

from __future__ import annotations

from .errors import KeyNotFoundError
from .keyids import KeyId
from .masterkey import MasterKey
from .stores.base import BlobWrite, KeyStore, StoredBlob
from .stores.timestamps import next_history_timestamp
from .themis import keys as themis_keys
from .themis import scell

__all__ = ["destroy_keypair", "new_keypair_blobs", "public_history_match", "rotate_keypair"]


def new_keypair_blobs(master: MasterKey, kid: KeyId) -> tuple[bytes, bytes]:
    """A new P-256 keypair for ``kid``: (private half sealed under ``master``, public half)."""
    private, public = themis_keys.generate_keypair()
    with private:
        return scell.encrypt(master.encryption.buffer, private.buffer, kid.context), public


def rotate_keypair(store: KeyStore, master: MasterKey, kid: KeyId) -> str:
    """Replace both halves of ``kid``, keeping the old ones as history under one timestamp."""
    private_name, public_name = kid.store_name, kid.public_name
    assert public_name is not None
    listing = {blob.name: blob for blob in store.list()}
    private = listing.get(private_name)
    if private is None or not private.current:
        raise KeyNotFoundError(f"{kid} does not exist in {store.location}: nothing to rotate")
    public = listing.get(public_name)
    taken = {*private.history, *(public.history if public is not None else ())}
    timestamp = next_history_timestamp(taken)
    sealed, public_half = new_keypair_blobs(master, kid)
    writes = [
        BlobWrite(private_name, store.get(private_name), timestamp=timestamp),
        BlobWrite(private_name, sealed),
    ]
    if public is not None and public.current:
        old_public = store.get(public_name)
        writes.append(BlobWrite(public_name, old_public, timestamp=timestamp, public=True))
    writes.append(BlobWrite(public_name, public_half, public=True))
    store.put_many(writes)
    return timestamp


def public_history_match(
    private: StoredBlob, public: StoredBlob | None, timestamp: str
) -> str | None:
    """The public half's history entry that goes with the private entry ``timestamp``.

    The same timestamp (keyloader writes both halves with one); else the entry at
    the same position (Acra writes the halves one after the other, so their
    timestamps differ by a little and the histories pair up by index).
    """
    if public is None:
        return None
    if timestamp in public.history:
        return timestamp
    position = private.history.index(timestamp) if timestamp in private.history else -1
    if 0 <= position < len(public.history) and len(public.history) == len(private.history):
        return public.history[position]
    return None


def destroy_keypair(store: KeyStore, kid: KeyId, timestamp: str | None) -> None:
    """Delete both halves of ``kid``: the current ones, or the history entry ``timestamp``."""
    private_name, public_name = kid.store_name, kid.public_name
    assert public_name is not None
    listing = {blob.name: blob for blob in store.list()}
    public = listing.get(public_name)
    if timestamp is None:
        store.delete(private_name)
        if public is not None and public.current:
            store.delete(public_name)
        return
    private = listing.get(private_name)
    match = public_history_match(private, public, timestamp) if private is not None else None
    store.delete_history(private_name, timestamp)
    if match is not None:
        store.delete_history(public_name, match)
