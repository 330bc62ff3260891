"""docs/data.md: its Python and shell examples run as written, as a user would run them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from keyloader.masterkey import generate_master_key

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "data.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", DOC, flags=re.M | re.S)


@pytest.fixture
def environment(tmp_path: Path) -> dict[str, str]:
    with generate_master_key() as key, key.to_text() as text:
        return {
            **os.environ,
            "ACRA_MASTER_KEY": text.bytes().decode(),
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        }


def test_the_python_example_runs(tmp_path: Path, environment: dict[str, str]) -> None:
    [code] = _blocks("python")
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=environment, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / ".acrakeys" / "billing_storage_sym.old").is_dir()


def test_the_shell_example_runs(tmp_path: Path, environment: dict[str, str]) -> None:
    [script] = _blocks("sh")
    setup = "keyloader keys generate --client-id billing --symmetric --searchable\n"
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", setup + script],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "4111 1111 1111 1111" in lines[2]  # decrypt prints the value (no newline of its own)
    assert lines[-1] == "poisoned"
