"""The SHA-256 half of the register scrub: an HMAC's key-equivalent state leaves the registers.

HMAC-SHA256 compresses the key XOR ipad and the key XOR opad first; the two chaining values
that come out are as good as the key (they compute every HMAC under it). With SHA-NI they
sit in vector registers as eight 32-bit words each, and the memory scans look for keys,
not for those words: this test reads a child's registers (ptrace, as a core dump holds
them) after one HMAC and counts the words of both chaining values and of the HMAC's output.
"""

from __future__ import annotations

import os
import secrets
import struct

import pytest

from ..memscan import python_child, read_registers

CHILD = r"""
import sys
from _hashlib import hmac_digest
from keyloader.themis import scell
scell.scrub()  # the scrubber is made before the key is seen
key = bytes.fromhex(sys.stdin.readline().strip())
hmac_digest(key, b"\x00\x00\x00\x01Themis secure cell message key\x00\x20\x00\x00\x00", "sha256")
if sys.argv[1] == "scrub":
    scell.scrub()
print("ready", flush=True)
sys.stdin.readline()
"""
MESSAGE = b"\x00\x00\x00\x01Themis secure cell message key\x00\x20\x00\x00\x00"


def _primes(count: int) -> list[int]:
    found: list[int] = []
    candidate = 2
    while len(found) < count:
        if all(candidate % p for p in found):
            found.append(candidate)
        candidate += 1
    return found


def _root_fraction(value: int, degree: int) -> int:
    """The first 32 bits of the fractional part of value ** (1 / degree), exactly."""
    target = value << (32 * degree)
    root = round(target ** (1 / degree))
    while root**degree > target:
        root -= 1
    while (root + 1) ** degree <= target:
        root += 1
    return root & 0xFFFFFFFF


_K = [_root_fraction(p, 3) for p in _primes(64)]  # FIPS 180-4, 4.2.2
_IV = [_root_fraction(p, 2) for p in _primes(8)]  # FIPS 180-4, 5.3.3


def _rotr(x: int, n: int) -> int:
    return ((x >> n) | (x << (32 - n))) & 0xFFFFFFFF


def compress(state: list[int], block: bytes) -> list[int]:
    """One SHA-256 compression (FIPS 180-4, 6.2.2) of a 64-byte block."""
    w = list(struct.unpack(">16I", block))
    for i in range(16, 64):
        s0 = _rotr(w[i - 15], 7) ^ _rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
        s1 = _rotr(w[i - 2], 17) ^ _rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
        w.append((w[i - 16] + s0 + w[i - 7] + s1) & 0xFFFFFFFF)
    a, b, c, d, e, f, g, h = state
    for i in range(64):
        t1 = h + (_rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)) + ((e & f) ^ (~e & g)) + _K[i] + w[i]
        t2 = (_rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))
        h, g, f, e = g, f, e, (d + t1) & 0xFFFFFFFF
        d, c, b, a = c, b, a, (t1 + t2) & 0xFFFFFFFF
    return [(x + y) & 0xFFFFFFFF for x, y in zip(state, (a, b, c, d, e, f, g, h), strict=True)]


def test_the_compression_is_sha256s() -> None:
    import hashlib

    padded = b"abc" + b"\x80" + bytes(52) + struct.pack(">Q", 24)
    assert struct.pack(">8I", *compress(_IV, padded)) == hashlib.sha256(b"abc").digest()


def hmac_state_words(key: bytes) -> dict[str, set[bytes]]:
    """The 32-bit words (as registers hold them) of an HMAC's two chaining values and output."""
    import hmac

    block = key.ljust(64, b"\0")
    words = {
        "ipad chaining value": compress(_IV, bytes(b ^ 0x36 for b in block)),
        "opad chaining value": compress(_IV, bytes(b ^ 0x5C for b in block)),
        "output": list(struct.unpack(">8I", hmac.digest(key, MESSAGE, "sha256"))),
    }
    return {name: {struct.pack("<I", w) for w in state} for name, state in words.items()}


def words_in_registers(mode: str, key: bytes) -> dict[str, int]:
    with python_child(CHILD, mode) as proc:
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.write(key.hex() + "\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "ready"
        registers = b"".join(read_registers(proc.pid).values())
    return {
        name: sum(1 for word in words if word in registers)
        for name, words in hmac_state_words(key).items()
    }


@pytest.mark.skipif(os.geteuid() != 0, reason="ptrace of a child (root)")
def test_the_scrub_leaves_no_word_of_an_hmacs_state_in_the_registers() -> None:
    controls = [words_in_registers("none", secrets.token_bytes(32)) for _ in range(3)]
    if not any(sum(found.values()) for found in controls):
        pytest.skip("this CPU's SHA-256 leaves no state words in the vector registers")
    for _ in range(3):
        found = words_in_registers("scrub", secrets.token_bytes(32))
        assert not any(found.values()), f"words left after the scrub: {found}"
