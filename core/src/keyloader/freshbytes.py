"""A new ``bytes`` object filled in place, for large values built without a second copy.

CPython's own C code builds a ``bytes`` this way: ``PyBytes_FromStringAndSize(NULL, n)``
makes a fresh, unshared object whose payload is written before anyone else sees it,
and a builder that made it too large shrinks it before handing it out. :func:`fresh`
does the same through ctypes and gives a writable view of the payload; :func:`trim`
drops spare bytes at its end (``Py_SET_SIZE`` and the closing NUL byte every ``bytes``
keeps). A 1 MiB container is so encrypted straight into the object returned: one
allocation, where a ``b"".join`` of parts costs a second one and, for sizes glibc maps
on their own, a page fault per 4 KiB each time.

CPython with the GIL only, and only when a probe at import finds the object layout
these steps rely on; elsewhere :data:`AVAILABLE` is False and callers join parts.
"""

from __future__ import annotations

import ctypes
import sys
import sysconfig
from typing import Final

__all__ = ["AVAILABLE", "fresh", "trim"]

_PyBUF_WRITE: Final = 0x200
_PAYLOAD: Final = sys.getsizeof(b"") - 1
"""Where ``ob_sval`` starts, from the object's address."""
_SIZE: Final = 2 * ctypes.sizeof(ctypes.c_ssize_t)
"""Where ``ob_size`` is: after ``ob_refcnt`` and ``ob_type`` (``PyVarObject``)."""


def _bind() -> tuple[object, object] | None:
    if sys.implementation.name != "cpython" or sysconfig.get_config_var("Py_GIL_DISABLED"):
        return None
    new = ctypes.pythonapi.PyBytes_FromStringAndSize
    new.restype = ctypes.py_object
    new.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)
    view = ctypes.pythonapi.PyMemoryView_FromMemory
    view.restype = ctypes.py_object
    view.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int)
    probe = b"".join((b"probe", b"!"))  # a fresh object of 6 bytes
    if ctypes.c_ssize_t.from_address(id(probe) + _SIZE).value != len(probe):
        return None
    if ctypes.string_at(id(probe) + _PAYLOAD, len(probe) + 1) != probe + b"\0":
        return None
    return new, view


_calls = _bind()
AVAILABLE: Final = _calls is not None


def fresh(size: int) -> tuple[bytes, memoryview]:
    """A new ``bytes`` of ``size`` (> 1) unset bytes and a writable view of them.

    The caller fills every byte through the view, releases it, :func:`trim` s what it
    did not need, and only then lets the object go anywhere: until then it is not a
    valid value (nothing else references it, its hash is not computed).
    """
    if _calls is None or size < 2:  # 0 and 1 byte objects are shared singletons
        raise ValueError("fresh() needs CPython and a size of 2 or more")
    new, view = _calls
    data: bytes = new(None, size)  # type: ignore[operator]
    return data, view(id(data) + _PAYLOAD, size, _PyBUF_WRITE)  # type: ignore[operator]


def trim(data: bytes, size: int) -> None:
    """Shrink ``data`` (from :func:`fresh`, not yet handed out, no view left) to its first
    ``size`` bytes, as CPython shrinks a bytes it built too large."""
    if not 2 <= size <= len(data) or sys.getrefcount(data) > 3:  # the caller's, this one
        raise ValueError("trim() takes a fresh bytes that nothing else holds, and a size in it")
    ctypes.memset(id(data) + _PAYLOAD + size, 0, 1)
    ctypes.c_ssize_t.from_address(id(data) + _SIZE).value = size
