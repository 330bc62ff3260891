"""Overwrite what copying secret bytes leaves in the CPU's vector registers.

Copying a buffer (``memcpy``, which every ``memoryview`` and ``bytes`` copy runs) goes
through vector registers, and so does TLS decryption: the last bytes handled stay there
until other code overwrites them, and reach memory whenever the registers are saved (a
signal frame, a lazily bound library call's first use, a core dump's register notes).
Measured against a TLS server: a 64-byte piece of the answer holding the key's text,
saved on the stack by the first call of a library function after the load.

:func:`scrub_registers` runs the same code over zeroes: copies of each size class
``memcpy`` handles differently and, after TLS, keyloader's Secure Cell register scrub
(SHA-256 and AES-256-GCM, as the TLS record layer uses). A few microseconds.
"""

from __future__ import annotations

from keyloader.themis.scell import scrub

__all__ = ["scrub_registers"]

_SIZES = (8, 16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024, 2048, 4096)
_ZEROS = memoryview(bytes(max(_SIZES)))
_SINK = memoryview(bytearray(max(_SIZES)))


def scrub_registers(*, tls: bool = True) -> None:
    """Replace the vector registers' content by results of work on zeroes: the copies'
    and, after TLS (``tls``), AES-GCM's and SHA-256's."""
    for size in _SIZES:
        _SINK[:size] = _ZEROS[:size]
    if tls:
        scrub()
