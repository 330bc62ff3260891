"""``SecretBytes``: key material in secret pages, zeroed when done; ``burn`` for the rest."""

from __future__ import annotations

import ctypes
import hmac
import os
import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any, NoReturn, TypeVar

from .secret_pages import allocate, release

__all__ = ["SecretBytes", "burn", "overwrite_bytes"]

_EMPTY = memoryview(bytearray())
_MISSING = object()
_T = TypeVar("_T")
_BYTES_PAYLOAD = sys.getsizeof(b"") - 1
"""Where a ``bytes`` object's payload starts, from its address (CPython's ``ob_sval``)."""
_ZEROS = memoryview(bytes(256))


def _address_space() -> memoryview | None:
    """One writable byte view of the process's address space, made once (64-bit CPython).

    Zeroing a payload through it is a slice assignment (0.1 µs) where ``ctypes.memset``
    is a foreign-function call (0.5 µs); both write to the same address. Only the
    addresses of objects :func:`burn` is given are ever touched.
    """
    if sys.implementation.name != "cpython" or sys.maxsize < 1 << 62:
        return None
    try:  # from the first page on (never mapped): no offset from a NULL base
        return memoryview((ctypes.c_char * ((1 << 56) - _BASE)).from_address(_BASE)).cast("B")
    except (TypeError, ValueError, OverflowError, MemoryError):
        return None


_BASE = 4096
_MEMORY = _address_space()


def _zero(address: int, length: int) -> None:
    memory = _MEMORY
    start = address - _BASE
    if memory is not None and length <= len(_ZEROS) and 0 <= start <= len(memory) - length:
        memory[start : start + length] = _ZEROS[:length]
    else:
        ctypes.memset(address, 0, length)


def overwrite_bytes(value: bytes) -> bool:
    """Overwrite the payload of the ``bytes`` object ``value`` with zeros, in place.

    Only for an object no one else uses (the caller checks: ``bytes`` are immutable,
    and every holder sees the zeros). Refused (False) for anything but an exact
    ``bytes`` of two or more bytes (shorter ones are shared singletons) on CPython.
    """
    if type(value) is not bytes or len(value) < 2 or sys.implementation.name != "cpython":
        return False
    _zero(id(value) + _BYTES_PAYLOAD, len(value))
    return True


def burn(data: bytes) -> None:
    """Zero the payload of ``data``, a ``bytes`` a library handed back with key material.

    For the few places where an API returns key material as ``bytes`` (an HMAC
    digest used as a key, an ECDH shared secret): the object is overwritten in place
    before it is freed, so the freed memory holds zeroes. Only for a fresh object
    that nothing else references (never an interned or shared one); CPython only.
    """
    if type(data) is bytes and len(data) > 1 and sys.getrefcount(data) <= 3:
        _zero(id(data) + _BYTES_PAYLOAD, len(data))  # 3: the caller's name and this argument


class SecretBytes:
    """Key material in secret pages (:mod:`keyloader.secret_pages`), zeroed when done.

    The bytes live in a slot of locked pages that core dumps leave out (and that not
    even root can read where the kernel has ``memfd_secret``), never in the Python
    heap. Use it as a context manager, or call :meth:`wipe` when done: the slot is
    zeroed and given back. Its ``repr`` and ``str`` show only the length, it refuses
    pickling and hashing, and ``==`` compares in constant time. :meth:`bytes` hands
    out an immutable copy in ordinary memory that cannot be wiped: prefer
    :attr:`view`, or pass :attr:`buffer` to APIs that take any bytes-like object.
    """

    __slots__ = ("__weakref__", "_buf", "_memo")

    _memo: dict[str, Any] | None

    def __init__(self, data: bytes | bytearray | memoryview = b"") -> None:
        source = memoryview(data).cast("B") if not isinstance(data, bytes | bytearray) else data
        self._buf = allocate(len(source))
        self._buf[:] = source

    @classmethod
    def adopt(cls, buf: bytearray) -> SecretBytes:
        """Move ``buf`` into secret pages and zero it (the caller drops its reference)."""
        obj = cls.__new__(cls)
        obj._buf = allocate(len(buf))
        obj._buf[:] = buf
        buf[:] = bytes(len(buf))
        return obj

    @classmethod
    def random(cls, size: int) -> SecretBytes:
        """``size`` bytes from the OS's CSPRNG, in secret pages (the heap copy is burnt)."""
        obj = cls.zeroed(size)
        fresh = os.urandom(size)
        obj._buf[:] = fresh
        burn(fresh)
        return obj

    @classmethod
    def zeroed(cls, size: int) -> SecretBytes:
        """A buffer of ``size`` zero bytes in secret pages, to be filled in place."""
        obj = cls.__new__(cls)
        obj._buf = allocate(size)
        return obj

    def lease(self) -> SecretBytes:
        """A read-only ``SecretBytes`` on the same bytes, which keeps them alive: wiping
        it lets go of them, and they are zeroed once neither it nor ``self`` holds them
        (how the key cache hands out a key without a copy)."""
        lease = _Lease.__new__(_Lease)
        lease._buf = self._buf.toreadonly()
        lease._owner = self
        return lease

    def detach(self) -> SecretBytes:
        """``self``, or for a lease a ``SecretBytes`` of its own (a copy), the lease let go."""
        return self

    def inherit_on_fork(self) -> SecretBytes:
        """Move the bytes to pages a forked child keeps a copy of (its own), and return
        ``self``. For master keys (the preload pattern); every other key reads as zeroes
        in a forked child."""
        buf = self._buf
        moved = allocate(len(buf), inherit=True)
        moved[:] = buf
        self._buf = moved
        if len(buf):
            release(buf)
        return self

    @property
    def buffer(self) -> memoryview:
        """The writable bytes themselves (filled in place by ``decrypt_into``)."""
        return self._buf

    @property
    def view(self) -> memoryview:
        """A read-only view of the bytes, without a copy."""
        return self._buf.toreadonly()

    def bytes(self) -> bytes:
        """An immutable copy in ordinary memory. It cannot be wiped: keep it short-lived."""
        return self._buf.tobytes()

    def wipe(self) -> None:
        """Zero the bytes and give the slot back; the buffer is empty afterwards."""
        buf, self._buf = self._buf, _EMPTY
        if len(buf):
            release(buf)
        memo = getattr(self, "_memo", None)
        if memo:
            self._memo = None
            for value in list(memo.values()):
                for part in value if isinstance(value, tuple) else (value,):
                    if isinstance(part, SecretBytes):
                        part.wipe()

    def _derived(self, label: str, make: Callable[[SecretBytes], _T]) -> _T:
        """``make(self)``, made once and kept as long as these bytes are (a cached key's
        for as long as the cache holds it); a ``SecretBytes`` among them is wiped with
        them (also inside a tuple). For the engine: what is derived from a key is as
        secret as the key."""
        memo: dict[str, Any] | None = getattr(self, "_memo", None)
        if memo is None:
            memo = self._memo = {}
        found = memo.get(label, _MISSING)
        if found is _MISSING:
            made = make(self)
            found = memo.setdefault(label, made)
            if found is not made and isinstance(made, SecretBytes):
                made.wipe()  # another thread made it meanwhile
        return found  # type: ignore[no-any-return]

    def __del__(self) -> None:  # a forgotten wipe still zeroes the slot and gives it back
        buf = getattr(self, "_buf", _EMPTY)  # unset if __init__ failed
        if len(buf):
            release(buf)

    @property
    def wiped(self) -> bool:
        """True once :meth:`wipe` ran (or the buffer was empty)."""
        return not any(self._buf)

    def __len__(self) -> int:
        return len(self._buf)

    def __bool__(self) -> bool:
        return bool(self._buf)

    def __enter__(self) -> SecretBytes:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.wipe()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SecretBytes):
            return hmac.compare_digest(self._buf, other._buf)
        if isinstance(other, bytes | bytearray | memoryview):
            if isinstance(other, memoryview) and not other.c_contiguous:
                other = other.tobytes()
            return hmac.compare_digest(self._buf, other)  # no copy of the other side
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SecretBytes(<{len(self._buf)} bytes, redacted>)"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("SecretBytes cannot be pickled: key material stays in this process")

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("SecretBytes cannot be pickled: key material stays in this process")

    def __copy__(self) -> SecretBytes:
        return SecretBytes(self._buf)

    def __deepcopy__(self, memo: dict[int, Any]) -> SecretBytes:
        return SecretBytes(self._buf)


class _Lease(SecretBytes):
    """What :meth:`SecretBytes.lease` returns: read-only, and wiping it only lets go."""

    __slots__ = ("_owner",)

    _owner: SecretBytes | None

    def wipe(self) -> None:
        self._buf = _EMPTY
        self._owner = None

    def __del__(self) -> None:
        pass

    def detach(self) -> SecretBytes:
        owned = SecretBytes(self._buf)
        self.wipe()
        return owned

    def _derived(self, label: str, make: Callable[[SecretBytes], _T]) -> _T:
        owner = self._owner
        if owner is None:
            raise ValueError("this lease was let go")
        return owner._derived(label, make)

    def inherit_on_fork(self) -> SecretBytes:
        raise TypeError("a leased key belongs to the cache: copy it with SecretBytes(lease)")
