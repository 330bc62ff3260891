"""Documentation tests: every hook is documented with its exact signature, and tested."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from keyloader import hookspecs

ROOT = Path(__file__).resolve().parents[2]
HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("keyloader_"))


def _signature(name: str) -> str:
    sig = inspect.signature(getattr(hookspecs, name))
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"{name}({params}) -> {sig.return_annotation}"


def test_hooks_exist() -> None:
    assert HOOKS == [
        "keyloader_audit_actions",
        "keyloader_audit_event",
        "keyloader_cli_commands",
        "keyloader_key_stores",
        "keyloader_master_key_providers",
    ]


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_documented_with_exact_signature(hook: str) -> None:
    contributing = (ROOT / "CONTRIBUTING.md").read_text()
    headings = re.findall(r"^### `(keyloader_\w+\(.*\).*)`$", contributing, flags=re.M)
    documented = {h.split("(")[0]: h for h in headings}
    assert hook in documented, f"{hook} is missing from CONTRIBUTING.md's hook reference"
    assert documented[hook] == _signature(hook)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_docstring_contract(hook: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    assert "Called" in doc, f"{hook}'s docstring must say when it is called"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_exercised_by_a_test(hook: str) -> None:
    here = Path(__file__).resolve()
    users = [
        p
        for p in (ROOT / "tests").rglob("test_*.py")
        if p.resolve() != here and hook in p.read_text()
    ]
    assert users, f"no test exercises {hook}"


def test_no_documented_hook_is_missing_from_the_code() -> None:
    contributing = (ROOT / "CONTRIBUTING.md").read_text()
    documented = set(re.findall(r"^### `(keyloader_\w+)\(", contributing, flags=re.M))
    assert documented == set(HOOKS)
