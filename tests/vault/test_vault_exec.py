"""`keyloader exec` through the Vault provider against a real OpenBao server."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from keyloader.masterkey import generate_master_key

KEYLOADER = str(Path(sys.executable).with_name("keyloader"))
CHILD = str(Path(__file__).parents[1] / "exec_child.py")


def test_the_service_gets_the_key_from_vault_but_not_the_token(bao: Any, tmp_path: Path) -> None:
    path = f"secret/{uuid.uuid4().hex[:12]}"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ["HOME"],
        "VAULT_ADDR": bao.address,
        "VAULT_TOKEN": bao.token,
        "VAULT_API_TOKEN": base64.b64encode(bao.token.encode()).decode(),
    }
    vault = ["--provider", "vault", "-o", f"secrets_path={path}"]
    with generate_master_key() as key, key.to_text() as text:
        stored = subprocess.run(
            [KEYLOADER, *vault, "master-key", "store"],
            input=text.bytes(),
            capture_output=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
            check=False,
        )
        assert stored.returncode == 0, stored.stderr
        process = subprocess.Popen(
            [KEYLOADER, *vault, "exec", "--", sys.executable, CHILD, "ACRA_MASTER_KEY", "3"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=tmp_path,
        )
        out, err = process.communicate(timeout=60)
        assert process.returncode == 3, err
        report = json.loads(out)
        assert report["pid"] == process.pid
        assert report["fingerprint"] == key.fingerprint
        assert report["seen"] == ["ACRA_MASTER_KEY", "VAULT_ADDR"]  # no token of any kind
        assert text.bytes() not in out + err
        child = [sys.executable, CHILD, "ACRA_MASTER_KEY", "0"]
        kept = subprocess.run(
            [KEYLOADER, *vault, "exec", "--keep-provider-env", "--", *child],
            capture_output=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
            check=False,
        )
        assert "VAULT_TOKEN" in json.loads(kept.stdout)["seen"]


def test_a_vault_failure_starts_nothing(bao: Any, tmp_path: Path) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ["HOME"],
        "VAULT_ADDR": bao.address,
        "VAULT_TOKEN": "not-a-valid-token",
    }
    marker = tmp_path / "started"
    command = [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]
    vault = ["--provider", "vault", "-o", "secrets_path=secret/absent"]
    result = subprocess.run(
        [KEYLOADER, *vault, "exec", "--", *command],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert "not-a-valid-token" not in result.stderr
    assert not marker.exists()
