"""Secret pages: locked, non-dumpable memory for key material, as libsodium's sodium_malloc.

Master keys, the cache key, tokens and decrypted keys live in slots carved out of
pages this module maps itself, not in the Python heap. Each mapping comes from the
best source available, tried in this order:

- ``memfd_secret``: memfd_secret(2) pages (Linux 5.14+, on by default since 6.5), locked,
  out of core dumps and out of the kernel's direct map (not even root reads them through
  ``/proc/PID/mem``); they count against RLIMIT_MEMLOCK and block hibernation.
- ``locked``: an anonymous private mapping with mlock(2), ``MADV_DONTDUMP`` and
  ``MADV_WIPEONFORK``.
- ``unlocked``: the same pages when locking is refused (``ulimit -l``), which may be
  swapped out; logged once per process on the ``keyloader.memory`` logger.
- ``ordinary``: bytearrays on the Python heap, unprotected (platforms other than Linux).

``KEYLOADER_SECRET_MEMORY`` chooses: ``auto`` (the default: the list above, in
order), ``secret`` (memfd_secret or :class:`SecretMemoryError`), ``locked`` (locked
anonymous pages or :class:`SecretMemoryError`), ``unlocked`` or ``ordinary``.
:func:`memory_mode` tells the weakest mode in use, :func:`describe_memory` in words.

Slots. A request is rounded up to a power of two (32 bytes at least) and carved from
16 KiB arenas, which the process's allocator keeps; a request over half an arena gets
its own mapping. A mapping is wiped and unmapped only once no view of it is left.
:func:`allocate` returns a writable, zero-filled ``memoryview`` (format ``B``) of
exactly the size asked. :func:`release` zeroes the whole slot, releases that view
(using it afterwards raises ``ValueError``) and reuses the slot; releasing it again is
ignored, releasing a view :func:`allocate` did not return raises ``ValueError``.
Views derived from a slot (slices, ``toreadonly()``) are not invalidated: they read
zeroes, or the next owner's bytes. Taking and giving back a slot need no lock (list
``pop``/``append`` and dict ``pop`` are atomic under the GIL); making arenas and mappings
takes a re-entrant lock (a finaliser may release a slot while its thread allocates).

Fork. In a child every slot allocated before the fork stays allocated (it may use and
release them), no page is shared with the parent, and a slot reads as zeroes unless
allocated with ``inherit=True``: such slots, for a key a preloading parent hands its
forked workers, come from arenas and mappings of their own, whose content the child
keeps in pages of its own.

- ``locked``, ``unlocked``: ``MADV_WIPEONFORK`` gives the child zero pages; inherited
  mappings go without it (copy-on-write). Locks are not inherited: the child locks its
  pages again.
- ``memfd_secret``: shared mappings, which refuse ``MADV_WIPEONFORK``. A fork hook
  (:func:`os.register_at_fork`) maps a fresh memfd_secret file over each mapping in
  the child, after copying an inherited one's content into it
  (:mod:`keyloader.secret_mappings`); no descriptor stays open. A ``fork()`` from C
  code that then runs Python without Python's fork hooks would share the pages.
- ``ordinary``: the fork hook zeroes the child's copies, inherited ones excepted.

A parent's thread writing an inherited slot while another thread forks may or may not
reach the child. Unlike sodium_malloc there are no guard pages or canaries around slots.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import sys
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from . import secret_mappings as mappings
from .errors import ConfigError, KeyloaderError

__all__ = [
    "ENV_VAR",
    "MODES",
    "SecretMemoryError",
    "PageAllocator",
    "Region",
    "PageStats",
    "allocate",
    "release",
    "memory_mode",
    "describe_memory",
    "stats",
    "default_allocator",
]

ENV_VAR: Final = "KEYLOADER_SECRET_MEMORY"
MODES: Final = ("memfd_secret", "locked", "unlocked", "ordinary")
"""The modes a mapping can have, strongest first."""

_CHOICES: Final = {"": "auto", "secret": "memfd_secret", **{w: w for w in ("auto", *MODES)}}

_DESCRIPTIONS: Final = {
    "memfd_secret": "memfd_secret pages: locked, out of core dumps and of the kernel's "
    "direct map, unreadable through /proc/PID/mem, zeroed in forked children",
    "locked": "locked pages (mlock): never swapped, out of core dumps (MADV_DONTDUMP), "
    "zeroed in forked children (MADV_WIPEONFORK)",
    "unlocked": "unlocked pages: out of core dumps and zeroed in forked children, "
    "but they may be swapped to disk",
    "ordinary": "ordinary process memory: may be swapped and written to core dumps",
}


def _log() -> Any:  # logging is imported only when a line is due (`keyloader --help`)
    return __import__("logging").getLogger("keyloader.memory")


PAGE_SIZE: Final = mmap.PAGESIZE
ARENA_SIZE: Final = max(16384, PAGE_SIZE)
MIN_SLOT: Final = 32


class SecretMemoryError(KeyloaderError):
    """The memory mode KEYLOADER_SECRET_MEMORY demands is not available here."""


class Region(NamedTuple):
    """One mapping of the allocator (:func:`stats`)."""

    address: int
    length: int
    mode: str
    inherited: bool = False
    """Its content survives fork (``allocate(..., inherit=True)``)."""


class PageStats(NamedTuple):
    """What an allocator holds: its mappings, and the slots handed out with their bytes
    (slot sizes: powers of two; a mapping of its own counts the size asked)."""

    regions: tuple[Region, ...]
    slots_in_use: int
    bytes_in_use: int


_warned: list[bool] = []  # one warning per process: list.append is atomic


def _warn_unlocked(exc: OSError) -> None:
    if _warned:
        return
    _warned.append(True)
    _log().warning(
        "locking secret pages was refused (%s): raise RLIMIT_MEMLOCK (`ulimit -l`, "
        "LimitMEMLOCK= in systemd); keys stay out of core dumps but may be swapped to disk",
        exc.strerror,
    )


# --- the allocator ---------------------------------------------------------------


@dataclass(slots=True)
class _Region:
    address: int
    length: int
    mode: str
    wipes_on_fork: bool
    inherited: bool


@dataclass(slots=True)
class _Pool:
    """The slots of one kind (wiped on fork, or inherited): free lists, current arena."""

    inherit: bool
    free: dict[int, list[tuple[memoryview, int]]]
    bump: memoryview | None = None
    bump_offset: int = 0


_ALLOCATORS: weakref.WeakSet[PageAllocator] = weakref.WeakSet()


class PageAllocator:
    """Slots in secret pages. The process uses one (:func:`default_allocator`);
    tests may make their own with a fixed ``mode`` (the words of ``KEYLOADER_SECRET_MEMORY``).
    """

    def __init__(self, mode: str = "auto", *, source: str = "mode") -> None:
        requested = _CHOICES.get(mode.strip().lower())
        if requested is None:
            raise ConfigError(
                f"{source}={mode!r} is not a memory mode: use auto, secret, locked, "
                "unlocked or ordinary"
            )
        self._requested = requested
        self._word = mode.strip().lower() or "auto"
        if self._requested == "auto" and not mappings.LINUX:
            self._requested = "ordinary"
        self._arena_size = ARENA_SIZE
        self._lock = threading.RLock()
        self._regions: dict[int, _Region] = {}
        self._arenas: list[memoryview] = []
        count = (self._arena_size // 2 // MIN_SLOT).bit_length()  # slot sizes up to half
        self._zeros = {MIN_SLOT << n: bytes(MIN_SLOT << n) for n in range(count)}
        # wiped on fork, inherited: indexed by ``inherit``
        self._pools = [_Pool(keep, {n: [] for n in self._zeros}) for keep in (False, True)]
        # id(view) -> (view, base view, offset, size, pool): the strong reference keeps the id
        self._live: dict[int, tuple[memoryview, memoryview, int, int, _Pool]] = {}
        self._no_secret: str | None = None  # why memfd_secret is not tried again
        _ALLOCATORS.add(self)

    # -- public --------------------------------------------------------------------

    def allocate(self, size: int, *, inherit: bool = False) -> memoryview:
        """A writable, zero-filled view of ``size`` bytes in secret pages; with
        ``inherit``, a forked child keeps its content (in pages of its own)."""
        if type(size) is not int:
            if isinstance(size, bool) or not isinstance(size, int):
                raise TypeError(f"size must be an int, not {type(size).__name__}")
            size = int(size)
        if size <= 0:
            if size < 0:
                raise ValueError("size must not be negative")
            return memoryview(bytearray())
        slot_size = MIN_SLOT if size <= MIN_SLOT else 1 << (size - 1).bit_length()
        pool = self._pools[1 if inherit else 0]
        free = pool.free.get(slot_size)
        if free:  # the hot path takes no lock: list.pop and a dict store are atomic
            try:
                base, offset = free.pop()
            except IndexError:  # another thread took the last one meanwhile
                pass
            else:
                return self._hand_out(base, offset, size, slot_size, pool)
        with self._lock:
            if slot_size > self._arena_size // 2:
                return self._allocate_large(size, pool)
            free = pool.free[slot_size]
            base, offset = free.pop() if free else self._carve(pool, slot_size)
            return self._hand_out(base, offset, size, slot_size, pool)

    def release(self, view: memoryview) -> None:
        """Zero the slot of ``view``, release ``view`` and reuse the slot."""
        slot = self._live.pop(id(view), None)  # atomic: one thread gets the slot
        if slot is None:
            try:
                empty = view.nbytes == 0
            except ValueError:  # released already: by an earlier release()
                return
            if empty:
                view.release()
                return
            raise ValueError("release() takes a view that allocate() returned")
        _, base, offset, size, pool = slot
        zeros = self._zeros.get(size)  # slot sizes have zeroes ready, large ones not
        if zeros is None:  # a mapping of its own
            with self._lock:
                base[offset : offset + size] = bytes(size)
                base.release()
        else:  # zeroed before it is free again; appending is atomic
            base[offset : offset + size] = zeros
            pool.free[size].append((base, offset))
        try:
            view.release()
        except BufferError:  # something holds a buffer of the view: it reads zeroes
            return

    def mode(self) -> str:
        """The weakest mode of the mappings so far (mapping the first arena if none)."""
        with self._lock:
            if not self._regions:
                self._carve(self._pools[0], MIN_SLOT, take=False)
            modes = [r.mode for r in list(self._regions.values())]  # finalisers pop regions
            return max(modes, key=MODES.index)

    def describe(self) -> str:
        """One line for ``keyloader config show``: the mode and what it protects."""
        try:
            mode = self.mode()
        except SecretMemoryError as exc:
            return f"unavailable: {exc}"
        text = f"{mode}: {_DESCRIPTIONS[mode]}"
        if mode == "locked" and self._requested == "auto" and self._no_secret:
            text += f" (memfd_secret: {self._no_secret})"
        elif mode == "unlocked" and self._requested == "auto":
            text += " (locking was refused: raise RLIMIT_MEMLOCK, `ulimit -l`)"
        elif mode == "ordinary" and self._requested == "auto":
            text += f" (no secret pages on {sys.platform})"
        elif self._requested != "auto":
            text += f" ({ENV_VAR}={self._word})"
        return text

    def stats(self) -> PageStats:
        """The mappings and the slots in use."""
        with self._lock:
            regions = tuple(
                Region(r.address, r.length, r.mode, r.inherited)
                for r in list(self._regions.values())
            )
            in_use = sum(slot[3] for slot in list(self._live.values()))
            return PageStats(regions, len(self._live), in_use)

    # -- mappings --------------------------------------------------------------------

    def _new_region(self, length: int, *, arena: bool, inherit: bool) -> memoryview:
        """A mapping of ``length`` bytes (a page multiple): a view of all of it."""
        requested = self._requested
        if requested == "ordinary":
            base = memoryview(bytearray(length))
            region = _Region(mappings.address_of(base), length, "ordinary", False, inherit)
            if arena:  # kept for good; a large bytearray may go, its address with it
                self._regions[region.address] = region
            return base
        if not mappings.LINUX:
            raise SecretMemoryError(f"{requested} memory needs Linux, not {sys.platform}")
        address: int | None = None
        mode, wipes = "", False
        if requested in ("auto", "memfd_secret") and self._no_secret is None:
            try:
                address = mappings.map_secret(length)
                mode = "memfd_secret"
            except OSError as exc:
                if requested == "memfd_secret":
                    raise SecretMemoryError(
                        f"{ENV_VAR}=secret but memfd_secret failed ({exc.strerror}): it "
                        "needs Linux 5.14+ with secretmem enabled (the default since 6.5) "
                        "and room under RLIMIT_MEMLOCK"
                    ) from exc
                if exc.errno not in mappings.TRANSIENT:
                    self._no_secret = exc.strerror or "unavailable"
                _log().debug("memfd_secret unavailable (%s): using anonymous pages", exc)
        if requested == "memfd_secret" and address is None:
            raise SecretMemoryError(
                f"{ENV_VAR}=secret but memfd_secret is unavailable ({self._no_secret})"
            )
        if address is None:
            try:
                address, wipes = mappings.map_anonymous(length, wipe_on_fork=not inherit)
            except OSError as exc:
                raise MemoryError(f"cannot map {length} bytes for secrets: {exc}") from exc
            mode = "unlocked"
            if requested in ("auto", "locked"):
                try:
                    mappings.mlock(address, length)
                    mode = "locked"
                except OSError as exc:
                    if requested == "locked":
                        mappings.wipe_and_unmap(address, length)
                        raise SecretMemoryError(
                            f"{ENV_VAR}=locked but mlock was refused ({exc.strerror}): "
                            "raise RLIMIT_MEMLOCK (`ulimit -l`)"
                        ) from exc
                    _warn_unlocked(exc)
        self._regions[address] = _Region(address, length, mode, wipes, inherit)
        # unmapped when the last view of it goes: a large slot's once released, an
        # arena's with its allocator (never, for the process's own)
        return mappings.owned_view(address, length, self._regions)

    def _carve(self, pool: _Pool, slot_size: int, *, take: bool = True) -> tuple[memoryview, int]:
        """A slot from the pool's current arena, or from a new one when it is full."""
        base = pool.bump
        offset = pool.bump_offset
        if base is None or offset + slot_size > len(base):
            self._retire_bump(pool)
            base = self._new_region(self._arena_size, arena=True, inherit=pool.inherit)
            self._arenas.append(base)
            pool.bump, offset = base, 0
        if take:
            pool.bump_offset = offset + slot_size
        return base, offset

    def _retire_bump(self, pool: _Pool) -> None:
        """Hand the rest of the pool's current arena to its free lists."""
        base, offset = pool.bump, pool.bump_offset
        pool.bump, pool.bump_offset = None, 0
        if base is None:
            return
        rest = len(base) - offset
        while rest >= MIN_SLOT:
            size = min(1 << (rest.bit_length() - 1), self._arena_size // 2)
            pool.free[size].append((base, offset))
            offset += size
            rest -= size

    def _hand_out(
        self, base: memoryview, offset: int, size: int, slot_size: int, pool: _Pool
    ) -> memoryview:
        view = base[offset : offset + size]
        self._live[id(view)] = (view, base, offset, slot_size, pool)
        return view

    def _allocate_large(self, size: int, pool: _Pool) -> memoryview:
        length = -(-size // PAGE_SIZE) * PAGE_SIZE
        base = self._new_region(length, arena=False, inherit=pool.inherit)
        view = base[:size]
        self._live[id(view)] = (view, base, 0, size, pool)
        return view

    # -- fork ------------------------------------------------------------------------

    def _after_fork_child(self) -> None:
        self._lock = threading.RLock()
        for region in list(self._regions.values()):
            try:
                self._renew(region)
            except OSError as exc:  # keep the child off its parent's pages at any cost
                mappings.forbid(region.address, region.length)
                _log().error(
                    "secret pages at %#x are unusable in this child: %s", region.address, exc
                )
        for _, base, _, size, pool in list(self._live.values()):
            if not pool.inherit and size not in self._zeros and type(base.obj) is bytearray:
                base[:] = bytes(len(base))  # a large ordinary buffer

    def _renew(self, region: _Region) -> None:
        """Give the child its own copy of ``region`` (zeroed unless inherited), locked again."""
        address, length, keep = region.address, region.length, region.inherited
        if region.mode == "memfd_secret":
            try:
                mappings.renew_secret(address, length, keep=keep)
                return
            except OSError as exc:
                _log().debug("memfd_secret in the forked child failed (%s)", exc)
            region.wipes_on_fork = mappings.renew_anonymous(
                address, length, keep=keep, wipe_on_fork=not keep
            )
            region.mode = "locked"
        elif not region.wipes_on_fork and not keep:
            ctypes.memset(address, 0, length)
        if region.mode == "locked":
            try:
                mappings.mlock(address, length)  # locks are not inherited over fork
            except OSError as exc:
                region.mode = "unlocked"
                _warn_unlocked(exc)


_fork_state = threading.local()  # the allocators whose locks this thread took to fork


def _before_fork() -> None:
    allocators = list(_ALLOCATORS)
    for allocator in allocators:
        allocator._lock.acquire()
    _fork_state.held = allocators


def _held() -> list[PageAllocator]:
    held: list[PageAllocator] = getattr(_fork_state, "held", [])
    _fork_state.held = []
    return held


def _after_fork_parent() -> None:
    for allocator in reversed(_held()):
        allocator._lock.release()


def _after_fork_child() -> None:
    for allocator in _held():
        allocator._after_fork_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork_parent, after_in_child=_after_fork_child
    )


# --- the process's allocator -------------------------------------------------------

_default: PageAllocator | None = None
_default_lock = threading.Lock()


def default_allocator() -> PageAllocator:
    """The process's allocator, in the mode ``KEYLOADER_SECRET_MEMORY`` asks (read once)."""
    global _default
    allocator = _default
    if allocator is None:
        with _default_lock:
            if _default is None:
                _default = PageAllocator(os.environ.get(ENV_VAR, "auto"), source=ENV_VAR)
            allocator = _default
    return allocator


def allocate(size: int, *, inherit: bool = False) -> memoryview:
    """A writable, zero-filled view of ``size`` bytes in secret pages; with ``inherit``,
    a forked child keeps its content (in pages of its own)."""
    return (_default or default_allocator()).allocate(size, inherit=inherit)


def release(view: memoryview) -> None:
    """Zero the slot of ``view`` (from :func:`allocate`), release the view, reuse the slot."""
    (_default or default_allocator()).release(view)


def memory_mode() -> str:
    """``memfd_secret``, ``locked``, ``unlocked`` or ``ordinary``: the weakest mode in use."""
    return default_allocator().mode()


def describe_memory() -> str:
    """The memory mode and what it protects, in one line."""
    return default_allocator().describe()


def stats() -> PageStats:
    """The process allocator's mappings and slots in use."""
    return default_allocator().stats()
