"""Overall deadlines for providers that talk to a server (vault, aws-kms).

An HTTP library's timeout applies to each socket operation: a server that sends
its headers and then one byte a second never trips it. A :class:`Deadline` is
the time one whole load may take, retries included, and :func:`read_body` reads
an answer's body under it. No HTTP library is imported here: the response is
duck-typed (urllib3's ``HTTPResponse``, which requests and botocore both use).
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["Deadline", "read_body"]

_PIECE = 65536


class Deadline:
    """A point in time (``time.monotonic``) by which an operation must end."""

    __slots__ = ("end",)

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    @classmethod
    def at(cls, end: float) -> Deadline:
        """The deadline at ``end``, a ``time.monotonic()`` value (``inf``: never)."""
        deadline = cls(0.0)
        deadline.end = end
        return deadline

    def remaining(self) -> float:
        """Seconds left; zero or less once passed."""
        return self.end - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def __repr__(self) -> str:
        return f"Deadline({self.remaining():.3f} s left)"


def read_body(response: Any, deadline: Deadline, *, decode: bool = False) -> bytes:
    """The whole body of an urllib3 ``HTTPResponse`` opened with ``preload_content=False``.

    Read in pieces; before each read the socket's timeout is set to the time left,
    so past the deadline the read fails. A ``Content-Length`` is honoured (reading
    stops there, without waiting for the server to close). Past the deadline:
    ``TimeoutError`` between reads, or, for a read the socket timeout cut short,
    the library's own timeout error (urllib3's ``ReadTimeoutError``). The caller
    releases or closes the response.
    """
    connection = getattr(response, "connection", None)
    sock = getattr(connection, "sock", None)
    length = response.headers.get("Content-Length")
    left = int(length) if length is not None and length.isdigit() else -1
    chunks: list[bytes] = []
    while left:
        remaining = deadline.remaining()
        if remaining <= 0:
            raise TimeoutError("the overall deadline passed while the server was still answering")
        if sock is not None:
            sock.settimeout(remaining)
        chunk = response.read1(_PIECE if left < 0 else left, decode_content=decode)
        if not chunk:
            break
        chunks.append(chunk)
        if left > 0 and not decode:
            left = max(left - len(chunk), 0)
    return b"".join(chunks)
