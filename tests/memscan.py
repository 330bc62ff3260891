"""Look for secrets in a live process's memory, as a whole and as a core dump would hold it.

:func:`scan` reads every readable mapping of ``/proc/PID/maps`` through
``/proc/PID/mem`` (root, or the parent of the process, may) and counts each needle.
A mapping that fails to read (memfd_secret pages, ``[vsyscall]``, device memory) is
listed in :attr:`ScanResult.unreadable`; ``[vvar]`` is skipped outright.

The core view leaves out mappings whose ``VmFlags`` in ``/proc/PID/smaps`` hold
``dd`` (``MADV_DONTDUMP``, and memfd_secret pages). The kernel leaves out more: ``io``
mappings, and whatever ``/proc/PID/coredump_filter`` excludes (by default file-backed
pages never written to). So the core view may count a copy a real core would not
hold, never the reverse.

:func:`push_registers` makes a child's CPU registers reach memory before a scan: a
signal it handles (in Python) makes the kernel save them in a signal frame on the
stack of the thread taking it. The stack is reused right after, from the top of the
frame down, and the top holds the end of the XSAVE area (AVX-512's zmm16-31), so
:func:`scan` also reads every thread's registers as a core dump's notes hold them
(``PTRACE_GETREGSET``: the general registers and, on x86-64, the whole XSAVE area)
and counts hits there under a ``[registers of thread N]`` pseudo-mapping.

Test modules import it relatively (``from ..memscan import scan``), like leakscan.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from collections.abc import Mapping as MappingOf
from contextlib import contextmanager
from dataclasses import dataclass, field

__all__ = [
    "Hit",
    "Mapping",
    "ScanResult",
    "push_registers",
    "python_child",
    "read_mappings",
    "read_registers",
    "scan",
]

_HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) [0-9a-f]+ \S+ \d+\s*(.*)$")
_CHUNK = 1 << 20
_SKIPPED = ("[vvar", "[vvar_vclock]")


@dataclass(frozen=True)
class Mapping:
    """One line of ``/proc/PID/maps`` with its ``VmFlags`` from ``smaps``."""

    start: int
    end: int
    perms: str
    pathname: str
    vmflags: frozenset[str]

    @property
    def dumped(self) -> bool:
        """False for mappings a core dump leaves out (``dd``: MADV_DONTDUMP, memfd_secret)."""
        return "dd" not in self.vmflags

    def __str__(self) -> str:
        flags = " ".join(sorted(self.vmflags))
        return f"{self.start:#x}-{self.end:#x} {self.perms} {self.pathname or '[anon]'} ({flags})"


@dataclass(frozen=True)
class Hit:
    """A needle found at ``address``, inside ``mapping``."""

    needle: str
    address: int
    mapping: Mapping


@dataclass
class ScanResult:
    """Every hit of every needle, and the mappings that could not be read."""

    needles: tuple[str, ...]
    hits: list[Hit] = field(default_factory=list)
    unreadable: list[Mapping] = field(default_factory=list)
    scanned: int = 0
    """Bytes read."""

    def count(self, name: str) -> int:
        """Copies of the needle anywhere in readable memory."""
        return sum(1 for hit in self.hits if hit.needle == name)

    def core_count(self, name: str) -> int:
        """Copies of the needle a core dump would hold (see the module docstring)."""
        return sum(1 for hit in self.hits if hit.needle == name and hit.mapping.dumped)

    def where(self, name: str) -> str:
        """Where the copies are, one per line, for an assertion message."""
        found = [f"{hit.address:#x} in {hit.mapping}" for hit in self.hits if hit.needle == name]
        return "\n".join(found) or "nowhere"


def read_mappings(pid: int) -> list[Mapping]:
    """The mappings of ``pid``, from ``/proc/PID/smaps``."""
    mappings: list[Mapping] = []
    start = end = 0
    perms = pathname = ""
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            header = _HEADER.match(line)
            if header:
                start, end = int(header[1], 16), int(header[2], 16)
                perms, pathname = header[3], header[4]
            elif line.startswith("VmFlags:"):
                flags = frozenset(line.split()[1:])
                mappings.append(Mapping(start, end, perms, pathname, flags))
    return mappings


def scan(pid: int, needles: MappingOf[str, bytes], *, registers: bool = True) -> ScanResult:
    """Count each needle (16 bytes or more) in the readable memory of ``pid`` and, with
    ``registers``, in the registers of each of its threads (:func:`read_registers`)."""
    for name, needle in needles.items():
        if len(needle) < 16:
            raise ValueError(f"needle {name!r} is shorter than 16 bytes: it would match by chance")
    overlap = max(len(needle) for needle in needles.values()) - 1 if needles else 0
    result = ScanResult(tuple(needles))
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    try:
        for mapping in read_mappings(pid):
            if mapping.perms[0] != "r" or mapping.pathname.startswith(_SKIPPED):
                continue
            if not _scan_mapping(fd, mapping, needles, overlap, result):
                result.unreadable.append(mapping)
    finally:
        os.close(fd)
    if registers:
        for tid, state in read_registers(pid).items():
            notes = Mapping(0, len(state), "r---", f"[registers of thread {tid}]", frozenset())
            for name, needle in needles.items():
                at = state.find(needle)
                while at >= 0:
                    result.hits.append(Hit(name, at, notes))
                    at = state.find(needle, at + 1)
    return result


_NT_PRSTATUS, _NT_PRFPREG, _NT_X86_XSTATE = 1, 2, 0x202
_PTRACE_ATTACH, _PTRACE_DETACH, _PTRACE_GETREGSET = 16, 17, 0x4204
_WALL = 0x40000000


class _IoVec(ctypes.Structure):
    _fields_ = (("base", ctypes.c_void_p), ("length", ctypes.c_size_t))


def read_registers(pid: int) -> dict[int, bytes]:
    """Each thread's registers as a core dump's notes hold them: the general registers,
    then the vector registers (x86-64: the whole XSAVE area, AVX-512 included; aarch64:
    the FP/SIMD registers). Each thread is stopped (``PTRACE_ATTACH``) while read."""
    libc = ctypes.CDLL(None, use_errno=True)
    ptrace = libc.ptrace
    ptrace.restype = ctypes.c_long
    ptrace.argtypes = (ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p)
    vector_note = _NT_X86_XSTATE if os.uname().machine == "x86_64" else _NT_PRFPREG
    states: dict[int, bytes] = {}
    for entry in os.listdir(f"/proc/{pid}/task"):
        tid = int(entry)
        if ptrace(_PTRACE_ATTACH, tid, None, None) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"PTRACE_ATTACH {tid}: {os.strerror(error)}")
        try:
            os.waitpid(tid, _WALL)
            parts = []
            for note in (_NT_PRSTATUS, vector_note):
                buffer = ctypes.create_string_buffer(16384)
                vector = _IoVec(ctypes.addressof(buffer), len(buffer))
                if ptrace(_PTRACE_GETREGSET, tid, note, ctypes.byref(vector)) == 0:
                    parts.append(buffer.raw[: vector.length])
            states[tid] = b"".join(parts)
        finally:
            ptrace(_PTRACE_DETACH, tid, None, None)
    return states


def _scan_mapping(
    fd: int, mapping: Mapping, needles: MappingOf[str, bytes], overlap: int, result: ScanResult
) -> bool:
    """Search one mapping chunk by chunk; False if a read failed (hits so far are kept)."""
    tail = b""
    address = mapping.start
    while address < mapping.end:
        try:
            chunk = os.pread(fd, min(_CHUNK, mapping.end - address), address)
        except OSError:
            return False
        if not chunk:
            return False
        result.scanned += len(chunk)
        data = tail + chunk
        origin = address - len(tail)
        for name, needle in needles.items():
            at = data.find(needle)
            while at >= 0:
                if at + len(needle) > len(tail):  # not wholly in the tail: not counted yet
                    result.hits.append(Hit(name, origin + at, mapping))
                at = data.find(needle, at + 1)
        tail = data[-overlap:] if overlap else b""
        address += len(chunk)
    return True


def _signal_mask(pid: int, field_name: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1], 16)
    raise LookupError(f"{field_name} not in /proc/{pid}/status")


def push_registers(
    pid: int, signum: int = signal.SIGUSR1, timeout: float = 5.0, settle: float = 0.05
) -> None:
    """Make ``pid`` take ``signum``, so its registers land in a signal frame in memory.

    The process must handle ``signum`` (``signal.signal(signal.SIGUSR1, lambda *_: None)``
    in Python): the default action of most signals would kill it, so this checks first.
    """
    bit = 1 << (signum - 1)
    if not _signal_mask(pid, "SigCgt") & bit:
        raise RuntimeError(f"process {pid} does not handle signal {signum}: it would die")
    os.kill(pid, signum)
    deadline = time.monotonic() + timeout
    while (_signal_mask(pid, "SigPnd") | _signal_mask(pid, "ShdPnd")) & bit:
        if time.monotonic() > deadline:
            raise TimeoutError(f"process {pid} did not take signal {signum} in {timeout} s")
        time.sleep(0.001)
    time.sleep(settle)  # delivered: the frame is written on the way back to user space


@contextmanager
def python_child(
    code: str, *args: str, env: MappingOf[str, str] | None = None, cwd: str | None = None
) -> Iterator[subprocess.Popen[str]]:
    """A Python child running ``code`` (``-c``) with text pipes on stdin and stdout,
    killed and reaped by its PID when the block ends: the process a memory test looks at."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=None if env is None else dict(env),
        cwd=cwd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)
