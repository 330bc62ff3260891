"""Every import in the core goes down the layers of docs/architecture.md.

The layer table lists the modules bottom-up; a module may import only modules
listed before it, at module level or inside a function (``TYPE_CHECKING``
imports are annotations, not counted). ``cli/`` and ``testing/`` are the top
and may import anything, each other's modules included.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "core" / "src" / "keyloader"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
TOP = ("cli/", "testing/")


def _order() -> list[str]:
    text = ARCHITECTURE.read_text()
    table = text[text.index("| layer | modules, in order |") :].split("\n\n")[0]
    order: list[str] = []
    for line in table.splitlines()[2:]:
        order += re.findall(r"`([\w/]+)`", line.split("|")[2])
    return order


def _module(path: Path) -> str:
    rel = path.relative_to(CORE).with_suffix("").as_posix()
    if rel.split("/")[0] + "/" in TOP:
        return rel.split("/")[0] + "/"
    return rel


def _imports(path: Path) -> list[tuple[str, int]]:
    """(imported core module, line) of every import outside ``if TYPE_CHECKING:``."""
    package = path.relative_to(CORE).parent.parts
    found: list[tuple[str, int]] = []

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            if "TYPE_CHECKING" not in ast.unparse(node.test):
                self.generic_visit(node)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            if node.level:
                base = list(package[: len(package) - (node.level - 1)])
            elif node.module and node.module.split(".")[0] == "keyloader":
                base, node.module = [], node.module.removeprefix("keyloader").lstrip(".") or None
            else:
                return
            module = "/".join([*base, *(node.module.split(".") if node.module else [])])
            for alias in node.names:  # `from pkg import mod` imports pkg/mod when it is one
                submodule = f"{module}/{alias.name}" if module else alias.name
                is_module = (CORE / f"{submodule}.py").exists() or (CORE / submodule).is_dir()
                found.append((submodule if is_module else module, node.lineno))

    Visitor().visit(ast.parse(path.read_text()))
    return found


def _resolve(target: str, known: set[str]) -> str | None:
    """The listed module an import names (a package import means its ``__init__``)."""
    if target.split("/")[0] + "/" in TOP:
        return target.split("/")[0] + "/"
    for candidate in (target, f"{target}/__init__" if target else "__init__"):
        if candidate in known:
            return candidate
    parent = target.rsplit("/", 1)[0] if "/" in target else ""
    init = f"{parent}/__init__" if parent else "__init__"
    return init if init in known else None  # `from .pkg import name` of a package


MODULES = sorted(p for p in CORE.rglob("*.py"))


def test_the_table_lists_every_core_module_once() -> None:
    order = _order()
    assert len(order) == len(set(order))
    listed = {_module(p) for p in MODULES}
    assert set(order) == listed


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(CORE).as_posix())
def test_every_import_goes_down(path: Path) -> None:
    order = _order()
    position = {name: index for index, name in enumerate(order)}
    source = _module(path)
    upward = []
    for target, line in _imports(path):
        resolved = _resolve(target, set(order))
        assert resolved is not None, f"{path.name}:{line} imports {target!r}, not in the table"
        if resolved == source and source in TOP:
            continue
        if position[resolved] >= position[source]:
            upward.append(f"line {line}: {resolved}")
    assert upward == [], f"{source} imports modules listed after it: {upward}"
