"""``SecretBytes``: a wipeable buffer for key material."""

from __future__ import annotations

import hmac
from types import TracebackType
from typing import Any, NoReturn

__all__ = ["SecretBytes"]


class SecretBytes:
    """Key material in a ``bytearray`` that can be zeroed in place.

    Use it as a context manager, or call :meth:`wipe` when done. Its ``repr``
    and ``str`` show only the length, it refuses pickling and hashing, and
    ``==`` compares in constant time. :meth:`bytes` hands out an immutable copy
    that cannot be wiped: prefer :attr:`view` or passing the object itself to
    APIs that take any bytes-like object.
    """

    __slots__ = ("__weakref__", "_buf")

    def __init__(self, data: bytes | bytearray | memoryview = b"") -> None:
        self._buf = bytearray(data)

    @classmethod
    def adopt(cls, buf: bytearray) -> SecretBytes:
        """Wrap ``buf`` without copying; the caller must not keep a reference."""
        obj = cls.__new__(cls)
        obj._buf = buf
        return obj

    @classmethod
    def zeroed(cls, size: int) -> SecretBytes:
        """A buffer of ``size`` zero bytes, to be filled in place."""
        return cls.adopt(bytearray(size))

    @property
    def buffer(self) -> bytearray:
        """The underlying mutable buffer (filled in place by decrypt_into)."""
        return self._buf

    @property
    def view(self) -> memoryview:
        """A read-only view of the bytes, without a copy."""
        return memoryview(self._buf).toreadonly()

    def bytes(self) -> bytes:
        """An immutable copy. It cannot be wiped: keep it short-lived."""
        return bytes(self._buf)

    def wipe(self) -> None:
        """Overwrite every byte with zero, then empty the buffer."""
        buf = self._buf
        buf[:] = bytes(len(buf))
        try:
            del buf[:]
        except BufferError:  # a live memoryview pins the size: the zeroes stay
            return

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
