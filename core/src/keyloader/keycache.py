"""What the engine keeps in memory: the master key, loaded once, and the key cache."""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence

from .errors import ConfigError, IntegrityError
from .masterkey import MasterKey
from .providers import MasterKeyProvider
from .secret import SecretBytes
from .themis import scell

__all__ = [
    "V2_NEEDS_PAIR",
    "V2_UNSUPPORTED",
    "MasterKeySlot",
    "MasterKeySource",
    "KeyCache",
    "unseal_under",
]

V2_UNSUPPORTED = (
    "keystore v2 is not supported yet: keyloader manages Acra keystore v1 directories, "
    "sealed with a v1 master key (one base64 key of at least 32 bytes; "
    "generate one with `keyloader master-key generate`)"
)

V2_NEEDS_PAIR = (
    "this is an Acra keystore v2 directory: it needs a v2 master key pair (base64 of "
    '{"encryption": ..., "signature": ...}; generate one with '
    "`keyloader master-key generate --keystore-version v2`), not a v1 key"
)

MasterKeySource = MasterKeyProvider | MasterKey | Callable[[], MasterKey]
"""Where the engine gets a master key: a provider, a loaded key, or a loader function."""


class MasterKeySlot:
    """A master key loaded on first use, from a provider, a key or a loader.

    Thread safe: one thread loads, the others wait for it. :meth:`reload` loads
    again from the source and swaps the key in; the key it replaces is kept
    (a thread may still be decrypting with it) and wiped by :meth:`close`.
    """

    def __init__(
        self, source: MasterKeySource, provider_name: str | None, version: str = "v1"
    ) -> None:
        self._source = source
        self._version = version
        self._key: MasterKey | None = None
        self._retired: list[MasterKey] = []
        self._lock = threading.Lock()
        self.provider_name = provider_name or (
            source.name if isinstance(source, MasterKeyProvider) else None
        )
        _SLOTS.add(self)

    @property
    def loaded(self) -> bool:
        return self._key is not None

    @property
    def current(self) -> MasterKey | None:
        """The key in use now, without loading one."""
        return self._key

    @property
    def replaced(self) -> list[MasterKey]:
        """The keys :meth:`reload` replaced, newest first (fallbacks for keys not yet rewrapped)."""
        return self._retired[::-1]

    @property
    def reloadable(self) -> bool:
        """False when the source is a key itself: there is nowhere to load a new one from."""
        return not isinstance(self._source, MasterKey)

    def get(self, on_load: Callable[[MasterKey], None]) -> MasterKey:
        key = self._key
        if key is not None:
            return key
        with self._lock:
            if self._key is None:
                self._key = self._load()
                on_load(self._key)
            return self._key

    def reload(self) -> tuple[MasterKey, bool]:
        """Load the key again; returns it and whether it differs from the one in use."""
        if not self.reloadable:
            raise ConfigError(
                "the master key was given as a key, not a provider: there is nothing to "
                "reload it from; open the key store with a provider"
            )
        with self._lock:
            new = self._load()
            old = self._key
            if old is not None and not old.closed and new == old:
                new.close()
                return old, False
            self._key = new
            if old is not None:
                self._retired.append(old)
            return new, True

    def _load(self) -> MasterKey:
        source = self._source
        if isinstance(source, MasterKey):
            key = source
        else:
            try:
                key = source.load() if isinstance(source, MasterKeyProvider) else source()
            finally:
                scell.scrub()  # decoding the key's text left it in the registers
        if key.version != self._version:
            key.close()
            raise ConfigError(V2_UNSUPPORTED if self._version == "v1" else V2_NEEDS_PAIR)
        return key

    def after_fork(self) -> None:
        """In a forked child: a new lock (the parent's may have been held at the fork)."""
        self._lock = threading.Lock()

    def close(self) -> None:
        if self._key is not None:
            self._key.close()
        for key in self._retired:
            key.close()
        self._retired.clear()
        if isinstance(self._source, MasterKeyProvider):
            self._source.close()


def unseal_under(
    key: MasterKey,
    load_previous: Callable[[], MasterKey] | None,
    replaced: Sequence[MasterKey],
    blob: bytes,
    context: bytes,
    where: str,
) -> SecretBytes:
    """Open ``blob`` under ``key``, else the previous key, else the keys a reload replaced.

    ``load_previous`` is called only when ``key`` fails (a previous key is loaded
    only when needed). :class:`IntegrityError` names ``where`` and every master
    key tried (by fingerprint).
    """
    try:
        return scell.decrypt(key.encryption.buffer, blob, context)
    except IntegrityError:
        pass
    previous = load_previous() if load_previous is not None else None
    fallbacks = [*([previous] if previous is not None else []), *replaced]
    for fallback in fallbacks:
        try:
            return scell.decrypt(fallback.encryption.buffer, blob, context)
        except IntegrityError:
            continue
    if not fallbacks:
        raise IntegrityError(
            f"{where}: cannot decrypt with master key {key.fingerprint}: wrong master "
            "key, tampered file, or a file moved to another key's name"
        )
    tried = []
    if previous is not None:
        tried.append(f"the previous master key {previous.fingerprint}")
    if replaced:
        shown = ", ".join(k.fingerprint for k in replaced)
        tried.append(f"the master key{'s' if len(replaced) > 1 else ''} it replaced ({shown})")
    raise IntegrityError(
        f"{where}: cannot decrypt with master key {key.fingerprint} nor with "
        f"{' nor with '.join(tried)}: tampered file, or a file moved to another key's name"
    )


class KeyCache:
    """LRU of decrypted keys, each in secret pages (a :class:`SecretBytes`), never in the heap.

    A hit hands out a lease on the cached key (a read-only :class:`SecretBytes` the caller
    wipes like any other): no copy, no decryption, no AES context holding a key. An entry
    that leaves the cache (evicted, dropped, replaced) is wiped as soon as no lease holds it
    (CPython frees it then, and a ``SecretBytes`` zeroes its slot when freed); :meth:`close`
    wipes every entry at once. Every hit is revalidated with the store's revision token; a
    store without revision tokens (``revision()`` is None) is cached only when ``ttl`` > 0,
    and then trusted for ``ttl`` seconds.

    Safe to share between threads without a lock: every dictionary step is one atomic
    operation under the GIL, a step that loses a race (an entry dropped by another thread
    in between) is a miss, and a lease keeps its key alive. After ``fork()`` the child
    starts empty: the entries' pages read as zeroes there (:mod:`keyloader.secret_pages`).
    """

    def __init__(self, size: int, ttl: float) -> None:
        self.size = size
        self.ttl = ttl
        self._open = True
        # slot -> (revision, time stored, the key)
        self._entries: OrderedDict[tuple[str, str | None], tuple[object, float, SecretBytes]] = (
            OrderedDict()
        )
        _CACHES.add(self)

    def get(self, slot: tuple[str, str | None], revision: object) -> SecretBytes | None:
        entry = self._entries.get(slot)
        if entry is None:
            return None
        cached_revision, stamp, key = entry
        if (revision is None and time.monotonic() - stamp > self.ttl) or (
            revision is not None and revision != cached_revision
        ):
            self._entries.pop(slot, None)
            return None
        try:  # noqa: SIM105 - suppress() costs a context manager on the hot path
            self._entries.move_to_end(slot)
        except KeyError:  # dropped by another thread meanwhile: the lease still holds
            pass
        return key.lease()

    def peek(self, slot: tuple[str, str | None], revision: object) -> SecretBytes | None:
        """:meth:`get` without the lease: the cached key itself, for engine code that only
        reads what was derived from it (``SecretBytes._derived``) while it holds the object,
        and neither wipes nor keeps it. Holding it keeps its bytes alive, as a lease does."""
        entry = self._entries.get(slot)
        if entry is None or revision is None or revision != entry[0]:
            return None  # a stale entry is left to get(), which drops it and reads again
        try:  # noqa: SIM105 - suppress() costs a context manager on the hot path
            self._entries.move_to_end(slot)
        except KeyError:  # dropped by another thread meanwhile: the object still holds
            pass
        return entry[2]

    def put(
        self, slot: tuple[str, str | None], revision: object, plain: SecretBytes
    ) -> SecretBytes:
        """Keep ``plain`` (the cache owns it from now on) and return a lease on it; when
        the store's revision cannot be trusted, ``plain`` itself is returned, uncached."""
        if not self._open or (revision is None and self.ttl <= 0):
            return plain
        self._entries[slot] = (revision, time.monotonic(), plain)
        try:
            self._entries.move_to_end(slot)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        except KeyError:  # another thread emptied it meanwhile
            pass
        return plain.lease()

    def drop(self, name: str | None = None) -> None:
        if name is None:
            self._entries.clear()
        else:
            for slot in [s for s in list(self._entries) if s[0] == name]:
                self._entries.pop(slot, None)

    def after_fork(self) -> None:
        """In a forked child: no entries (their pages read as zeroes here)."""
        self._entries = OrderedDict()

    def close(self) -> None:
        """Wipe every entry now, leased or not."""
        self._open = False
        entries, self._entries = self._entries, OrderedDict()
        for _, _, key in entries.values():
            key.wipe()


_SLOTS: weakref.WeakSet[MasterKeySlot] = weakref.WeakSet()
_CACHES: weakref.WeakSet[KeyCache] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for slot in list(_SLOTS):
        slot.after_fork()
    for cache in list(_CACHES):
        cache.after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
