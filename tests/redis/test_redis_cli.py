"""The ``keyloader`` CLI with ``--keystore redis`` against a real redis-server."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

from keyloader.masterkey import generate_master_key

from .conftest import RedisServer

KEYLOADER = str(Path(sys.executable).with_name("keyloader"))


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KEYLOADER, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_generate_list_rotate_verify(
    redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    master = generate_master_key()
    env = {**os.environ, "ACRA_MASTER_KEY": base64.b64encode(master.encryption.bytes()).decode()}
    base = ["--keystore", "redis", "-s", f"url={redis_server.url}", "-s", f"keys_dir={prefix}"]

    generated = _cli(
        [*base, "keys", "generate", "--client-id", "client1", "--searchable"], env, tmp_path
    )
    assert generated.returncode == 0, generated.stderr
    assert generated.stdout.split() == ["client/client1/searchable"]
    rotated = _cli([*base, "keys", "rotate", "client/client1/searchable"], env, tmp_path)
    assert rotated.returncode == 0, rotated.stderr
    listed = _cli([*base, "keys", "list", "--rotated"], env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split("\t") for line in listed.stdout.splitlines()[1:]]
    assert [(row[0], row[3], row[4]) for row in rows] == [
        ("client/client1/searchable", "1", "current"),
        ("client/client1/searchable", "2", "rotated"),
    ]
    assert rows[0][-1] == f"{redis_server.url}/{prefix}/client1_hmac"
    verified = _cli([*base, "keys", "verify"], env, tmp_path)
    assert verified.returncode == 0, verified.stderr

    raw = redis_server.client()
    keys = sorted(k.decode() for k in raw.scan_iter(match=f"{prefix}/*"))
    assert keys[0] == f"{prefix}/client1_hmac"
    assert keys[1].startswith(f"{prefix}/client1_hmac.old/")
    assert len(keys) == 2
    # the same key id again is KeyExistsError; a tampered value makes verify fail
    again = _cli(
        [*base, "keys", "generate", "--client-id", "client1", "--searchable"], env, tmp_path
    )
    assert again.returncode == 1
    assert "keys rotate" in again.stderr
    raw.set(keys[1], base64.b64encode(b"\x00" * 60))
    raw.close()
    broken = _cli([*base, "keys", "verify"], env, tmp_path)
    assert broken.returncode == 1


def test_unreachable_server_is_one_error_line(tmp_path: Path) -> None:
    from .conftest import free_port

    env = {**os.environ, "ACRA_MASTER_KEY": base64.b64encode(b"k" * 32).decode()}
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = _cli(
        ["--keystore", "redis", "-s", f"url={url}", "-s", "timeout=1", "keys", "list"],
        env,
        tmp_path,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    assert url in result.stderr
    assert len(result.stderr.splitlines()) == 1
