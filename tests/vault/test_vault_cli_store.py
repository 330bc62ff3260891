"""`keyloader master-key store` and `master-key check` through the real CLI against OpenBao."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from keyloader.masterkey import MasterKey, generate_master_key

KEYLOADER = str(Path(sys.executable).with_name("keyloader"))


def keyloader(
    bao: Any, path: str, *args: str, stdin: bytes | None = None, cwd: Path
) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "VAULT_ADDR": bao.address, "VAULT_TOKEN": bao.token}
    return subprocess.run(
        [KEYLOADER, "--provider", "vault", "-o", f"secrets_path={path}", *args],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def text_of(key: MasterKey) -> bytes:
    with key.to_text() as text:
        return text.bytes()


def assert_one_error_line(result: subprocess.CompletedProcess[bytes], *secrets: bytes) -> str:
    assert result.returncode == 1
    assert result.stdout == b""
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert b"Traceback" not in result.stderr
    for secret in secrets:
        assert secret not in result.stderr
    return lines[0]


def test_store_from_stdin_then_check(bao: Any, tmp_path: Path) -> None:
    path = f"secret/{uuid.uuid4().hex[:12]}"
    with generate_master_key() as key:
        text = text_of(key)
        stored = keyloader(
            bao, path, "master-key", "store", "--json", stdin=text + b"\n", cwd=tmp_path
        )
        assert stored.returncode == 0, stored.stderr
        document = json.loads(stored.stdout)
        assert document == {"provider": "vault", "version": "v1", "fingerprint": key.fingerprint}
        assert text not in stored.stdout + stored.stderr
        assert bao.token.encode() not in stored.stdout + stored.stderr

        checked = keyloader(bao, path, "master-key", "check", cwd=tmp_path)
        assert checked.returncode == 0, checked.stderr
        assert key.fingerprint.encode() in checked.stdout
        assert text not in checked.stdout

        with generate_master_key() as other:
            again = keyloader(bao, path, "master-key", "store", stdin=text_of(other), cwd=tmp_path)
            message = assert_one_error_line(again, text_of(other), text, bao.token.encode())
            assert "--force" in message or "exists" in message


def test_store_generate_and_force_refused_while_keys_depend_on_the_old_key(
    bao: Any, tmp_path: Path
) -> None:
    path = f"secret/{uuid.uuid4().hex[:12]}"
    first = keyloader(bao, path, "master-key", "store", "--generate", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    fingerprint = first.stdout.decode().splitlines()[1].split("\t")[-1]
    generated = keyloader(bao, path, "keys", "generate", "--client-id", "client1", cwd=tmp_path)
    assert generated.returncode == 0, generated.stderr
    forced = keyloader(bao, path, "master-key", "store", "--generate", "--force", cwd=tmp_path)
    message = assert_one_error_line(forced, bao.token.encode())
    assert fingerprint in message
    assert "rewrap" in message
    checked = keyloader(bao, path, "master-key", "check", cwd=tmp_path)
    assert fingerprint.encode() in checked.stdout  # nothing was replaced


def test_bad_stdin_and_providers_that_cannot_store(bao: Any, tmp_path: Path) -> None:
    path = f"secret/{uuid.uuid4().hex[:12]}"
    bad = keyloader(bao, path, "master-key", "store", stdin=b"not base64!", cwd=tmp_path)
    assert "standard input" in assert_one_error_line(bad)
    short = keyloader(bao, path, "master-key", "store", stdin=b"c2hvcnQ=", cwd=tmp_path)
    assert "at least 32" in assert_one_error_line(short)
    env_result = subprocess.run(
        [KEYLOADER, "master-key", "store", "--generate"],
        capture_output=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert "cannot store" in assert_one_error_line(env_result)


def test_output_is_a_usage_error_for_vault_which_keeps_the_key(bao: Any, tmp_path: Path) -> None:
    path = f"secret/{uuid.uuid4().hex[:12]}"
    target = tmp_path / "master-key.env"
    result = keyloader(
        bao, path, "master-key", "store", "--generate", "--output", str(target), cwd=tmp_path
    )
    assert result.returncode == 2
    assert b"holds the key itself" in result.stderr
    assert b"Traceback" not in result.stderr
    assert not target.exists()
    checked = keyloader(bao, path, "master-key", "check", cwd=tmp_path)
    assert checked.returncode == 0, "the key is stored all the same"
