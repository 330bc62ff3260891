"""Scrub an environment variable's value from this process (option ``scrub`` of ``env``).

A variable given to a process at ``execve`` lives in several places, and removing
it from ``os.environ`` alone clears none of them:

1. **The original block.** The kernel copies ``NAME=value`` strings to the top of
   the stack; ``/proc/PID/environ`` (and a core dump) shows that block, between
   ``env_start`` and ``env_end`` of ``/proc/PID/stat``, whatever the C library
   does later.
2. **The C library's ``environ`` array.** At start-up its entries point into that
   block. ``setenv``/``putenv`` give a changed variable a heap string instead;
   ``unsetenv`` only drops the pointer and leaves the string where it was.
3. **Python's copy.** ``posix.environ`` is a ``dict`` of ``bytes`` built from
   ``environ`` at start-up; on POSIX ``os.environ._data`` and
   ``os.environb._data`` *are* that dict (values are decoded to ``str`` on each
   access and never stored as ``str``). Deleting the entry frees the ``bytes``
   object, and freed memory keeps its content until it is reused.

:func:`scrub_variable` overwrites the value with zeros in places 1 and 2 (every
``NAME=`` string the ``environ`` array points at, and every one in the original
block: the same memory unless the variable was set again after start-up),
overwrites the payload of the ``bytes`` object of place 3 in place, then removes
the variable (``unsetenv`` and the dict entry, what ``del os.environ[name]`` does;
``name in os.environ`` is never asked, as it decodes the value into a new ``str``).
The name stays in the original block, followed by zeros.

What it cannot reach, and leaves:

- a ``bytes`` value that something else also references (its reference count is
  higher than the environment dicts' own): overwriting it would change a value
  someone still uses, so it is left and counted in :attr:`ScrubReport.shared`;
- ``str`` copies made by reading ``os.environ[name]`` (a new ``str`` per read,
  owned by whoever read it): keyloader's own reads use ``os.environb``;
- strings an earlier ``setenv`` of the same variable allocated (glibc never frees
  them, and no pointer to them is kept where this module can find it);
- a value another thread sets between the walk and the removal (the C library's
  environment is not thread safe; Python's own changes hold the GIL).

Only CPython lays objects out as this module assumes; elsewhere place 3 is
skipped (removed, not overwritten). Without ``/proc`` (not Linux), place 1 is
only reached through the ``environ`` array.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from keyloader.secret import overwrite_bytes

__all__ = ["ScrubReport", "scrub_variable", "was_scrubbed"]

"""``offsetof(PyBytesObject, ob_sval)``: the basic size counts the payload's trailing NUL."""

_SCRUBBED: set[str] = set()
"""Names :func:`scrub_variable` removed in this process (a later load explains the absence)."""


@dataclass(frozen=True)
class ScrubReport:
    """What :func:`scrub_variable` overwrote."""

    c_strings: int
    """``NAME=value`` strings overwritten: ``environ`` entries and original-block entries,
    each address counted once."""
    python_objects: int
    """``bytes`` values of Python's environment dicts overwritten in place."""
    shared: int
    """``bytes`` values left as they were because something else references them."""
    removed: bool
    """The variable was in ``os.environ`` (or the C environment) and was removed."""

    @property
    def complete(self) -> bool:
        """Something was found, and nothing found was left unwiped."""
        return self.removed and not self.shared


def was_scrubbed(name: str) -> bool:
    """True if :func:`scrub_variable` removed ``name`` in this process."""
    return name in _SCRUBBED


def scrub_variable(name: str) -> ScrubReport:
    """Overwrite variable ``name``'s value wherever this process holds it, then unset it.

    The module docstring lists the places and what is left. The caller must hold
    no reference to the value's ``bytes`` object (read from ``os.environb``),
    or that object counts as shared and is left.
    """
    if not name or "=" in name or "\0" in name:
        raise ValueError(f"not an environment variable name: {name!r}")
    key = os.fsencode(name)
    prefix = key + b"="
    dicts = _python_environment_dicts()
    present = any(key in data for data in dicts)  # `name in os.environ` would decode the value
    c_strings = _scrub_c_environment(prefix)
    wiped, shared = _scrub_python_environment(key)
    removed = present or c_strings > 0
    os.unsetenv(name)  # what `del os.environ[name]` does, without decoding the value
    for data in dicts:
        data.pop(key, None)
    if removed:
        _SCRUBBED.add(name)
    return ScrubReport(c_strings, wiped, shared, removed)


# -- the C environment -----------------------------------------------------------------------


def _scrub_c_environment(prefix: bytes) -> int:
    """Zero the value of every ``prefix``-string of ``environ`` and of the original block.

    Returns how many strings had a value to zero (each address counted once).
    """
    try:
        libc = ctypes.CDLL(None)
        strnlen = libc.strnlen
    except (OSError, AttributeError):
        return 0
    strnlen.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    strnlen.restype = ctypes.c_size_t
    zeroed: dict[int, int] = {}  # address -> bytes zeroed there
    for address in _environ_entries(libc):
        if address not in zeroed and _matches(address, prefix, strnlen(address, len(prefix))):
            zeroed[address] = _zero_value(address + len(prefix), strnlen, sys.maxsize)
    block = _original_block()
    if block is not None:
        start, end = block
        address = start
        while address < end:
            length = int(strnlen(address, end - address))
            if address not in zeroed and _matches(address, prefix, length):
                value = address + len(prefix)
                zeroed[address] = _zero_value(value, strnlen, end - value)
            address += length + 1
    return sum(1 for size in zeroed.values() if size)


def _environ_entries(libc: ctypes.CDLL) -> list[int]:
    """The addresses the C library's ``environ`` array points at (none if it has none)."""
    try:
        environ = ctypes.POINTER(ctypes.c_void_p).in_dll(libc, "environ")
    except ValueError:
        return []
    entries: list[int] = []
    if not environ:
        return entries
    index = 0
    while (entry := environ[index]) is not None:
        entries.append(entry)
        index += 1
    return entries


def _original_block() -> tuple[int, int] | None:
    """``env_start`` and ``env_end`` (fields 50 and 51 of ``/proc/self/stat``), if known."""
    try:
        with open("/proc/self/stat", "rb") as stream:
            stat = stream.read()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2 :].split()  # after the command name: field 3 on
    if len(fields) < 49:
        return None  # a kernel older than 3.5
    start, end = int(fields[47]), int(fields[48])
    return (start, end) if 0 < start < end else None


def _matches(address: int, prefix: bytes, length: int) -> bool:
    """True if the string at ``address`` (``length`` known bytes) starts with ``prefix``."""
    return length >= len(prefix) and ctypes.string_at(address, len(prefix)) == prefix


def _zero_value(value: int, strnlen: Callable[[int, int], int], limit: int) -> int:
    """Overwrite the NUL-terminated string at ``value`` (at most ``limit`` bytes) with zeros."""
    size = int(strnlen(value, limit))
    if size:
        ctypes.memset(value, 0, size)
    return size


# -- Python's copy ---------------------------------------------------------------------------


def _python_environment_dicts() -> list[dict[bytes, bytes]]:
    """The distinct dicts holding Python's environment as bytes (one on CPython/POSIX)."""
    found: list[dict[bytes, bytes]] = []
    candidates: list[object] = [getattr(os.environ, "_data", None)]
    if os.supports_bytes_environ:
        candidates.append(getattr(os.environb, "_data", None))
    try:
        import posix  # not on Windows
    except ImportError:
        pass
    else:
        candidates.append(posix.environ)
    for data in candidates:
        if isinstance(data, dict) and not any(data is known for known in found):
            found.append(data)
    return found


def _scrub_python_environment(key: bytes) -> tuple[int, int]:
    """Overwrite the ``bytes`` values stored under ``key``: (wiped, left because shared)."""
    dicts = _python_environment_dicts()
    values: list[bytes] = []
    for data in dicts:
        value = data.get(key)
        if isinstance(value, bytes) and not any(value is seen for seen in values):
            values.append(value)
    wiped = shared = 0
    while values:
        value = values.pop()
        if not value:
            continue  # empty: nothing to overwrite
        holders = sum(1 for data in dicts if data.get(key) is value)
        if _only_held_by(value, holders) and overwrite_bytes(value):
            wiped += 1
        else:
            shared += 1
        del value
    return wiped, shared


def _only_held_by(value: bytes, holders: int) -> bool:
    """True if ``value`` is referenced by ``holders`` containers and the caller's one reference.

    A fresh object of the same type, held the same way (``holders`` dicts, one
    local here, one in a list standing for the caller's), is the yardstick, so the
    comparison does not depend on how this interpreter counts the references of
    arguments and locals.
    """
    if type(value) is not bytes or len(value) < 2 or sys.implementation.name != "cpython":
        return False
    probe = bytes(bytearray(len(value)))  # len >= 2: never a cached one-byte object
    holder_dicts = [{0: probe} for _ in range(holders)]
    callers = [probe]
    baseline = sys.getrefcount(probe)
    held = sys.getrefcount(value)
    del holder_dicts, callers
    return held <= baseline
