"""`keyloader exec`: the master key for any process, through the env provider."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from keyloader.api import resolve
from keyloader.launch import child_environment
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader.plugins import make_plugin_manager

CHILD = str(Path(__file__).parents[1] / "exec_child.py")
KEYLOADER = [sys.executable, "-m", "keyloader.cli"]


@pytest.fixture
def key() -> MasterKey:
    return generate_master_key()


def text(key: MasterKey) -> str:
    with key.to_text() as t:
        return t.bytes().decode()


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KEYLOADER, *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def base_env(**extra: str) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], **extra}


def test_the_child_gets_the_key_and_keyloaders_pid_and_its_exit_status(key: MasterKey) -> None:
    env = base_env(ACRA_MASTER_KEY=text(key))
    process = subprocess.Popen(
        [*KEYLOADER, "exec", "--", sys.executable, CHILD, "ACRA_MASTER_KEY", "7"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    out, err = process.communicate(timeout=60)
    assert process.returncode == 7, err
    report = json.loads(out)
    assert report["pid"] == process.pid  # exec, not a subprocess
    assert report["fingerprint"] == key.fingerprint
    assert report["seen"] == ["ACRA_MASTER_KEY"]  # replaced, not duplicated
    assert text(key) not in out + err


def test_sigterm_reaches_the_child_and_the_key_is_not_on_its_command_line(
    key: MasterKey,
) -> None:
    env = base_env(ACRA_MASTER_KEY=text(key))
    process = subprocess.Popen(
        [*KEYLOADER, "exec", "--", sys.executable, CHILD, "ACRA_MASTER_KEY", "wait"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    report = json.loads(process.stdout.readline())
    cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes()
    assert text(key).encode() not in cmdline
    assert report["pid"] == process.pid
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 143
    process.stdout.close()
    assert process.stderr is not None
    process.stderr.close()


def test_another_variable_and_the_source_variable_is_removed(key: MasterKey) -> None:
    env = base_env(ACRA_MASTER_KEY=text(key))
    result = run(env, "exec", "--env-var", "MY_KEY", "--", sys.executable, CHILD, "MY_KEY", "0")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["fingerprint"] == key.fingerprint
    assert report["seen"] == ["MY_KEY"]
    kept = run(
        env,
        "exec",
        "--env-var",
        "MY_KEY",
        "--keep-provider-env",
        "--",
        sys.executable,
        CHILD,
        "MY_KEY",
        "0",
    )
    assert json.loads(kept.stdout)["seen"] == ["ACRA_MASTER_KEY", "MY_KEY"]


def test_a_key_file_provider_leaves_the_environment_alone(key: MasterKey, tmp_path: Path) -> None:
    from keyloader.masterkey import write_master_key_file

    path = write_master_key_file(key, tmp_path / "master.key")
    env = base_env(KEYLOADER_ENV_FILE=str(path), ACRA_MASTER_KEY="unrelated")
    result = run(env, "exec", "--env-var", "MY_KEY", "--", sys.executable, CHILD, "MY_KEY", "0")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["seen"] == ["ACRA_MASTER_KEY", "KEYLOADER_ENV_FILE", "MY_KEY"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ([], 2, "give the command to run"),
        (["--", "no-such-command-anywhere"], 127, "command not found"),
        (["--", "/"], 126, "not an executable file"),
        (["--env-var", "A=B", "--", "true"], 1, "give an environment variable name"),
    ],
)
def test_errors_have_env1_exit_codes_and_one_line(
    key: MasterKey, args: list[str], code: int, message: str
) -> None:
    result = run(base_env(ACRA_MASTER_KEY=text(key)), "exec", *args)
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_a_file_that_is_not_executable_is_126(key: MasterKey, tmp_path: Path) -> None:
    script = tmp_path / "service"
    script.write_text("#!/bin/sh\necho started\n")
    script.chmod(0o644)
    result = run(base_env(ACRA_MASTER_KEY=text(key)), "exec", "--", str(script))
    assert (result.returncode, result.stdout) == (126, "")
    assert "not an executable file" in result.stderr


def test_a_provider_failure_is_exit_1_and_the_command_never_starts(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    result = run(base_env(), "exec", "--", sys.executable, "-c", f"open({str(marker)!r}, 'w')")
    assert result.returncode == 1
    assert result.stderr.startswith("error: environment variable ACRA_MASTER_KEY is not set")
    time.sleep(0.1)
    assert not marker.exists()


def test_the_python_building_block(key: MasterKey, monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {"ACRA_MASTER_KEY": text(key), "KEYLOADER_ENV_VARIABLE": "ACRA_MASTER_KEY", "X": "1"}
    monkeypatch.setenv("ACRA_MASTER_KEY", text(key))  # the env provider reads the process env
    settings = resolve(env=environ)
    env = child_environment(
        settings, make_plugin_manager(env={}), env_var="SERVICE_KEY", environ=environ
    )
    assert set(env) == {b"SERVICE_KEY", b"KEYLOADER_ENV_VARIABLE", b"X"}
    assert env[b"SERVICE_KEY"] == text(key).encode()
