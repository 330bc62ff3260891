"""What the real-server fixtures share: loopback ports and stopping a server by its PID.

Used by the OpenBao (tests/vault) and redis-server (tests/redis) fixtures. Servers
listen on 127.0.0.1 only.
"""

from __future__ import annotations

import socket
import subprocess

LOOPBACK = "127.0.0.1"


def free_port(*, with_next: bool = False) -> int:
    """A free loopback port; ``with_next``: ``port + 1`` is free too (bao's cluster port)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind((LOOPBACK, 0))
            port = int(first.getsockname()[1])
            if not with_next:
                return port
            if port >= 65535:
                continue
            with socket.socket() as second:
                try:
                    second.bind((LOOPBACK, port + 1))
                except OSError:
                    continue
            return port
    raise RuntimeError("no two consecutive free loopback ports")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Stop a server by its PID: terminate, wait up to 10 s, then kill."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
