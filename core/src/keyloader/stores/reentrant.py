"""A writer lock that is re-entrant within one store object and shared by its threads.

Stores whose lock lives outside the process (``flock``, a Redis lease)
subclass :class:`ReentrantHold` (exported as ``keyloader.stores.ReentrantHold``) and
implement :meth:`~ReentrantHold.take_outer`, :meth:`~ReentrantHold.release_outer` and
:meth:`~ReentrantHold.busy_message` (and :meth:`~ReentrantHold.forget_outer` if
dropping the outer lock in a forked child needs more than forgetting it): threads of the
process wait on one ``RLock`` up to ``timeout``; the outer lock is taken by the outermost
:meth:`~ReentrantHold.hold` only and released when it ends.

After ``fork()`` the child holds nothing: its thread lock is new and its
bookkeeping empty, and :meth:`~ReentrantHold.forget_outer` drops the parent's outer lock
without releasing it (the parent still holds it). A ``with`` block the fork
happened in ends in the child without touching the lock.

The names before 0.2 (``_take``, ``_let_go``, ``_forget_outer``, ``_busy_message``)
still work in a subclass, with a ``KeyloaderDeprecationWarning``; 0.3 drops them.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from ..deprecation import warn_deprecated
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
            raise KeyStoreError(self.busy_message())
        generation = self._generation
        try:
            if self._depth == 0:
                self.take_outer(deadline)
            self._depth += 1
            try:
                yield
            finally:
                if generation == self._generation:  # else: forked meanwhile, nothing is ours
                    self._depth -= 1
                    if self._depth == 0:
                        self.release_outer()
        finally:
            if generation == self._generation:
                thread_lock.release()

    def after_fork(self) -> None:
        """In a forked child: hold nothing, share no lock state with the parent."""
        self._generation += 1
        self._thread_lock = threading.RLock()
        if self._depth:
            self._depth = 0
            self.forget_outer()

    # -- what a subclass implements -----------------------------------------------------

    def take_outer(self, deadline: float) -> None:
        """Take the outer lock before ``deadline`` (monotonic), or raise ``KeyStoreError``."""
        self._renamed("_take", "take_outer")(deadline)

    def release_outer(self) -> None:
        """Let go of the outer lock."""
        self._renamed("_let_go", "release_outer")()

    def busy_message(self) -> str:
        """What a thread that waited ``timeout`` for another thread of this process is told."""
        message: str = self._renamed("_busy_message", "busy_message")()
        return message

    def forget_outer(self) -> None:
        """Drop the outer lock the parent holds, without releasing it (the child's copy only).
        The default forgets nothing more than the bookkeeping :meth:`after_fork` clears."""
        old = getattr(type(self), "_forget_outer", None)
        if old is not None:
            self._renamed("_forget_outer", "forget_outer")()

    def _renamed(self, old: str, new: str) -> Callable[..., Any]:
        """A subclass's method under its name before 0.2, with a deprecation warning."""
        method = getattr(self, old, None)
        if method is None:
            raise NotImplementedError(f"{type(self).__name__} must implement {new}()")
        warn_deprecated(
            f"{type(self).__name__}.{old}()", instead=f"{new}()", removed_in="0.3", stacklevel=4
        )
        return cast("Callable[..., Any]", method)


def _after_fork_in_child() -> None:
    for hold in list(_ALIVE):
        hold.after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
