"""Opt-in process hardening: no core dumps, and no reading of this process's memory.

:func:`harden_process` makes two changes to the calling process, and reports
which took effect:

- ``prctl(PR_SET_DUMPABLE, 0)`` (Linux): the process is no longer *dumpable*. The
  kernel makes no core dump of it at all (to a file or to a ``core_pattern``
  pipe), its ``/proc/PID`` files are owned by root, and a process of the same
  user can no longer ``ptrace`` it or read ``/proc/PID/mem``,
  ``/proc/PID/environ``, ``maps``, ``fd/``... (root, or a holder of
  ``CAP_SYS_PTRACE``, still can).
- ``RLIMIT_CORE`` 0, soft and hard: the kernel writes no core file. A
  ``core_pattern`` that pipes to a handler is still started (the kernel ignores
  the limit for pipes); it is told the limit (``%c``), and ``systemd-coredump``
  then stores no core. This half also holds in ``fork()`` and ``execve``
  children, where the first is undone (below).

What it costs, and for how long:

- debuggers and profilers that attach (``gdb -p``, ``py-spy``, ``strace -p``,
  ``perf`` of the process) fail for the same user; so do monitoring agents that
  read another process's ``/proc/PID/fd`` or ``io`` without privileges (open file
  counts, for example), and ``lsof`` run as that user;
- no core file to investigate a crash (``faulthandler`` still prints Python
  tracebacks to stderr);
- the hard limit cannot be raised again without ``CAP_SYS_RESOURCE``, and it is
  inherited by every child, including a service started by ``keyloader exec``;
- the dumpable attribute is kept by ``fork()`` children but reset to 1 by
  ``execve`` of an ordinary program (``keyloader exec``'s service must harden
  itself), and set to ``/proc/sys/fs/suid_dumpable`` when the process changes
  its user or group ids.

Elsewhere than Linux only the core limit is set (``dumpable_off`` is False).
Nothing here is imported by ``import keyloader``; ``ctypes`` and ``resource``
are imported when the function runs.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

__all__ = ["PR_GET_DUMPABLE", "PR_SET_DUMPABLE", "HardeningReport", "harden_process"]

PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
"""``prctl`` options, from ``<linux/prctl.h>``."""


@dataclass(frozen=True)
class HardeningReport:
    """What :func:`harden_process` achieved, each read back after the change."""

    dumpable_off: bool
    """``PR_GET_DUMPABLE`` now returns 0 (Linux only)."""
    core_limit_zero: bool
    """``RLIMIT_CORE`` is now 0 (the soft limit; the hard one too when it could be lowered)."""

    @property
    def complete(self) -> bool:
        """Both changes took effect."""
        return self.dumpable_off and self.core_limit_zero


def harden_process() -> HardeningReport:
    """Make this process non-dumpable and set its core-file limit to 0 (see the module)."""
    return HardeningReport(dumpable_off=_dumpable_off(), core_limit_zero=_core_limit_zero())


def _dumpable_off() -> bool:
    """``prctl(PR_SET_DUMPABLE, 0)``, then True if ``PR_GET_DUMPABLE`` says 0."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
    prctl.restype = ctypes.c_int
    if prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        return False
    return bool(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0)


def _core_limit_zero() -> bool:
    """``RLIMIT_CORE`` (0, 0), else (0, hard); True if the soft limit is now 0."""
    try:
        import resource
    except ImportError:  # not a Unix
        return False
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        try:
            _, hard = resource.getrlimit(resource.RLIMIT_CORE)
            resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
        except (ValueError, OSError):
            return False
    return resource.getrlimit(resource.RLIMIT_CORE)[0] == 0
