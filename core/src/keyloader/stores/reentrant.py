"""A writer lock that is re-entrant within one store object and shared by its threads.

Stores whose lock lives outside the process (``flock``, a Redis lease)
subclass :class:`ReentrantHold`: threads of the process wait on one
``RLock`` up to ``timeout``; the outer lock is taken by the outermost
:meth:`~ReentrantHold.hold` only (:meth:`_take`) and let go when it ends
(:meth:`_let_go`).

After ``fork()`` the child holds nothing: its thread lock is new and its
bookkeeping empty, and :meth:`_forget_outer` drops the parent's outer lock
without releasing it (the parent still holds it). A ``with`` block the fork
happened in ends in the child without touching the lock.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import KeyStoreError

__all__ = ["ReentrantHold"]

_ALIVE: weakref.WeakSet[ReentrantHold] = weakref.WeakSet()


class ReentrantHold:
    """Thread and nesting bookkeeping around an outer lock; subclasses take and let go of it."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._generation = 0
        _ALIVE.add(self)

    @property
    def held(self) -> bool:
        """Whether this object holds the lock (in some thread)."""
        return self._depth > 0

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the lock for a ``with`` block; re-entrant within this object."""
        deadline = time.monotonic() + self.timeout
        thread_lock = self._thread_lock
        if not thread_lock.acquire(timeout=self.timeout):
            raise KeyStoreError(self._busy_message())
        generation = self._generation
        try:
            if self._depth == 0:
                self._take(deadline)
            self._depth += 1
            try:
                yield
            finally:
                if generation == self._generation:  # else: forked meanwhile, nothing is ours
                    self._depth -= 1
                    if self._depth == 0:
                        self._let_go()
        finally:
            if generation == self._generation:
                thread_lock.release()

    def after_fork(self) -> None:
        """In a forked child: hold nothing, share no lock state with the parent."""
        self._generation += 1
        self._thread_lock = threading.RLock()
        if self._depth:
            self._depth = 0
            self._forget_outer()

    def _forget_outer(self) -> None:
        """Drop the outer lock the parent holds, without releasing it (the child's copy only)."""

    def _busy_message(self) -> str:
        """What a thread that waited ``timeout`` for another thread of this process is told."""
        raise NotImplementedError

    def _take(self, deadline: float) -> None:
        """Take the outer lock before ``deadline`` (monotonic), or raise ``KeyStoreError``."""
        raise NotImplementedError

    def _let_go(self) -> None:
        """Let go of the outer lock."""
        raise NotImplementedError


def _after_fork_in_child() -> None:
    for hold in list(_ALIVE):
        hold.after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
