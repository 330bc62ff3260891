"""A writer lock that is re-entrant within one store object and shared by its threads.

Stores whose lock lives outside the process (``flock``, a Redis lease)
subclass :class:`ReentrantHold`: threads of the process wait on one
``RLock`` up to ``timeout``; the outer lock is taken by the outermost
:meth:`~ReentrantHold.hold` only (:meth:`_take`) and let go when it ends
(:meth:`_let_go`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import KeyStoreError

__all__ = ["ReentrantHold"]


class ReentrantHold:
    """Thread and nesting bookkeeping around an outer lock; subclasses take and let go of it."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._thread_lock = threading.RLock()
        self._depth = 0

    @property
    def held(self) -> bool:
        """Whether this object holds the lock (in some thread)."""
        return self._depth > 0

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the lock for a ``with`` block; re-entrant within this object."""
        deadline = time.monotonic() + self.timeout
        if not self._thread_lock.acquire(timeout=self.timeout):
            raise KeyStoreError(self._busy_message())
        try:
            if self._depth == 0:
                self._take(deadline)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._let_go()
        finally:
            self._thread_lock.release()

    def _busy_message(self) -> str:
        """What a thread that waited ``timeout`` for another thread of this process is told."""
        raise NotImplementedError

    def _take(self, deadline: float) -> None:
        """Take the outer lock before ``deadline`` (monotonic), or raise ``KeyStoreError``."""
        raise NotImplementedError

    def _let_go(self) -> None:
        """Let go of the outer lock."""
        raise NotImplementedError
