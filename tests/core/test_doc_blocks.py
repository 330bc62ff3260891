"""Every Python block and shell session in the docs is either run by a test or marked as not
runnable, with the reason: ``<!-- runs: TEST FILE -->`` or ``<!-- not run: WHY -->`` on the
line before its fence. The README's Python tour runs here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from keyloader.masterkey import generate_master_key

ROOT = Path(__file__).resolve().parents[2]
DOCS = [
    ROOT / "README.md",
    ROOT / "CONTRIBUTING.md",
    ROOT / "examples" / "plugin-template" / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
]
RUNNABLE = {"python", "py", "console", "sh", "shell", "bash"}
FENCE = re.compile(r"\s*(```+|~~~+)(\w*)")
MARK = re.compile(r"\s*<!-- (?:runs: (?P<test>\S+)|not run: (?P<why>.+?)) -->$")


def blocks(path: Path) -> list[tuple[int, str, str | None, str]]:
    """(line, language, the marker line before it or None, the code) of each fenced block."""
    lines = path.read_text().split("\n")
    found = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence, language = opening.groups()
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        before = next((line for line in reversed(lines[:index]) if line.strip()), None)
        indent = len(lines[index]) - len(lines[index].lstrip())
        code = "\n".join(line[indent:] for line in lines[index + 1 : end])
        found.append((index + 1, language, before, code))
        index = end + 1
    return found


@pytest.mark.parametrize("path", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_runnable_block_is_run_or_says_why_not(path: Path) -> None:
    unmarked = []
    for line, language, before, _ in blocks(path):
        if language not in RUNNABLE:
            continue
        mark = MARK.match(before or "")
        if mark is None:
            unmarked.append(line)
            continue
        test = mark.group("test")
        if test is not None:
            runner = ROOT / test
            assert runner.is_file(), f"{path.name}:{line} names {test}, which does not exist"
            assert path.name in runner.read_text(), f"{test} does not read {path.name}"
    assert not unmarked, (
        f"{path.relative_to(ROOT)}: blocks at lines {unmarked} are neither run by a test "
        "(<!-- runs: tests/... -->) nor marked <!-- not run: why -->"
    )


def test_the_readme_python_tour_runs(tmp_path: Path) -> None:
    """README.md's Python block, as printed, in an empty directory with a master key."""
    (code,) = [code for _, language, _, code in blocks(ROOT / "README.md") if language == "python"]
    with generate_master_key() as key, key.to_text() as text:
        env = {**os.environ, "ACRA_MASTER_KEY": text.bytes().decode()}
    env = {k: v for k, v in env.items() if not k.startswith("KEYLOADER_")}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / ".acrakeys" / "billing_storage_sym").is_file()
