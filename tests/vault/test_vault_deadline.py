"""The documented deadline holds against slow servers (loopback servers written for the test).

docs/vault.md: ``timeout`` bounds a whole load, retries included. One server accepts and
never answers; the other sends its headers, then one byte at a time, slowly: requests'
per-read timeout alone would never fire against it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from keyloader.errors import ProviderUnavailableError
from keyloader_vault import VaultProvider

from ..servers import LOOPBACK


def _serve(handle: Callable[[socket.socket], None]) -> Iterator[str]:
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
    yield from _serve(_silent)


@pytest.fixture
def dripping_server() -> Iterator[str]:
    yield from _serve(_dripping)


@pytest.mark.parametrize("server", ["silent_server", "dripping_server"])
@pytest.mark.parametrize("kv_version", ["auto", "2"])
def test_a_load_fails_cleanly_within_the_timeout(
    request: pytest.FixtureRequest, server: str, kv_version: str
) -> None:
    address = request.getfixturevalue(server)
    provider = VaultProvider(
        {
            "address": address,
            "token": "t",
            "secrets_path": "secret/acra",
            "kv_version": kv_version,
            "timeout": 1.5,
            "retries": 2,
        }
    )
    started = time.monotonic()
    try:
        with pytest.raises(ProviderUnavailableError, match=r"1\.5"):
            provider.load()
    finally:
        provider.close()
    elapsed = time.monotonic() - started
    assert elapsed < 4, f"the 1.5 s deadline took {elapsed:.1f} s"
