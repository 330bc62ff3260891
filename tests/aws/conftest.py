"""A real moto server for the aws-kms tests, reached by boto3 over HTTP on loopback.

``tests/aws/moto_kms_server.py`` runs moto's own server (``moto[server]``) with
one AWS rule moto lacks (key states). The session server is reset before each
test that uses it (``/moto-api/reset``); a test that needs TLS or a server it
may break starts its own with :func:`start_moto`. Servers are stopped by PID.

Every test here runs with the AWS environment cleared, the instance-metadata
lookup off and no AWS config files, so nothing but the given server is contacted.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from keyloader.masterkey import MasterKey

from ..servers import LOOPBACK, free_port, stop_process

SERVER_SCRIPT = Path(__file__).with_name("moto_kms_server.py")
START_TIMEOUT = 30.0
REGION = "eu-west-1"
ACCESS_KEY = "AKIAKEYLOADERTEST01"
SECRET_KEY = "keyloader/test/secret/access/key/0123456789"
ALIAS = "alias/acra_master_key"


@dataclass
class MotoServer:
    """One running moto server: its URL and process."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path
    ca_cert: Path | None = None

    def admin(self, region: str = REGION) -> Any:
        """A plain boto3 KMS client, for setting up keys (not the code under test)."""
        return boto3.client(
            "kms",
            region_name=region,
            endpoint_url=self.url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            verify=str(self.ca_cert) if self.ca_cert else None,
        )

    def reset(self) -> None:
        """Forget every key and alias (moto's reset API)."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")  # noqa: S310
        opened = urllib.request.urlopen(request, timeout=10, context=self._context())  # noqa: S310
        with opened as answer:
            assert answer.status == 200

    def stop(self) -> None:
        stop_process(self.process)

    def _context(self) -> ssl.SSLContext | None:
        return ssl.create_default_context(cafile=str(self.ca_cert)) if self.ca_cert else None


def start_moto(
    workdir: Path, *, cert: Path | None = None, key: Path | None = None, ca_cert: Path | None = None
) -> MotoServer:
    """Start the moto server on a free loopback port and wait until it answers."""
    port = free_port()
    log = workdir / f"moto-{port}.log"
    command = [sys.executable, str(SERVER_SCRIPT), "-H", LOOPBACK, "-p", str(port)]
    if cert is not None and key is not None:
        command += ["-c", str(cert), "-k", str(key)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KEYLOADER_"))}
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    scheme = "https" if cert is not None else "http"
    server = MotoServer(process, f"{scheme}://{LOOPBACK}:{port}", log, ca_cert)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited: {log.read_text(errors='replace')}")
        try:
            server.reset()
            return server
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"moto server did not start: {log.read_text()}") from None
            time.sleep(0.1)


@pytest.fixture(scope="session")
def moto_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = start_moto(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def moto(moto_session: MotoServer) -> MotoServer:
    """The session's moto server, with no key and no alias."""
    moto_session.reset()
    return moto_session


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS setting from the machine: no variables, config files or instance metadata."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "KEYLOADER_", "ACRA_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture
def credentials_file(tmp_path: Path, moto: MotoServer) -> Path:
    """Acra's --kms_credentials_path file for the moto server."""
    path = tmp_path / "kms.json"
    path.write_text(
        json.dumps(
            {
                "access_key_id": ACCESS_KEY,
                "secret_access_key": SECRET_KEY,
                "region": REGION,
                "endpoint": moto.url,
            }
        )
    )
    return path


def make_alias(admin: Any, alias: str = ALIAS) -> str:
    """A new symmetric KMS key behind ``alias``; returns its key id."""
    key_id = str(admin.create_key(Description="keyloader test")["KeyMetadata"]["KeyId"])
    admin.create_alias(AliasName=alias, TargetKeyId=key_id)
    return key_id


def ciphertext_of(admin: Any, plaintext: bytes, alias: str = ALIAS) -> str:
    """Base64 of ``plaintext`` encrypted under ``alias``: what ACRA_MASTER_KEY holds."""
    blob = admin.encrypt(KeyId=alias, Plaintext=plaintext)["CiphertextBlob"]
    return base64.b64encode(blob).decode()


def encrypted_key(admin: Any, key: MasterKey, alias: str = ALIAS) -> str:
    """``ACRA_MASTER_KEY`` for ``key`` as Acra's keymaker makes it (raw v1 key / v2 JSON)."""
    with key.to_bytes() as plaintext:
        return ciphertext_of(admin, plaintext.bytes(), alias)


KmsOptions = Callable[..., dict[str, object]]


@pytest.fixture
def file_options(credentials_file: Path) -> KmsOptions:
    """Provider options that use Acra's credentials file, plus any given."""

    def options(**extra: object) -> dict[str, object]:
        return {"credentials_path": str(credentials_file), **extra}

    return options
