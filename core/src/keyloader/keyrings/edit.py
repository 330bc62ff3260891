"""Changes to an Acra keystore v2 ring, as Acra's own code makes them.

Acra 0.96 (``keystore/v2/keystore/filesystem/keyRing.go``, ``keyRingUtils.go``,
``key.go``): a new key gets the next seqnum (1 in an empty ring, else the last one's + 1),
state pre-active (Acra never moves a key out of it but to destroy it), a validity of
365 days from now, and becomes current: what generating and rotating both do. A
destroyed key keeps its seqnum with state 6 and no data, and ``current`` is left as it
was (a destroyed current key makes reads fail, as in Acra).
"""

from __future__ import annotations

import dataclasses
import datetime

from ..secret import SecretBytes
from ..themis import scell
from .format import (
    FORMAT_KEY_PAIR,
    FORMAT_SYMMETRIC,
    NO_KEY,
    STATE_DESTROYED,
    STATE_PRE_ACTIVE,
    KeyData,
    KeyRing,
    RingKey,
    key_context,
)

__all__ = ["CRYPTOPERIOD", "add_key", "destroy_key", "empty_ring", "reseal"]

CRYPTOPERIOD = datetime.timedelta(days=365)
"""How long Acra says a new key is valid (never enforced, by Acra or here)."""


def empty_ring(path: str) -> KeyRing:
    """The ring Acra writes when it opens a missing one for writing."""
    return KeyRing(path, (), NO_KEY)


def add_key(
    ring: KeyRing,
    path: str,
    encryption_key: SecretBytes,
    secret: SecretBytes,
    public: bytes | None = None,
    *,
    now: datetime.datetime | None = None,
) -> KeyRing:
    """``ring`` with a new current key: ``secret`` sealed under ``encryption_key`` (a
    symmetric key, or with ``public`` the private half of a keypair)."""
    seqnum = ring.keys[-1].seqnum + 1 if ring.keys else 1
    moment = (now or datetime.datetime.now(datetime.UTC)).replace(microsecond=0)
    sealed = scell.encrypt(
        encryption_key.buffer, secret.buffer, key_context(path, seqnum, private=public is not None)
    )
    if public is None:
        data = KeyData(FORMAT_SYMMETRIC, symmetric=sealed)
    else:
        data = KeyData(FORMAT_KEY_PAIR, public=public, private=sealed)
    key = RingKey(seqnum, STATE_PRE_ACTIVE, moment, moment + CRYPTOPERIOD, (data,))
    return KeyRing(ring.purpose or path, (*ring.keys, key), seqnum)


def destroy_key(ring: KeyRing, seqnum: int) -> KeyRing:
    """``ring`` with key ``seqnum`` destroyed (state 6, its data gone); ``current`` kept."""
    keys = tuple(
        dataclasses.replace(key, state=STATE_DESTROYED, data=()) if key.seqnum == seqnum else key
        for key in ring.keys
    )
    return dataclasses.replace(ring, keys=keys)


def reseal(ring: KeyRing, path: str, old: SecretBytes, new: SecretBytes) -> KeyRing:
    """``ring`` with every live key decrypted under ``old`` and sealed again under ``new``
    (an encryption key each), in the same contexts; destroyed keys stay as they are. The
    plaintext goes through secret pages; the caller scrubs the registers."""
    keys = []
    for entry in ring.keys:
        forms = []
        for form in entry.data:
            private = form.private is not None
            sealed = form.private if private else form.symmetric
            if sealed is None:
                forms.append(form)
                continue
            context = key_context(path, entry.seqnum, private=private)
            with scell.decrypt(old.buffer, sealed, context) as plain:
                again = scell.encrypt(new.buffer, plain.buffer, context)
            forms.append(
                dataclasses.replace(form, private=again)
                if private
                else dataclasses.replace(form, symmetric=again)
            )
        keys.append(dataclasses.replace(entry, data=tuple(forms)))
    return dataclasses.replace(ring, keys=tuple(keys))
