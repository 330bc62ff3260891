"""keys list and keys verify report what is not a key file instead of skipping it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from keyloader.cli.app import app
from keyloader.masterkey import generate_master_key


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    with generate_master_key() as key, key.to_text() as text:
        env = {"ACRA_MASTER_KEY": text.bytes().decode(), "KEYLOADER_KEYS_DIR": str(tmp_path / "k")}
    result = CliRunner().invoke(app, ["keys", "generate", "--client-id", "client1"], env=env)
    assert result.exit_code == 0, result.output
    return env


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def verify(env: dict[str, str]) -> tuple[int, dict[str, dict[str, object]]]:
    result = run(env, "--json", "keys", "verify")
    document = json.loads(result.stdout)
    return result.exit_code, {Path(str(r["path"])).name: r for r in document["results"]}


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda keys, tmp: (keys / "client2_hmac").symlink_to(tmp / "elsewhere"), "symbolic link"),
        (lambda keys, tmp: os.mkfifo(keys / "client2_hmac", 0o600), "not a regular file"),
        (lambda keys, tmp: (keys / "client2_hmac").mkdir(mode=0o700), "not a regular file"),
    ],
    ids=["symlink", "fifo", "directory"],
)
def test_a_non_file_in_place_of_a_key_fails_verify_with_the_reason(
    env: dict[str, str], tmp_path: Path, make: object, reason: str
) -> None:
    keys = tmp_path / "k"
    make(keys, tmp_path)  # type: ignore[operator]
    code, results = verify(env)
    assert code == 1
    assert results["client2_hmac"]["ok"] is False
    assert reason in str(results["client2_hmac"]["error"])
    assert results["client1_storage_sym"]["ok"] is True
    listing = json.loads(run(env, "--json", "keys", "list", "--check").stdout)["keys"]
    [row] = [k for k in listing if k["path"].endswith("client2_hmac")]
    assert row["decrypts"] is False
    assert os.path.lexists(keys / "client2_hmac")  # reported, never removed


def test_a_huge_file_named_like_a_key_is_refused_quickly(
    env: dict[str, str], tmp_path: Path
) -> None:
    huge = tmp_path / "k" / "client2_hmac"
    with open(huge, "wb") as stream:
        stream.truncate(2 << 30)  # 2 GiB, sparse: reading it would take seconds and gigabytes
    huge.chmod(0o600)
    result = run(env, "keys", "read", "client/client2/searchable")
    assert result.exit_code == 1
    assert "larger than any key could be" in result.output
    assert "Traceback" not in result.output
    code, results = verify(env)
    assert code == 1
    assert "larger than any key" in str(results["client2_hmac"]["error"])
