"""Start-up cost of the CLI: which modules a command imports, and shell completion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

KEYLOADER = Path(sys.executable).with_name("keyloader")

PROBE = """
import json, sys
from keyloader.cli import main
code = main(sys.argv[1:])
sys.stdout.flush()
print("\\nMODULES " + json.dumps(sorted(sys.modules)), file=sys.stderr)
sys.exit(code)
"""

NEVER = {"hvac", "redis", "pydantic", "boto3", "botocore", "s3transfer"}


def modules_after(*args: str) -> tuple[int, set[str]]:
    env = {**os.environ, "ACRA_MASTER_KEY": ""}
    process = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    marker = process.stderr.rindex("MODULES ")
    return process.returncode, set(json.loads(process.stderr[marker + len("MODULES ") :]))


def roots(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["plugins"],
        ["providers"],
        ["--enterprise", "providers"],
        ["--enterprise", "providers", "show", "aws-kms"],
        ["keys", "list"],
        ["--version"],
        ["config", "show"],
    ],
)
def test_no_sdk_is_imported(args: list[str]) -> None:
    """boto3 is installed here (the aws-kms tests need it): it still loads only for aws-kms."""
    code, modules = modules_after(*args)
    assert code == 0
    assert roots(modules).isdisjoint(NEVER), sorted(roots(modules) & NEVER)


HEAVY = {
    "rich",
    "cryptography",
    "keyloader.keystore",
    "keyloader.themis.scell",
    "keyloader.masterkey",
    "keyloader.plugins",
    "keyloader_env",
    "tomllib",
}


def baseline_modules() -> set[str]:
    """What ``import keyloader`` alone imports (the CLI cannot import less than that)."""
    probe = "import json, sys, keyloader; print(json.dumps(sorted(sys.modules)))"
    process = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(process.stdout))


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["keys", "--help"]])
def test_help_adds_no_heavy_import(args: list[str]) -> None:
    """Help and --version load no plugin, no rich, nothing ``import keyloader`` does not."""
    code, modules = modules_after(*args)
    assert code == 0
    added = (modules & HEAVY) - baseline_modules()
    assert not added, sorted(added)
    assert "rich" not in roots(modules)


def test_console_script_help_and_version() -> None:
    helped = subprocess.run(
        [KEYLOADER, "--help"], capture_output=True, text=True, check=False, timeout=60
    )
    assert helped.returncode == 0
    for command in ("plugins", "providers", "master-key", "keys"):
        assert command in helped.stdout
    version = subprocess.run(
        [KEYLOADER, "--version"], capture_output=True, text=True, check=False, timeout=60
    )
    from keyloader import __version__

    assert version.stdout == f"keyloader {__version__}\n"


def test_python_dash_m() -> None:
    process = subprocess.run(
        [sys.executable, "-m", "keyloader.cli", "--version"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert process.returncode == 0
    assert process.stdout.startswith("keyloader ")


def test_show_completion_script() -> None:
    process = subprocess.run(
        [KEYLOADER, "--show-completion", "bash"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert process.returncode == 0, process.stderr
    assert "_KEYLOADER_COMPLETE" in process.stdout


def test_completion_completes_commands() -> None:
    env = {
        **os.environ,
        "_KEYLOADER_COMPLETE": "complete_bash",
        "COMP_WORDS": "keyloader ke",
        "COMP_CWORD": "1",
    }
    process = subprocess.run(
        [KEYLOADER], capture_output=True, text=True, env=env, check=False, timeout=60
    )
    assert process.returncode == 0, process.stderr
    assert process.stdout.split() == ["keys"]
    env["COMP_WORDS"] = "keyloader keys "
    env["COMP_CWORD"] = "2"
    process = subprocess.run(
        [KEYLOADER], capture_output=True, text=True, env=env, check=False, timeout=60
    )
    assert set(process.stdout.split()) == {
        "generate",
        "list",
        "read",
        "rotate",
        "destroy",
        "verify",
        "rewrap",
        "migrate",
        "export",
        "import",
    }
