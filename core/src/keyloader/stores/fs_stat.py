"""Revision tokens of key files: one ``stat`` per cached use, without letting go of the GIL.

The engine revalidates every cached key with the file's revision (inode, mtime,
ctime, size), so a key another process rotated is read again on the next use.
``os.lstat`` releases the GIL for the system call; with many threads each short
release hands the GIL to another thread and the caller then waits for it back,
so eight threads sharing a store reached half the uses per second of one. On
Linux, on a local filesystem, :class:`RevisionStat` calls ``statx`` through
``ctypes.PyDLL`` (which keeps the GIL: a local ``statx`` takes about a
microsecond and cannot block). Anywhere else (another OS, a network or FUSE
filesystem, where a stat may wait on a server, no ``statx``) it uses
``os.lstat``. Both give the same token.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import sys
import threading
from typing import Any

__all__ = ["LOCAL_FILESYSTEMS", "RevisionStat"]

LOCAL_FILESYSTEMS = frozenset(
    {
        0xEF53,  # ext2/3/4
        0x58465342,  # xfs
        0x9123683E,  # btrfs
        0x01021994,  # tmpfs
        0x794C7630,  # overlayfs (containers)
        0x2FC12FC1,  # zfs
        0xF2F52010,  # f2fs
        0x858458F6,  # ramfs
    }
)
"""``statfs`` magic numbers of the filesystems where a stat never waits on a server."""

_UNKNOWN: Any = object()
_MAX_PATHS = 4096
_AT_FDCWD = -100
_AT_SYMLINK_NOFOLLOW = 0x100
_STATX_BASIC = 0x7FF
_AT_FDCWD_C = ctypes.c_int(_AT_FDCWD)
_NOFOLLOW_C = ctypes.c_int(_AT_SYMLINK_NOFOLLOW)
_STATX_BASIC_C = ctypes.c_uint(_STATX_BASIC)


class _Timestamp(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_int64), ("tv_nsec", ctypes.c_uint32), ("_pad", ctypes.c_int32))


class _Statx(ctypes.Structure):
    """``struct statx``: the same layout on every Linux architecture."""

    _fields_ = (
        ("stx_mask", ctypes.c_uint32),
        ("stx_blksize", ctypes.c_uint32),
        ("stx_attributes", ctypes.c_uint64),
        ("stx_nlink", ctypes.c_uint32),
        ("stx_uid", ctypes.c_uint32),
        ("stx_gid", ctypes.c_uint32),
        ("stx_mode", ctypes.c_uint16),
        ("_pad1", ctypes.c_uint16),
        ("stx_ino", ctypes.c_uint64),
        ("stx_size", ctypes.c_uint64),
        ("stx_blocks", ctypes.c_uint64),
        ("stx_attributes_mask", ctypes.c_uint64),
        ("stx_atime", _Timestamp),
        ("stx_btime", _Timestamp),
        ("stx_ctime", _Timestamp),
        ("stx_mtime", _Timestamp),
        ("_rest", ctypes.c_uint64 * 16),  # device numbers, mount id, alignments, spares
    )


_TOKEN_FIELDS = struct.Struct("<32xQQ48xqI4xqI4x")
"""stx_ino, stx_size, stx_ctime and stx_mtime of a ``struct statx``, read in one step
(ctypes' field access makes an object per field)."""
assert _TOKEN_FIELDS.size == 128
assert _Statx.stx_ino.offset == 32 and _Statx.stx_size.offset == 40  # noqa: PT018
assert _Statx.stx_ctime.offset == 96 and _Statx.stx_mtime.offset == 112  # noqa: PT018


def _lstat_token(path: str) -> tuple[int, int, int, int]:
    st = os.lstat(path)
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)


class RevisionStat:
    """``token(path)``: ``(inode, mtime_ns, ctime_ns, size)``, raising what ``os.lstat`` raises."""

    def __init__(self, directory: str) -> None:
        self._directory = directory
        self._statx: Any = _UNKNOWN  # decided once the directory exists
        self._local = threading.local()
        self._encoded: dict[str, bytes] = {}

    @property
    def holds_the_gil(self) -> bool:
        """Whether tokens come from ``statx`` with the GIL held (a local Linux filesystem)."""
        statx = self._decide() if self._statx is _UNKNOWN else self._statx
        return statx is not None

    def token(self, path: str) -> tuple[int, int, int, int]:
        statx = self._statx
        if statx is _UNKNOWN:
            statx = self._decide()
        if statx is None:
            return _lstat_token(path)
        try:
            buffer, pointer = self._local.buffer
        except AttributeError:  # this thread's first token
            buffer = _Statx()
            pointer = ctypes.c_void_p(ctypes.addressof(buffer))
            self._local.buffer = buffer, pointer
        encoded = self._encoded.get(path)
        if encoded is None:
            encoded = os.fsencode(path)
            if len(self._encoded) < _MAX_PATHS:
                self._encoded[path] = encoded
        # every argument already a C value: ctypes converts nothing (0.4 µs a call)
        if statx(_AT_FDCWD_C, encoded, _NOFOLLOW_C, _STATX_BASIC_C, pointer) != 0:
            code = ctypes.get_errno()
            if code == errno.ENOSYS:  # a kernel or sandbox without statx: stop trying
                self._statx = None
                return _lstat_token(path)
            raise OSError(code, os.strerror(code), path)
        ino, size, ctime, ctime_ns, mtime, mtime_ns = _TOKEN_FIELDS.unpack_from(buffer)
        return (ino, mtime * 1_000_000_000 + mtime_ns, ctime * 1_000_000_000 + ctime_ns, size)

    def _decide(self) -> Any:
        if not os.path.isdir(self._directory):
            return None  # not yet: os.lstat this time, decide when the directory exists
        self._statx = _statx_on(self._directory)
        return self._statx


def _statx_on(directory: str) -> Any:
    """libc's ``statx`` (GIL held) if ``directory`` is on a local Linux filesystem, else None."""
    if not sys.platform.startswith("linux") or ctypes.sizeof(_Statx) != 256:
        return None
    try:
        libc = ctypes.PyDLL(None, use_errno=True)
        statx = libc.statx
        statfs = libc.statfs
    except (OSError, AttributeError):  # not glibc >= 2.28, or no libc symbols
        return None
    # no argtypes: token() passes C values only (and the path as bytes), nothing to convert
    statx.restype = ctypes.c_int
    statfs.argtypes = (ctypes.c_char_p, ctypes.c_void_p)
    statfs.restype = ctypes.c_int
    info = (ctypes.c_long * 32)()  # struct statfs begins with f_type (a long)
    if statfs(os.fsencode(directory), info) != 0:
        return None
    if (info[0] & 0xFFFFFFFF) not in LOCAL_FILESYSTEMS:
        return None
    return statx
