"""keyloader.deadline: the time left, and an answer's body read under it (loopback servers)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
import urllib3
import urllib3.exceptions

from keyloader.deadline import Deadline, read_body

from ..slow_servers import dripping_server, serve

__all__ = ["dripping_server"]  # a fixture used by name below

BODY = b'{"data": "' + b"x" * 100_000 + b'"}'


def _answer(client: socket.socket) -> None:
    client.recv(65536)
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(BODY)}\r\n\r\n".encode()
    client.sendall(head + BODY)  # and keep the connection open: Content-Length ends it


@pytest.fixture
def answering_server() -> Iterator[str]:
    yield from serve(_answer)


def open_response(url: str) -> urllib3.BaseHTTPResponse:
    pool = urllib3.PoolManager()
    return pool.request("GET", url, preload_content=False, retries=False, timeout=5.0)


def test_a_deadline_counts_down() -> None:
    deadline = Deadline(0.2)
    assert 0.1 < deadline.remaining() <= 0.2
    assert not deadline.expired()
    time.sleep(0.25)
    assert deadline.expired()
    assert deadline.remaining() <= 0
    never = Deadline.at(float("inf"))
    assert not never.expired()
    assert "s left" in repr(deadline)


def test_a_whole_body_is_read_up_to_its_content_length(answering_server: str) -> None:
    response = open_response(answering_server)
    started = time.monotonic()
    assert read_body(response, Deadline(5)) == BODY
    assert time.monotonic() - started < 2, "it waited for the server to close"
    response.release_conn()


def test_a_trickling_body_stops_at_the_deadline(dripping_server: str) -> None:
    response = open_response(dripping_server)
    started = time.monotonic()
    with pytest.raises((TimeoutError, urllib3.exceptions.TimeoutError)):
        read_body(response, Deadline(0.5))
    assert time.monotonic() - started < 1.5
    response.close()


def test_a_passed_deadline_reads_nothing(answering_server: str) -> None:
    response = open_response(answering_server)
    with pytest.raises(TimeoutError, match="deadline passed"):
        read_body(response, Deadline(-1))
    response.close()
