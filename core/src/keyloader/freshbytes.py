"""A new ``bytes`` object filled in place, for large values built without a second copy.

CPython's own C code builds a ``bytes`` this way: ``PyBytes_FromStringAndSize(NULL, n)``
makes a fresh, unshared object whose payload is written before anyone else sees it.
:func:`fresh` does the same through ctypes and hands out a writable view of the
payload, so a 1 MiB container is encrypted straight into the object that is returned
(one allocation, where a ``b"".join`` of parts costs a second one and, for sizes glibc
maps on their own, a page fault per 4 KiB each time). CPython only: elsewhere
:data:`AVAILABLE` is False and callers join parts instead.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Final

__all__ = ["AVAILABLE", "fresh"]

AVAILABLE: Final = sys.implementation.name == "cpython"
_PyBUF_WRITE: Final = 0x200

if AVAILABLE:
    _new = ctypes.pythonapi.PyBytes_FromStringAndSize
    _new.restype = ctypes.py_object
    _new.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)
    _view = ctypes.pythonapi.PyMemoryView_FromMemory
    _view.restype = ctypes.py_object
    _view.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int)
    _PAYLOAD: Final = sys.getsizeof(b"") - 1  # where ob_sval starts


def fresh(size: int) -> tuple[bytes, memoryview]:
    """A new ``bytes`` of ``size`` (> 1) unset bytes and a writable view of them.

    The caller fills every byte through the view, releases it, and only then lets
    the object go anywhere: until then it is not a valid value (its hash is not
    computed, nothing else references it).
    """
    if not AVAILABLE or size < 2:  # 0 and 1 byte objects are shared singletons
        raise ValueError("fresh() needs CPython and a size of 2 or more")
    data: bytes = _new(None, size)
    view: memoryview = _view(id(data) + _PAYLOAD, size, _PyBUF_WRITE)
    return data, view
