"""The writer lock of the ``filesystem`` store: ``flock``, re-entrant, with a deadline.

Threads of one process wait on a re-entrant lock; processes on an exclusive
``flock`` of the key directory's own descriptor, so the lock leaves no file in
the directory (Acra's backup reads every file there) and the kernel releases
it when its holder dies, even by SIGKILL. The first, outermost acquisition
calls ``on_acquire`` (the store uses it to sweep what a dead writer left).
Waiting past ``timeout`` raises :class:`KeyStoreError` naming the holder when
``/proc/locks`` tells.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import KeyStoreError
from .fs_files import ensure_dir, os_errors, quoted
from .reentrant import ReentrantHold

__all__ = ["DirectoryLock", "lock_holders"]

_POLL_FIRST = 0.001
_POLL_MAX = 0.05


class DirectoryLock(ReentrantHold):
    """The lock of the key directory ``keys_dir``, held on the directory itself."""

    def __init__(self, keys_dir: Path, timeout: float, on_acquire: Callable[[], None]) -> None:
        super().__init__(timeout)
        self.keys_dir = keys_dir
        self.path = keys_dir
        self._on_acquire = on_acquire
        self._fd: int | None = None

    def busy_message(self) -> str:
        return (
            f"timed out after {self.timeout:g} s waiting for the key store lock of "
            f"{self.keys_dir}: another thread of this process holds it; raise lock_timeout "
            "or let that thread finish"
        )

    def release_outer(self) -> None:
        self.release_if_idle()

    def forget_outer(self) -> None:
        # the parent's flock stays: a lock belongs to the open file description, which
        # the parent's descriptor keeps open; closing the child's copy releases nothing
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def release_if_idle(self) -> None:
        """Close the lock's descriptor unless the lock is held (``close()`` of the store)."""
        if self._depth == 0:
            fd, self._fd = self._fd, None
            if fd is not None:
                os.close(fd)

    @contextmanager
    def hold_if_free(self) -> Iterator[bool]:
        """Hold the lock for a ``with`` block if no one holds it now (yields whether it does).

        Never waits and never creates the directory: for the sweep a read-only
        command does on the way.
        """
        if not self._thread_lock.acquire(blocking=False):
            yield False
            return
        try:
            if self._depth:
                yield True
                return
            try:
                fd = os.open(self.keys_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                yield False
                return
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    yield False
                    return
                self._depth += 1
                try:
                    yield True
                finally:
                    self._depth -= 1
            finally:
                os.close(fd)
        finally:
            self._thread_lock.release()

    def take_outer(self, deadline: float) -> None:
        with os_errors(f"open the key directory {self.path} to lock it"):
            ensure_dir(self.keys_dir, top=True)
            fd = os.open(self.keys_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            delay = _POLL_FIRST
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise KeyStoreError(self._timeout_message(fd)) from None
                    time.sleep(min(delay, remaining))
                    delay = min(delay * 2, _POLL_MAX)
                except OSError as exc:
                    raise KeyStoreError(f"cannot lock {self.path}: {exc.strerror}") from exc
            self._on_acquire()
        except BaseException:
            os.close(fd)  # closing drops the flock, if it was taken
            raise
        self._fd = fd

    def _timeout_message(self, fd: int) -> str:
        holders = lock_holders(os.fstat(fd))
        who = (
            f"process {', '.join(holders)} holds it"
            if holders
            else f"another process holds it (see `fuser {quoted(self.path)}`)"
        )
        return (
            f"timed out after {self.timeout:g} s waiting for the key store lock "
            f"{self.path}: {who}. Wait for that keyloader command to finish (or stop it), "
            "or raise the store option lock_timeout"
        )


def lock_holders(lock_stat: os.stat_result) -> list[str]:
    """PIDs holding a flock on the lock file, from ``/proc/locks`` (Linux; best effort)."""
    wanted = f"{os.major(lock_stat.st_dev):02x}:{os.minor(lock_stat.st_dev):02x}:"
    wanted += str(lock_stat.st_ino)
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            lines = locks.read().splitlines()
    except OSError:
        return []
    holders: list[str] = []
    for line in lines:
        fields = line.split()
        if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK":
            continue
        if fields[5] == wanted and fields[4] not in holders:
            holders.append(fields[4])
    return holders
