"""Secret mappings: the Linux memory calls under :mod:`keyloader.secret_pages`.

A ctypes binding of libc (``mmap``, ``munmap``, ``mremap``, ``mprotect``, ``mlock``,
``madvise`` and the ``memfd_secret(2)`` system call) and the operations the page
allocator is built from: map memfd_secret pages or private anonymous pages out of core
dumps, lock them, wipe and unmap them, and, in a forked child, put new pages of its own
at the address of an inherited mapping, with or without its content.

Every failure raises :class:`OSError` with the errno of the call. Nothing here keeps
state but the libc binding: the allocator holds its own lock. Standard library only.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import platform
import sys
import weakref
from collections.abc import MutableMapping
from typing import Any, Final

__all__ = [
    "LINUX",
    "TRANSIENT",
    "address_of",
    "forbid",
    "map_anonymous",
    "map_secret",
    "mlock",
    "owned_view",
    "renew_anonymous",
    "renew_secret",
    "wipe_and_unmap",
]

LINUX: Final = sys.platform == "linux"
TRANSIENT: Final = frozenset({errno.EAGAIN, errno.ENOMEM, errno.EMFILE, errno.ENFILE})
"""Errors of memfd_secret that may pass: worth trying it again for a later mapping."""

_NR_MEMFD_SECRET: Final = {"x86_64": 447, "aarch64": 447}.get(platform.machine())
# Linux values (asm-generic: the same on x86_64 and aarch64); Python 3.11 lacks some.
_PROT_NONE: Final = 0
_PROT_RW: Final = mmap.PROT_READ | mmap.PROT_WRITE
_MAP_FIXED: Final = 0x10
_MREMAP_MAYMOVE_FIXED: Final = 0x1 | 0x2
_MADV_DONTDUMP: Final = getattr(mmap, "MADV_DONTDUMP", 16)
_MADV_WIPEONFORK: Final = getattr(mmap, "MADV_WIPEONFORK", 18)
_MAP_FAILED: Final = ctypes.c_void_p(-1).value


class _Libc:
    def __init__(self) -> None:
        lib = ctypes.CDLL(None, use_errno=True)
        size, ptr, num = ctypes.c_size_t, ctypes.c_void_p, ctypes.c_int
        self.syscall = lib.syscall
        self.syscall.restype = ctypes.c_long
        self.mmap = lib.mmap
        self.mmap.restype = ptr
        self.mmap.argtypes = [ptr, size, num, num, num, ctypes.c_long]
        self.mremap = lib.mremap
        self.mremap.restype = ptr
        self.mremap.argtypes = [ptr, size, size, num, ptr]
        self.munmap, self.mlock = lib.munmap, lib.mlock
        self.madvise, self.mprotect = lib.madvise, lib.mprotect
        for fn in (self.munmap, self.mlock):
            fn.argtypes = [ptr, size]
        for fn in (self.madvise, self.mprotect):
            fn.argtypes = [ptr, size, num]


_libc_instance: _Libc | None = None


def _libc() -> _Libc:
    global _libc_instance
    if _libc_instance is None:
        _libc_instance = _Libc()
    return _libc_instance


def _os_error(call: str) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, f"{call}: {os.strerror(code)}")


def _check(result: Any, call: str) -> int:
    """The address ``mmap`` or ``mremap`` returned, or an OSError if they failed."""
    if result is None or result == _MAP_FAILED:
        raise _os_error(call)
    return int(result)


def _mmap(length: int, flags: int, fd: int = -1, address: int | None = None) -> int:
    if address is not None:
        flags |= _MAP_FIXED
    return _check(_libc().mmap(address, length, _PROT_RW, flags, fd, 0), "mmap")


def _memfd_secret(length: int) -> int:
    """A memfd_secret file of ``length`` bytes (close-on-exec)."""
    if not LINUX or _NR_MEMFD_SECRET is None:
        raise OSError(errno.ENOSYS, "memfd_secret: not on this platform")
    fd = int(_libc().syscall(ctypes.c_long(_NR_MEMFD_SECRET), ctypes.c_uint(os.O_CLOEXEC)))
    if fd < 0:
        raise _os_error("memfd_secret")
    try:
        os.ftruncate(fd, length)
    except OSError:
        os.close(fd)
        raise
    return fd


def map_secret(length: int, address: int | None = None) -> int:
    """Map ``length`` bytes of memfd_secret pages (at ``address``, replacing what is
    there). The kernel locks them and leaves them out of core dumps; the descriptor is
    closed before this returns, the mapping keeps the file."""
    fd = _memfd_secret(length)
    try:
        return _mmap(length, mmap.MAP_SHARED, fd, address)
    finally:
        os.close(fd)


def map_anonymous(
    length: int, address: int | None = None, *, wipe_on_fork: bool = True
) -> tuple[int, bool]:
    """Map private anonymous pages out of core dumps (``MADV_DONTDUMP``); with
    ``wipe_on_fork`` ask for ``MADV_WIPEONFORK`` too. Returns the address and whether
    the kernel wipes them on fork (Linux < 4.14 refuses the advice)."""
    addr = _mmap(length, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, address)
    libc = _libc()
    if libc.madvise(addr, length, _MADV_DONTDUMP) != 0:
        error = _os_error("madvise(MADV_DONTDUMP)")
        libc.munmap(addr, length)
        raise error
    wipes = wipe_on_fork and libc.madvise(addr, length, _MADV_WIPEONFORK) == 0
    return addr, wipes


def mlock(address: int, length: int) -> None:
    """Lock the pages in memory (never swapped)."""
    if _libc().mlock(address, length) != 0:
        raise _os_error("mlock")


def wipe_and_unmap(address: int, length: int) -> None:
    """Zero a mapping, then unmap it."""
    ctypes.memset(address, 0, length)
    _libc().munmap(address, length)


def _finalise(registry: MutableMapping[int, Any], address: int, length: int) -> None:
    registry.pop(address, None)
    wipe_and_unmap(address, length)


def owned_view(address: int, length: int, registry: MutableMapping[int, Any]) -> memoryview:
    """A view (format ``B``) of the whole mapping at ``address``. Once no view of it is
    left, slices included, ``address`` leaves ``registry``, then the mapping is wiped and
    unmapped (not at exit: finalisers then run in no useful order)."""
    array = (ctypes.c_ubyte * length).from_address(address)
    weakref.finalize(array, _finalise, registry, address, length).atexit = False
    return memoryview(array).cast("B")


def forbid(address: int, length: int) -> bool:
    """Make a mapping inaccessible (``PROT_NONE``); False if the kernel refused."""
    return bool(_libc().mprotect(address, length, _PROT_NONE) == 0)


def renew_secret(address: int, length: int, *, keep: bool = False) -> None:
    """Map a new memfd_secret file over the mapping at ``address``, without a gap.

    With ``keep``, the content moves over first: the new file is mapped at a temporary
    address, the old pages are copied into it (memfd_secret to memfd_secret: no byte
    passes through other memory), then it is mapped over the old address and the
    temporary mapping goes. Needs twice ``length`` under RLIMIT_MEMLOCK meanwhile. On
    failure the old mapping is left as it was.
    """
    fd = _memfd_secret(length)
    try:
        if not keep:
            _mmap(length, mmap.MAP_SHARED, fd, address)
            return
        temporary = _mmap(length, mmap.MAP_SHARED, fd)
        try:
            ctypes.memmove(temporary, address, length)
            _mmap(length, mmap.MAP_SHARED, fd, address)
        except OSError:
            ctypes.memset(temporary, 0, length)
            raise
        finally:
            _libc().munmap(temporary, length)
    finally:
        os.close(fd)


def renew_anonymous(address: int, length: int, *, keep: bool, wipe_on_fork: bool) -> bool:
    """Put private anonymous pages (:func:`map_anonymous`) in place of the mapping at
    ``address``; with ``keep`` they get its content (copied into a new mapping, moved
    over with ``mremap``). Returns whether the kernel wipes them on fork."""
    if not keep:
        return map_anonymous(length, address, wipe_on_fork=wipe_on_fork)[1]
    libc = _libc()
    temporary, wipes = map_anonymous(length, wipe_on_fork=wipe_on_fork)
    ctypes.memmove(temporary, address, length)
    moved = libc.mremap(temporary, length, length, _MREMAP_MAYMOVE_FIXED, address)
    try:
        _check(moved, "mremap")
    except OSError:
        wipe_and_unmap(temporary, length)
        raise
    return wipes


def address_of(view: memoryview) -> int:
    """The address of the first byte of a writable buffer."""
    holder = ctypes.c_char.from_buffer(view)
    try:
        return ctypes.addressof(holder)
    finally:
        del holder
