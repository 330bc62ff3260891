"""Master-key rotation of an Acra keystore v2 directory: every ring re-sealed and re-signed.

Each ring whose signature verifies under the current pair (or, half-way through an
earlier rotation, under a key a reload replaced or the ``previous`` pair) has every live
key decrypted with that pair's encryption key and sealed again under the new one (same
contexts: the ring path and seqnum), and is signed with the new signature key, in one
atomic write per ring under Acra's exclusive ``.lock``. A ring that already verifies under
the new pair is left as it is, so a run killed half-way is finished by running it again.
Destroyed keys stay destroyed. The report is :class:`keyloader.rewrap.RewrapReport`, as
for keystore v1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import AbstractContextManager

from ..errors import ConfigError, IntegrityError, KeyloaderError
from ..keyids import key_id_of_ring
from ..masterkey import MasterKey
from ..rewrap import LISTED_NAMES, RewrapReport
from ..themis import scell
from . import edit
from . import format as rings
from .backend import RingBackend
from .engine import RingKeyManager

__all__ = ["rewrap_rings"]

NEITHER = -1


def rewrap_rings(
    manager: RingKeyManager,
    new_key: MasterKey,
    *,
    dry_run: bool = False,
    skip_undecryptable: bool = False,
    skip_unknown: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> RewrapReport:
    """Re-seal and re-sign every ring of ``manager``'s directory under ``new_key`` (a v2
    pair). Refused, nothing written: ``new_key`` not v2 or equal to the current pair
    (:class:`ConfigError`); rings neither pair verifies or whose keys do not open
    (:class:`IntegrityError` naming them, unless ``skip_undecryptable``); ring paths that
    are no key (:class:`ConfigError`, unless ``skip_unknown``)."""
    old_keys = list(manager._pairs())
    old_key = old_keys[0]
    if new_key.signature is None or old_key.signature is None:
        raise ConfigError(
            "an Acra keystore v2 directory is rewrapped to a v2 master key pair "
            '({"encryption", "signature"}), not a v1 key'
        )
    if new_key == old_key:
        raise ConfigError(
            f"the new master key {new_key.fingerprint} is the one the store is under already"
        )
    store = manager.store
    lock: AbstractContextManager[None] = store.locked(exclusive=not dry_run)
    with lock:
        paths = store.list()
        states: dict[str, int] = {}  # path -> which of old_keys opens it; NEW; NEITHER
        unknown: list[str] = []
        undecryptable: list[str] = []
        for path in paths:
            if key_id_of_ring(path) is None:
                unknown.append(path)
                continue
            states[path] = _state(store.read(path) or b"", path, [*old_keys, new_key])
            if states[path] == NEITHER:
                undecryptable.append(path)
        _refuse(undecryptable, unknown, skip_undecryptable, skip_unknown)
        new = len(old_keys)
        under_old = {path: old_keys[state] for path, state in states.items() if 0 <= state < new}
        skipped = sum(1 for state in states.values() if state == new)
        base = RewrapReport(
            store=manager.location,
            old_fingerprint=old_key.fingerprint,
            new_fingerprint=new_key.fingerprint,
            dry_run=dry_run,
            rewrapped=len(under_old),
            skipped=skipped,
            undecryptable=tuple(undecryptable),
            unknown=tuple(unknown),
        )
        if dry_run:
            return base
        for done, (path, under) in enumerate(under_old.items(), start=1):
            _rewrap_one(manager, path, under, new_key)
            if progress is not None:
                progress(done, len(under_old))
        failed = [
            path
            for path in states
            if path not in undecryptable and not _opens(store, path, new_key)
        ]
    return dataclasses.replace(
        base, failed=tuple(failed), verified=len(states) - len(undecryptable)
    )


def _state(data: bytes, path: str, keys: list[MasterKey]) -> int:
    """Which of ``keys`` verifies ring ``path`` and opens every live key in it; NEITHER."""
    for state, key in enumerate(keys):
        assert key.signature is not None
        try:
            ring = rings.open_ring(data, path, key.signature)
            for entry in ring.keys:
                if not entry.destroyed:
                    private = any(form.private is not None for form in entry.data)
                    rings.unseal_key(key.encryption, path, entry, private=private).wipe()
        except KeyloaderError:
            continue
        finally:
            scell.scrub()
        return state
    return NEITHER


def _rewrap_one(manager: RingKeyManager, path: str, old_key: MasterKey, new_key: MasterKey) -> None:
    assert old_key.signature is not None
    assert new_key.signature is not None
    data = manager.store.read(path) or b""
    ring = rings.open_ring(data, path, old_key.signature)
    try:
        ring = edit.reseal(ring, path, old_key.encryption, new_key.encryption)
    finally:
        scell.scrub()
    manager.store.write(path, rings.signed_ring(ring, path, new_key.signature))
    manager.forget(path)
    kid = key_id_of_ring(path)
    manager.audit("key_rewrapped", kid, 1, fingerprint=new_key.fingerprint)


def _opens(store: RingBackend, path: str, key: MasterKey) -> bool:
    return _state(store.read(path) or b"", path, [key]) == 0


def _refuse(
    undecryptable: list[str], unknown: list[str], skip_undecryptable: bool, skip_unknown: bool
) -> None:
    if undecryptable and not skip_undecryptable:
        raise IntegrityError(
            f"{len(undecryptable)} key ring(s) open under neither master key: "
            f"{_listed(undecryptable)}; nothing was rewrapped (--skip-undecryptable leaves them)"
        )
    if unknown and not skip_unknown:
        raise ConfigError(
            f"{len(unknown)} ring path(s) are not Acra keys: {_listed(unknown)}; nothing was "
            "rewrapped (--skip-unknown leaves them)"
        )


def _listed(paths: list[str]) -> str:
    shown = ", ".join(paths[:LISTED_NAMES])
    more = len(paths) - LISTED_NAMES
    return shown + (f" and {more} more" if more > 0 else "")
