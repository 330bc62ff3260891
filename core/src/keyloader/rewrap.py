"""Master-key rotation: re-seal every intermediate key under a new master key (docs/security.md).

:func:`rewrap_keys` works in three passes over the store, holding its writer
lock throughout (readers are never blocked):

1. survey: every blob (current and history; keypair private files as opaque
   blobs) is decrypted under the new key or the old one (the manager's current
   key, or its previous key), trying first the key that opened the blob before,
   and wiped at once; unknown files and blobs neither key opens are collected.
   Refusals happen here, before the first write.
2. rewrap: each blob still under the old key is re-sealed under the new one and
   replaced atomically (``put``/``put_history``). A crash at any point leaves
   every blob under the old key or the new one; a rerun skips the blobs already
   under the new key, so it resumes.
3. verify: every blob is decrypted under the new key.

Only one plaintext is alive at a time. Per blob, only one byte of survey state
is kept (and the names of problem blobs), so memory does not grow with the
number of keys beyond the store's listing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

from .errors import ConfigError, IntegrityError, KeyNotFoundError
from .inventory import location_of
from .keycache import V2_UNSUPPORTED
from .keyids import KeyId, classify
from .keystore import KeyManager
from .masterkey import MasterKey
from .stores.base import KeyStore, StoredBlob
from .themis import scell

__all__ = ["Progress", "RewrapReport", "rewrap_keys"]

Progress = Callable[[int, int], None]
"""``progress(done, total)``: called after each step of each pass."""

LISTED_NAMES = 20
"""How many names a refusal message lists before "and N more"."""


@dataclass(frozen=True)
class RewrapReport:
    """What a rewrap did (with ``dry_run``: would do). Counts and names, never key material.

    - ``rewrapped``: blobs re-sealed under the new key (dry run: still under the old one).
    - ``skipped``: blobs already under the new key (a resumed run), left as they are.
    - ``undecryptable``: blobs neither key opens, left untouched (only with
      ``skip_undecryptable``; otherwise the rewrap is refused).
    - ``unknown``: files that are not Acra keystore v1 keys, left untouched (only
      with ``skip_unknown``; otherwise refused).
    - ``failed``: blobs that did not decrypt under the new key in the final check.
      Empty unless something wrote keys under the old master key without the
      writer lock during the run (e.g. Acra's own tools); run the rewrap again.
    - ``verified``: blobs checked under the new key at the end (0 in a dry run).
    """

    store: str
    old_fingerprint: str
    new_fingerprint: str
    dry_run: bool
    rewrapped: int
    skipped: int
    undecryptable: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    verified: int = 0

    @property
    def complete(self) -> bool:
        """True when every key of the store is now under the new master key."""
        return not self.dry_run and not self.failed and not self.undecryptable


OLD, NEW, NEITHER = 0, 1, 2
"""Which master key opens a blob: the old one (current or previous), the new one, neither."""


@dataclass
class _Survey:
    """Pass 1: what the store holds (names only for the problems).

    ``states`` holds one byte per blob, in listing order (``OLD``/``NEW``/``NEITHER``):
    the rewrap pass, under the same lock, skips ``NEW`` blobs without reading them.
    """

    under_old: int = 0
    under_new: int = 0
    undecryptable: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    states: bytearray = field(default_factory=bytearray)


class _Steps:
    """Counts the steps of all passes and reports them to ``progress``."""

    def __init__(self, progress: Progress | None, passes: int) -> None:
        self.progress = progress
        self.passes = passes
        self.slots = 0  # blobs per pass, set by the survey
        self.done = 0

    def __call__(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.slots * self.passes)


_Slot = tuple[KeyId, str, int, str | None]  # key id, store name, index, history timestamp


def rewrap_keys(
    manager: KeyManager,
    new_key: MasterKey,
    *,
    dry_run: bool = False,
    skip_undecryptable: bool = False,
    skip_unknown: bool = False,
    progress: Progress | None = None,
) -> RewrapReport:
    """Re-seal every key of ``manager``'s store under ``new_key``, same names and contexts.

    The old key is ``manager``'s master key (and, if configured, its previous
    key: blobs under either are rewrapped). Refused, with nothing written:
    ``new_key`` equal to the current key or not a v1 key (:class:`ConfigError`);
    blobs that decrypt under neither key (:class:`IntegrityError` listing them,
    unless ``skip_undecryptable``); unknown files (:class:`ConfigError` listing
    them, unless ``skip_unknown``). ``dry_run`` runs the same checks and reports
    what would change, writing nothing. ``new_key`` is not closed; ``manager``
    keeps its (old) master key: open a new manager to use the new one.
    Emits ``key_rewrapped`` for each blob written.
    """
    old_key = manager.master_key
    _check_new_key(old_key, new_key)
    store = manager.store
    guard: AbstractContextManager[object] = nullcontext() if dry_run else store.lock()
    step = _Steps(progress, 1 if dry_run else 3)
    with guard:
        survey = _survey(manager, new_key, step)
        undecryptable = tuple(survey.undecryptable)
        unknown = tuple(survey.unknown)
        _refuse(store, old_key, new_key, undecryptable, unknown, skip_undecryptable, skip_unknown)
        if dry_run:
            return RewrapReport(
                store=store.location,
                old_fingerprint=old_key.fingerprint,
                new_fingerprint=new_key.fingerprint,
                dry_run=True,
                rewrapped=survey.under_old,
                skipped=survey.under_new,
                undecryptable=undecryptable,
                unknown=unknown,
            )
        rewrapped, skipped = _rewrap(manager, new_key, survey.states, set(undecryptable), step)
        verified, failed = _verify(store, new_key, set(undecryptable), step)
    return RewrapReport(
        store=store.location,
        old_fingerprint=old_key.fingerprint,
        new_fingerprint=new_key.fingerprint,
        dry_run=False,
        rewrapped=rewrapped,
        skipped=skipped,
        undecryptable=undecryptable,
        unknown=unknown,
        failed=tuple(failed),
        verified=verified,
    )


def _check_new_key(old_key: MasterKey, new_key: MasterKey) -> None:
    if new_key.version != "v1":
        raise ConfigError(f"the new master key {new_key.fingerprint}: {V2_UNSUPPORTED}")
    if new_key == old_key:  # constant time
        raise ConfigError(
            f"the new master key is the current master key (fingerprint {old_key.fingerprint}): "
            "a rewrap needs a different key; generate one with `keyloader master-key generate` "
            "and point the target provider at it"
        )


def _slots(listing: Iterable[StoredBlob], unknown: list[str] | None = None) -> Iterator[_Slot]:
    """Every private blob of a listing (current and history); unknown names go to ``unknown``."""
    for blob in listing:
        what = classify(blob.name)
        kid = what.key_id
        if kid is None:
            if unknown is not None:
                unknown.append(blob.name)
            continue
        if what.public:
            continue
        if blob.current:
            yield kid, blob.name, 1, None
        for index, timestamp in enumerate(blob.history, start=2):
            yield kid, blob.name, index, timestamp


def _read(store: KeyStore, name: str, timestamp: str | None) -> bytes:
    return store.get(name) if timestamp is None else store.get_history(name, timestamp)


def _opens(key: MasterKey, blob: bytes, context: bytes) -> bool:
    try:
        scell.decrypt(key.encryption.buffer, blob, context).wipe()
    except IntegrityError:
        return False
    return True


def _count(listing: Iterable[StoredBlob]) -> int:
    """How many private blobs (current and history) a listing holds."""
    return sum(
        (1 if blob.current else 0) + len(blob.history)
        for blob in listing
        if (what := classify(blob.name)).key_id is not None and not what.public
    )


def _opener(
    manager: KeyManager, new_key: MasterKey, blob: bytes, context: bytes, where: str, first: int
) -> int:
    """``NEW``, ``OLD`` or ``NEITHER``: which key opens ``blob`` (trying ``first`` first)."""
    for which in (first, OLD if first == NEW else NEW):
        if which == NEW:
            if _opens(new_key, blob, context):
                return NEW
            continue
        try:
            manager.unseal(blob, context, where).wipe()
        except IntegrityError:
            continue
        return OLD
    return NEITHER


def _survey(manager: KeyManager, new_key: MasterKey, step: _Steps) -> _Survey:
    store = manager.store
    listing = store.list()
    step.slots = _count(listing)
    survey = _Survey()
    first = NEW  # then whichever key opened the previous blob: one attempt per blob, mostly
    for kid, name, _, timestamp in _slots(listing, survey.unknown):
        where = location_of(store, name, timestamp)
        state = _opener(manager, new_key, _read(store, name, timestamp), kid.context, where, first)
        if state == NEW:
            survey.under_new += 1
        elif state == OLD:
            survey.under_old += 1
        else:
            survey.undecryptable.append(where)
        survey.states.append(state)
        first = state if state != NEITHER else first
        step()
    survey.unknown = [location_of(store, name, None) for name in survey.unknown]
    return survey


def _refuse(
    store: KeyStore,
    old_key: MasterKey,
    new_key: MasterKey,
    undecryptable: Sequence[str],
    unknown: Sequence[str],
    skip_undecryptable: bool,
    skip_unknown: bool,
) -> None:
    if undecryptable and not skip_undecryptable:
        count = len(undecryptable)
        keys = f"{count} key decrypts" if count == 1 else f"{count} keys decrypt"
        raise IntegrityError(
            f"refusing to rewrap {store.location}: {keys} with neither "
            f"the current master key {old_key.fingerprint} nor the new one "
            f"{new_key.fingerprint}: {_listing(undecryptable)}. Nothing was changed. Restore "
            "them from a backup, remove them (`keyloader keys destroy`), or skip them "
            "(--skip-undecryptable) to leave them as they are"
        )
    if unknown and not skip_unknown:
        count = len(unknown)
        files = (
            "1 file is not an Acra keystore v1 key"
            if count == 1
            else f"{count} files are not Acra keystore v1 keys"
        )
        raise ConfigError(
            f"refusing to rewrap {store.location}: {files} and cannot be rewrapped: "
            f"{_listing(unknown)}. Nothing was changed. Move them out of the key store, or "
            "skip them (--skip-unknown) to leave them under the old master key"
        )


def _rewrap(
    manager: KeyManager,
    new_key: MasterKey,
    states: bytearray,
    undecryptable: set[str],
    step: _Steps,
) -> tuple[int, int]:
    store = manager.store
    listing = store.list()
    if _count(listing) != len(states):  # cannot happen under the lock: then ignore the hints
        states = bytearray([OLD]) * _count(listing)
    rewrapped = skipped = 0
    for state, (kid, name, index, timestamp) in zip(states, _slots(listing), strict=True):
        if state != OLD:  # already under the new key, or left alone (skip_undecryptable)
            skipped += state == NEW
            step()
            continue
        blob = _read(store, name, timestamp)
        context = kid.context
        where = location_of(store, name, timestamp)
        try:
            plain = manager.unseal(blob, context, where)
        except IntegrityError:
            if _opens(new_key, blob, context):  # changed since the survey: already done
                skipped += 1
                step()
                continue
            if where in undecryptable:
                step()
                continue
            raise
        with plain:
            sealed = scell.encrypt(new_key.encryption.buffer, plain.buffer, context)
        if timestamp is None:
            store.put(name, sealed)
        else:
            store.put_history(name, timestamp, sealed)
        manager.forget(name)
        manager.audit("key_rewrapped", kid, index, fingerprint=new_key.fingerprint)
        rewrapped += 1
        step()
    return rewrapped, skipped


def _verify(
    store: KeyStore, new_key: MasterKey, undecryptable: set[str], step: _Steps
) -> tuple[int, list[str]]:
    verified = 0
    failed: list[str] = []
    for kid, name, _, timestamp in _slots(store.list()):
        where = location_of(store, name, timestamp)
        try:
            blob = _read(store, name, timestamp)
        except KeyNotFoundError:  # removed meanwhile by a writer that ignores the lock
            step()
            continue
        if _opens(new_key, blob, kid.context):
            verified += 1
        elif where not in undecryptable:
            failed.append(where)
        step()
    return verified, failed


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(names[:LISTED_NAMES])
    more = len(names) - LISTED_NAMES
    return f"{shown} and {more} more" if more > 0 else shown
