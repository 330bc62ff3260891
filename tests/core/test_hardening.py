"""``keyloader.hardening.harden_process``: non-dumpable, core limit 0, and what that changes.

Every check runs in a child process: hardening the test process itself would last
for the rest of the session. To see what an unprivileged process sees, a child
started as root drops to ``nobody`` first; changing its user ids resets the
dumpable flag to ``/proc/sys/fs/suid_dumpable``, so it sets the flag back to 1,
the state of an ordinary process after ``execve``, before (not) hardening.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from keyloader.hardening import HardeningReport

from ..memscan import python_child

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="prctl and /proc are Linux's")

NOBODY = 65534

CHILD = r"""
import ctypes, json, os, resource, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
def dumpable():
    return libc.prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE
from keyloader.hardening import harden_process
harden, drop = sys.argv[1] == "harden", sys.argv[2] == "drop"
if drop:
    os.setgroups([])
    os.setresgid(65534, 65534, 65534)
    os.setresuid(65534, 65534, 65534)
    assert libc.prctl(4, 1, 0, 0, 0) == 0  # PR_SET_DUMPABLE 1: an ordinary process
report = harden_process() if harden else None
exec_child = ["-1", "-1"]
if not drop:  # nobody may not run this interpreter: only a root child starts a program
    exec_child = subprocess.run(  # what a program this process starts gets
        [sys.executable, "-c", "import ctypes, resource; print(ctypes.CDLL(None).prctl("
         "3, 0, 0, 0, 0), resource.getrlimit(resource.RLIMIT_CORE)[1])"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
pid = os.fork()
if pid == 0:
    os._exit(dumpable())
forked = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
print(json.dumps({
    "report": None if report is None else [report.dumpable_off, report.core_limit_zero],
    "dumpable": dumpable(),
    "core": list(resource.getrlimit(resource.RLIMIT_CORE)),
    "forked_dumpable": forked,
    "exec_dumpable": int(exec_child[0]),
    "exec_core_hard": int(exec_child[1]),
}), flush=True)
print("ready", flush=True)
sys.stdin.readline()
"""


@dataclass
class Child:
    pid: int
    seen: dict[str, Any]


@contextmanager
def child(harden: bool, drop: bool) -> Iterator[Child]:
    args = ("harden" if harden else "plain", "drop" if drop else "keep")
    with python_child(CHILD, *args) as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert proc.stdout.readline() == "ready\n", line
        yield Child(proc.pid, json.loads(line))


def core_limits(pid: int) -> list[str]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max core file size"):
            return line.split()[4:6]
    raise LookupError("no core limit line")


def read_as_nobody(path: str) -> subprocess.CompletedProcess[bytes]:
    """``cat path`` run by ``nobody``: a same-user reader of the child's /proc files."""
    return subprocess.run(
        ["cat", path], user=NOBODY, group=NOBODY, extra_groups=[], capture_output=True
    )


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="drops a child to nobody (root)")


def test_report_is_a_small_frozen_value() -> None:
    report = HardeningReport(dumpable_off=True, core_limit_zero=False)
    assert not report.complete
    assert HardeningReport(True, True).complete
    with pytest.raises(AttributeError):
        report.dumpable_off = False  # type: ignore[misc]


def test_hardened_child_is_not_dumpable_and_has_no_core_limit() -> None:
    with child(harden=True, drop=False) as hardened:
        assert hardened.seen["report"] == [True, True]
        assert hardened.seen["dumpable"] == 0
        assert hardened.seen["core"] == [0, 0]
        assert core_limits(hardened.pid) == ["0", "0"]
        assert hardened.seen["forked_dumpable"] == 0  # fork() keeps it
        assert hardened.seen["exec_dumpable"] == 1  # execve resets it (documented)
        assert hardened.seen["exec_core_hard"] == 0  # the core limit is inherited


def test_control_an_ordinary_child_is_dumpable() -> None:
    with child(harden=False, drop=False) as plain:
        assert plain.seen["report"] is None
        assert plain.seen["dumpable"] == 1
        assert plain.seen["core"] == list(resource.getrlimit(resource.RLIMIT_CORE))  # inherited
        assert plain.seen["forked_dumpable"] == 1


@needs_root
def test_hardened_proc_files_turn_root_and_same_user_readers_are_refused() -> None:
    with child(harden=True, drop=True) as hardened:
        assert hardened.seen["report"] == [True, True]
        assert hardened.seen["dumpable"] == 0
        for name in ("mem", "environ", "maps"):
            assert os.stat(f"/proc/{hardened.pid}/{name}").st_uid == 0
        denied = read_as_nobody(f"/proc/{hardened.pid}/environ")
        assert denied.returncode != 0
        assert b"Permission denied" in denied.stderr
        assert Path(f"/proc/{hardened.pid}/environ").read_bytes()  # root still reads it


@needs_root
def test_control_an_ordinary_nobody_child_is_readable_by_nobody() -> None:
    with child(harden=False, drop=True) as plain:
        assert plain.seen["dumpable"] == 1
        for name in ("mem", "environ", "maps"):
            assert os.stat(f"/proc/{plain.pid}/{name}").st_uid == NOBODY
        allowed = read_as_nobody(f"/proc/{plain.pid}/environ")
        assert allowed.returncode == 0, allowed.stderr
        assert b"PATH=" in allowed.stdout


OPENER = r"""
import ctypes, os, sys
import keyloader
libc = ctypes.CDLL(None)
how = sys.argv[1]
options = {"harden": True} if how == "keyword" else {}
with keyloader.open_keystore(keys_dir=sys.argv[2], **options):
    print(libc.prctl(3, 0, 0, 0, 0), flush=True)  # PR_GET_DUMPABLE
"""


@pytest.mark.parametrize("how", ["keyword", "environment", "config file", "off"])
def test_the_harden_setting_hardens_the_process_when_a_store_opens(
    how: str, tmp_path: Path
) -> None:
    env = {**os.environ, "ACRA_MASTER_KEY": "dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktdGVzdC0="}
    if how == "environment":
        env["KEYLOADER_HARDEN"] = "1"
    elif how == "config file":
        (tmp_path / "keyloader.toml").write_text("harden = true\n")
    keys_dir = str(tmp_path / ".acrakeys")
    with python_child(OPENER, how, keys_dir, env=env, cwd=str(tmp_path)) as proc:
        assert proc.stdout is not None
        dumpable = proc.stdout.readline().strip()
    assert dumpable == ("1" if how == "off" else "0")
