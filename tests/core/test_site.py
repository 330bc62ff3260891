"""The documentation site (mkdocs.yml, tools/site_sources.py, ``make docs``): every public
name of the API reference has a docstring, links land on the site's pages, and a broken link
or anchor fails the strict build."""

from __future__ import annotations

import importlib
import inspect
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE = runpy.run_path(str(ROOT / "tools" / "site_sources.py"))
MKDOCS = Path(sys.executable).with_name("mkdocs")


@pytest.mark.parametrize("module", sorted(SITE["REFERENCE"]))
def test_every_public_name_of_the_reference_has_a_docstring(module: str) -> None:
    loaded = importlib.import_module(module)
    assert loaded.__doc__, f"{module} has no docstring"
    missing = []
    for name in getattr(loaded, "__all__", ()):
        value = getattr(loaded, name)
        if (inspect.isclass(value) or inspect.isfunction(value)) and not inspect.getdoc(value):
            missing.append(name)
    assert not missing, f"{module}: public names without a docstring: {missing}"


def test_the_sources_link_to_the_sites_pages(tmp_path: Path) -> None:
    SITE["main"](tmp_path / "src")
    index = (tmp_path / "src" / "index.md").read_text()
    assert "](architecture.md)" in index  # README's docs/architecture.md
    assert "](CHANGELOG.md)" in index
    upgrading = (tmp_path / "src" / "upgrading.md").read_text()
    assert "](CHANGELOG.md)" in upgrading  # docs' ../CHANGELOG.md
    assert (
        (tmp_path / "src" / "reference" / "keyloader.testing.md")
        .read_text()
        .endswith("::: keyloader.testing\n")
    )


def _build(tmp_path: Path, docs: Path) -> subprocess.CompletedProcess[str]:
    """``make docs`` on a copy of the repository's documentation with ``docs`` as docs/."""
    copy = tmp_path / "repo"
    for name in ("README.md", "CONTRIBUTING.md", "CHANGELOG.md", "mkdocs.yml"):
        shutil.copy(ROOT / name, copy / name if copy.exists() else _mkdir(copy) / name)
    shutil.copytree(docs, copy / "docs")
    shutil.copytree(ROOT / "tools", copy / "tools")
    shutil.copytree(ROOT / "examples" / "plugin-template", copy / "examples" / "plugin-template")
    (copy / "core").symlink_to(ROOT / "core")
    subprocess.run([sys.executable, "tools/site_sources.py"], cwd=copy, check=True)
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [str(MKDOCS), "build", "--strict"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def test_the_strict_build_passes_and_fails_on_a_broken_anchor(tmp_path: Path) -> None:
    built = _build(tmp_path / "good", ROOT / "docs")
    assert built.returncode == 0, built.stderr[-3000:]
    html = tmp_path / "good" / "repo" / "build" / "site" / "reference" / "keyloader"
    assert "open_keystore" in (html / "index.html").read_text()
    broken = tmp_path / "broken-docs"
    shutil.copytree(ROOT / "docs", broken)
    data = broken / "data.md"
    data.write_text(data.read_text() + "\nSee [the flags](cli.md#no-such-section).\n")
    failed = _build(tmp_path / "bad", broken)
    assert failed.returncode != 0
    assert "no-such-section" in failed.stdout + failed.stderr
