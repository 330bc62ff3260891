"""Loopback HTTP servers written for the deadline tests: one never answers, one trickles.

A server that accepts and never answers trips a per-read timeout; one that sends
its headers and then a byte every 0.1 s does not, so only an overall deadline
stops a client talking to it. Used by tests/vault and tests/aws.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from .servers import LOOPBACK

__all__ = ["dripping_server", "serve", "silent_server"]


def serve(handle: Callable[[socket.socket], None]) -> Iterator[str]:
    """Run ``handle`` for each client on a free loopback port; yields the http:// address."""
    server = socket.socket()
    server.bind((LOOPBACK, 0))
    server.listen()
    stop = threading.Event()
    clients: list[socket.socket] = []

    def run() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            clients.append(client)
            threading.Thread(target=handle, args=(client,), daemon=True).start()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        server.close()
        for client in clients:
            client.close()


def _silent(client: socket.socket) -> None:
    client.recv(65536)  # read the request, never answer
    time.sleep(30)


def _dripping(client: socket.socket) -> None:
    client.recv(65536)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
    try:
        client.sendall(head)
        for _ in range(500):
            client.sendall(b" ")
            time.sleep(0.1)
    except OSError:
        return


@pytest.fixture
def silent_server() -> Iterator[str]:
    yield from serve(_silent)


@pytest.fixture
def dripping_server() -> Iterator[str]:
    yield from serve(_dripping)
