"""The memory scanner of tests/memscan.py finds what is there, and only that."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from ..memscan import push_registers, python_child, read_mappings, scan
from ..residue import aes256_round_keys, aes_key_needles

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/PID/mem")

# The child reads the needle as hex on stdin and writes it byte by byte: no bytes
# object ever holds it whole, so only the buffer under test does.
CHILD = r"""
import mmap, signal, sys
signal.signal(signal.SIGUSR1, lambda *_: None)
where = sys.argv[1]
text = sys.stdin.readline().strip()
size = len(text) // 2
if where == "bytearray":
    buf = bytearray(size)
else:
    buf = mmap.mmap(-1, mmap.PAGESIZE)
    buf.madvise(mmap.MADV_DONTDUMP)
for i in range(size):
    buf[i] = int(text[2 * i : 2 * i + 2], 16)
print("ready", flush=True)
sys.stdin.readline()
"""


@contextmanager
def child_holding(needle: bytes, where: str) -> Iterator[subprocess.Popen[str]]:
    """A Python child holding ``needle`` in a ``bytearray`` or a MADV_DONTDUMP mmap."""
    with python_child(CHILD, where) as proc:
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.write(needle.hex() + "\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "ready\n"
        yield proc


def test_a_needle_in_a_bytearray_is_found_in_both_views() -> None:
    needle = secrets.token_bytes(32)
    with child_holding(needle, "bytearray") as proc:
        result = scan(proc.pid, {"needle": needle})
    assert result.count("needle") >= 1, result.where("needle")
    assert result.core_count("needle") >= 1, result.where("needle")
    assert result.scanned > 1 << 20


def test_a_needle_in_dontdump_pages_is_left_out_of_the_core_view() -> None:
    needle = secrets.token_bytes(32)
    with child_holding(needle, "mmap") as proc:
        result = scan(proc.pid, {"needle": needle})
    assert result.count("needle") == 1, result.where("needle")
    assert result.core_count("needle") == 0, result.where("needle")
    (hit,) = result.hits
    assert "dd" in hit.mapping.vmflags
    assert hit.mapping.start <= hit.address < hit.mapping.end
    assert f"{hit.address:#x}" in result.where("needle")


def test_a_needle_never_written_is_not_found() -> None:
    absent, present = secrets.token_bytes(32), secrets.token_bytes(32)
    with child_holding(present, "bytearray") as proc:
        result = scan(proc.pid, {"absent": absent, "present": present})
    assert result.count("absent") == 0
    assert result.core_count("absent") == 0
    assert result.where("absent") == "nowhere"
    assert result.count("present") >= 1


def test_a_needle_across_two_chunks_is_counted_once() -> None:
    from .. import memscan

    needle = secrets.token_bytes(32)
    with child_holding(needle, "bytearray") as proc:
        whole = scan(proc.pid, {"needle": needle}).count("needle")
        original = memscan._CHUNK
        try:
            memscan._CHUNK = 48  # most copies now straddle a chunk boundary
            small = scan(proc.pid, {"needle": needle}).count("needle")
        finally:
            memscan._CHUNK = original
    assert whole == small >= 1


def test_short_needles_are_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        scan(1, {"short": b"0123456789"})


def test_mappings_carry_their_flags() -> None:
    with child_holding(secrets.token_bytes(32), "mmap") as proc:
        mappings = read_mappings(proc.pid)
    assert any(m.pathname == "[stack]" for m in mappings)
    assert all(m.start < m.end and "rd" in m.vmflags for m in mappings if m.perms[0] == "r")
    assert sum(not m.dumped for m in mappings) >= 1


def test_push_registers_signals_a_handling_child_and_it_lives_on() -> None:
    with child_holding(secrets.token_bytes(32), "bytearray") as proc:
        push_registers(proc.pid)
        push_registers(proc.pid)
        assert proc.poll() is None


def test_push_registers_refuses_a_child_that_would_die() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.readline()"], stdin=subprocess.PIPE
    )
    try:
        with pytest.raises(RuntimeError, match="does not handle"):
            push_registers(proc.pid)
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait(timeout=10)


# AES-GCM under a key read from stdin, then nothing: the key schedule stays in the
# vector registers (nothing scrubs them), while no bytes object keeps the key.
AES_CHILD = r"""
import sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
key = bytearray.fromhex(sys.stdin.readline().strip())
AESGCM(key).encrypt(bytes(12), bytes(64), None)
key[:] = bytes(len(key))
print("ready", flush=True)
sys.stdin.readline()
"""


def test_aes256_round_keys_match_fips_197() -> None:
    rounds = aes256_round_keys(bytes(range(32)))  # FIPS-197 appendix A.3 / C.3
    assert rounds[0] + rounds[1] == bytes(range(32))
    assert rounds[2].hex() == "a573c29fa176c498a97fce93a572c09c"
    assert rounds[14].hex() == "24fc79ccbf0979e9371ac23c6d68de36"


@pytest.mark.skipif(os.geteuid() != 0, reason="ptrace of a child (root)")
def test_registers_are_read_as_a_core_dump_holds_them() -> None:
    key = secrets.token_bytes(32)
    with python_child(AES_CHILD) as proc:
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.write(key.hex() + "\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "ready"
        found = scan(proc.pid, aes_key_needles("key", key))
        assert proc.poll() is None  # stopped to be read, then let go
    in_registers = [hit for hit in found.hits if hit.mapping.pathname.startswith("[registers")]
    assert in_registers, "an unscrubbed AES key schedule was not found in the registers"
    assert all(hit.mapping.dumped for hit in in_registers)  # counted in the core view
