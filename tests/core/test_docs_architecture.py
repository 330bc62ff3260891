"""docs/architecture.md stays the design in the repository: every core module is placed in a
layer there, and nothing points at a design document outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "core" / "src" / "keyloader"
ARCHITECTURE = ROOT / "docs" / "architecture.md"


def _core_modules() -> list[str]:
    modules = [p.stem for p in CORE.glob("*.py") if p.stem != "__init__"]
    modules += [f"stores/{p.stem}" for p in (CORE / "stores").glob("*.py") if p.stem != "__init__"]
    return sorted(modules)


@pytest.mark.parametrize("module", _core_modules())
def test_every_core_module_has_a_layer(module: str) -> None:
    text = ARCHITECTURE.read_text()
    assert f"`{module}`" in text, f"{module} is not placed in docs/architecture.md's layers"


def test_no_reference_to_a_design_document_outside_the_repository() -> None:
    pattern = re.compile("DESIGN" + r" §\d")  # split so this file does not match itself
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("core", "plugins", "tests", "docs", "examples", "benchmarks")
        for path in (ROOT / folder).rglob("*")
        if path.suffix in {".py", ".md", ".toml"} and pattern.search(path.read_text())
    ]
    offenders += [
        n for n in ("README.md", "CONTRIBUTING.md") if pattern.search((ROOT / n).read_text())
    ]
    assert offenders == []


def test_the_readme_leads_to_the_architecture() -> None:
    assert "docs/architecture.md" in (ROOT / "README.md").read_text()
