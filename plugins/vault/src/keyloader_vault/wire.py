"""The socket level of the ``vault`` provider: answers read into secret pages, the token
header sent from them (docs/vault.md, Memory).

urllib3 connections whose answers are read through :class:`_SecretReader` (a buffer in
secret pages) and whose request head is built in secret pages, its ``X-Vault-Token`` line
burnt once sent; over TLS, a context with ``SSL_OP_CLEANSE_PLAINTEXT``. Used by
:mod:`keyloader_vault.transport` through :data:`POOL_CLASSES`. It relies on names private
to http.client and urllib3 (``HTTPConnection._send_output``, ``_buffer``); the transport
keeps the plain read path for anything these classes do not handle.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
from typing import Any, cast

import requests
import urllib3
import urllib3.connection
from urllib3.util.ssl_ import create_urllib3_context, resolve_cert_reqs, resolve_ssl_version

from keyloader.deadline import Deadline, read_body
from keyloader.secret import SecretBytes, burn

__all__ = ["POOL_CLASSES", "TOKEN_HEADER", "read_secret"]

TOKEN_HEADER = "X-Vault-Token"  # noqa: S105 - a header name
_TOKEN_LINE = TOKEN_HEADER.lower().encode("ascii") + b":"
_READ_BUFFER = 8192
"""The buffer an answer is read through (a slot of secret pages), in bytes."""
_FIRST_BODY = 4096
"""The first buffer of a body of unknown length (chunked); doubled as needed."""
_NEWLINE = re.compile(rb"\n")
_SSL_OP_CLEANSE_PLAINTEXT = 1 << 1  # OpenSSL 3.0+: SSL_OP_BIT(1)


class _SecretReader:
    """What http.client reads an answer through, instead of ``socket.makefile("rb")``'s
    buffered reader: the same reads, from a buffer in secret pages zeroed on close.

    Bytes it hands out (:meth:`readline`, :meth:`read`, :meth:`read1`) are ordinary
    ``bytes``: the status line, the headers and chunk sizes. A body goes through
    :meth:`readinto`, into the caller's buffer. With a :attr:`deadline`, each socket read
    may take only the time left before it (as :func:`keyloader.deadline.read_body`).
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)
        self._buffer = SecretBytes.zeroed(_READ_BUFFER)
        self._view = self._buffer.buffer
        self._start = self._end = 0
        self.deadline: Deadline | None = None
        self.closed = False

    def _socket_read(self, view: memoryview) -> int:
        if self.deadline is not None:
            remaining = self.deadline.remaining()
            if remaining <= 0:
                raise TimeoutError(
                    "the overall deadline passed while the server was still answering"
                )
            self._sock.settimeout(remaining)
        return self._raw.readinto(view) or 0

    def _fill(self) -> int:
        """One socket read into the (consumed) buffer; 0 at the end of the stream."""
        self._start = self._end = 0
        self._end = self._socket_read(self._view)
        return self._end

    def readinto(self, target: Any) -> int:
        """Fill ``target`` (fewer bytes only at the end of the stream)."""
        view = memoryview(target).cast("B")
        size = len(view)
        done = 0
        while done < size:
            if self._start == self._end:
                if size - done >= _READ_BUFFER:  # large: straight from the socket
                    count = self._socket_read(view[done:])
                    if not count:
                        break
                    done += count
                    continue
                if not self._fill():
                    break
            count = min(self._end - self._start, size - done)
            view[done : done + count] = self._view[self._start : self._start + count]
            self._start += count
            done += count
        return done

    def read1(self, size: int = -1) -> bytes:
        if self._start == self._end and not self._fill():
            return b""
        count = self._end - self._start if size < 0 else min(size, self._end - self._start)
        data = self._view[self._start : self._start + count].tobytes()
        self._start += count
        return data

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            pieces = []
            while piece := self.read1():
                pieces.append(piece)
            return b"".join(pieces)
        data = bytearray(size)
        del data[self.readinto(data) :]
        return bytes(data)

    def readline(self, limit: int = -1) -> bytes:
        start = self._start
        stop = self._end if limit < 0 else min(self._end, start + limit)
        newline = _NEWLINE.search(self._view, start, stop)
        if newline is not None:  # the usual case: the whole line is buffered
            self._start = newline.end()
            return self._view[start : self._start].tobytes()
        line = bytearray()
        while limit < 0 or len(line) < limit:
            if self._start == self._end and not self._fill():
                break
            stop = self._end if limit < 0 else min(self._end, self._start + limit - len(line))
            newline = _NEWLINE.search(self._view, self._start, stop)
            end = newline.end() if newline is not None else stop
            line += self._view[self._start : end]
            self._start = end
            if newline is not None:
                break
        return bytes(line)

    def peek(self, size: int = 0) -> bytes:
        if self._start == self._end:
            self._fill()
        return self._view[self._start : self._end].tobytes()

    def fileno(self) -> int:
        return self._raw.fileno()

    def readable(self) -> bool:
        return True

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._start = self._end = 0
            self._view = memoryview(b"")
            self._buffer.wipe()
            self._raw.close()


class _ReaderMaker:
    """Stands for the socket in ``HTTPResponse.__init__``: its ``makefile`` makes a reader."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def makefile(self, mode: str) -> _SecretReader:
        return _SecretReader(self.sock)


class _SecretResponse(http.client.HTTPResponse):
    """http.client's answer, read through a :class:`_SecretReader`."""

    def __init__(
        self,
        sock: socket.socket,
        debuglevel: int = 0,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(cast(socket.socket, _ReaderMaker(sock)), debuglevel, method, url)
        self.reader = cast(_SecretReader, self.fp)

    def read_secret(self, deadline: Deadline) -> SecretBytes:
        """The whole body, into secret pages, every socket read under ``deadline``."""
        known = self.length is not None and not self.chunked  # http.client counts it down
        body = SecretBytes.zeroed((self.length or 0) if known else _FIRST_BODY)
        self.reader.deadline = deadline
        try:
            size = 0
            while True:  # at least one read: for an empty body, the one that closes it
                if size == len(body) and not known:
                    body = _grown(body, 2 * size)
                count = _readinto(self, body.buffer[size:])
                size += count
                if not count or (known and size == len(body)):
                    break
            if known and size < len(body):  # the server closed early (urllib3 says so too)
                raise http.client.IncompleteRead(b"", len(body) - size)
            if size < len(body):
                return SecretBytes(body.buffer[:size])
            kept, body = body, SecretBytes()  # the caller's now; the finally wipes the stand-in
            return kept
        finally:
            body.wipe()
            self.reader.deadline = None


def _readinto(answer: http.client.HTTPResponse, view: memoryview) -> int:
    """``answer.readinto(view)``; a chunked body cut short raises ``IncompleteRead`` with
    a copy of what came (part of the body): that copy is zeroed, the error raised bare."""
    try:
        return answer.readinto(view)
    except http.client.IncompleteRead as exc:
        expected = exc.expected
        error: BaseException | None = exc
        while error is not None:  # http.client raises one from another, each with a copy
            if isinstance(error, http.client.IncompleteRead):
                partial, error.partial, error.args = error.partial, b"", ()
                burn(partial)
                del partial
            error = error.__context__
        raise http.client.IncompleteRead(b"", expected) from None


def _grown(buffer: SecretBytes, size: int) -> SecretBytes:
    """A larger buffer in secret pages with ``buffer``'s bytes; ``buffer`` is wiped."""
    grown = SecretBytes.zeroed(size)
    grown.buffer[: len(buffer)] = buffer.buffer
    buffer.wipe()
    return grown


def _send_head(connection: http.client.HTTPConnection, lines: list[bytes]) -> None:
    """Send the request line and headers (``lines``) from one buffer in secret pages, as
    ``http.client`` would from one ``bytes``; the token's line is burnt first."""
    head = SecretBytes.zeroed(sum(len(line) + 2 for line in lines) + 2)
    try:
        view = head.buffer
        at = 0
        for index in range(len(lines)):  # by index: no name holds a line (burn checks)
            size = len(lines[index])
            view[at : at + size] = lines[index]
            view[at + size : at + size + 2] = b"\r\n"
            at += size + 2
        view[at : at + 2] = b"\r\n"
        for index in range(len(lines)):
            if lines[index][: len(_TOKEN_LINE)].lower() == _TOKEN_LINE:
                burn(lines[index])
        del lines[:]
        connection.send(head.view)
    finally:
        head.wipe()  # the registers that copied the token: scrubbed once the answer is read


class _SecretHTTPConnection(urllib3.connection.HTTPConnection):
    """urllib3's connection: the head sent from secret pages, answers read into them."""

    response_class = _SecretResponse

    def _send_output(self, message_body: Any = None, encode_chunked: bool = False) -> None:
        if message_body is None and not encode_chunked:  # what urllib3 does: the body later
            _send_head(self, self._buffer)  # type: ignore[attr-defined]
        else:
            http.client.HTTPConnection._send_output(  # type: ignore[attr-defined]
                self, message_body, encode_chunked
            )


class _SecretHTTPSConnection(urllib3.connection.HTTPSConnection):
    """:class:`_SecretHTTPConnection` over TLS, with a context that has OpenSSL zero each
    record's plaintext once it is read (``SSL_OP_CLEANSE_PLAINTEXT``)."""

    response_class = _SecretResponse
    _send_output = _SecretHTTPConnection._send_output

    def connect(self) -> None:
        if self.ssl_context is None:
            self.ssl_context = _cleansing_context(self)
        super().connect()


def _cleansing_context(connection: urllib3.connection.HTTPSConnection) -> ssl.SSLContext:
    """The context urllib3 would make for ``connection``, with ``SSL_OP_CLEANSE_PLAINTEXT``:
    OpenSSL keeps a record's plaintext in its read buffer until the next record (and
    frees the buffer as it is) unless told to zero it once the application has it."""
    context = create_urllib3_context(
        ssl_version=resolve_ssl_version(connection.ssl_version),
        ssl_minimum_version=connection.ssl_minimum_version,
        ssl_maximum_version=connection.ssl_maximum_version,
        cert_reqs=resolve_cert_reqs(connection.cert_reqs),
    )
    if ssl.OPENSSL_VERSION.startswith("OpenSSL ") and ssl.OPENSSL_VERSION_INFO >= (3,):
        context.options |= _SSL_OP_CLEANSE_PLAINTEXT
    if not (connection.ca_certs or connection.ca_cert_dir or connection.ca_cert_data):
        context.load_default_certs()  # what urllib3 does for the contexts it makes
    return context


class _SecretHTTPConnectionPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _SecretHTTPConnection


class _SecretHTTPSConnectionPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _SecretHTTPSConnection


POOL_CLASSES = {"http": _SecretHTTPConnectionPool, "https": _SecretHTTPSConnectionPool}


def read_secret(response: requests.Response, deadline: Deadline) -> SecretBytes:
    """The body, into secret pages: straight from the socket through the connection's
    :class:`_SecretReader`; through urllib3 (copied, the ``bytes`` burnt) for an encoded
    body or another connection class (a SOCKS proxy's)."""
    answer = getattr(response.raw, "_fp", None)
    encoded = "Content-Encoding" in response.headers
    if isinstance(answer, _SecretResponse) and not encoded:
        return answer.read_secret(deadline)
    body = read_body(response.raw, deadline, decode=encoded)
    try:
        return SecretBytes(body)
    finally:
        burn(body)
