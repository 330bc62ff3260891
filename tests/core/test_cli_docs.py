"""docs/cli.md documents each command, its TSV columns and JSON fields as printed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.core import TyperGroup
from typer.testing import CliRunner

from keyloader.cli.app import app, build_command
from keyloader.masterkey import generate_master_key

DOC = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
NOT_IN_THIS_RELEASE: set[str] = set()


def command_paths() -> list[str]:
    found: list[str] = []

    def walk(group: TyperGroup, prefix: str) -> None:
        for name, command in group.commands.items():
            path = f"{prefix}{name}"
            found.append(path)
            if isinstance(command, TyperGroup):
                walk(command, path + " ")

    walk(build_command(), "")
    return found


def section(path: str) -> str:
    match = re.search(rf"^### `keyloader {re.escape(path)}(?: [^`]*)?`$", DOC, flags=re.M)
    assert match, f"docs/cli.md has no section for `keyloader {path}`"
    end = DOC.find("\n### ", match.end())
    return DOC[match.end() : end if end != -1 else len(DOC)]


@pytest.mark.parametrize("path", command_paths())
def test_every_command_has_a_section_with_exit_codes(path: str) -> None:
    if path in ("keys", "master-key", "data"):
        return  # groups: their commands have the sections
    assert "Exit:" in section(path)


def test_unreleased_commands_are_not_offered() -> None:
    assert NOT_IN_THIS_RELEASE.isdisjoint(command_paths())


@pytest.mark.parametrize(
    ("path", "args"),
    [
        ("plugins", ["plugins"]),
        ("providers", ["providers"]),
        ("providers show", ["providers", "show", "env"]),
        ("master-key check", ["master-key", "check"]),
        ("keys list", ["keys", "list"]),
        ("keys verify", ["keys", "verify"]),
        ("config show", ["config", "show"]),
    ],
)
def test_documented_tsv_columns_and_json_fields(
    path: str, args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with generate_master_key() as key, key.to_text() as text:
        monkeypatch.setenv("ACRA_MASTER_KEY", text.bytes().decode())
    runner = CliRunner()
    assert runner.invoke(app, ["keys", "generate", "--client-id", "client1"]).exit_code == 0
    text_doc = section(path)
    columns = re.search(r"TSV columns[^`]*`([^`]+)`", text_doc)
    assert columns, f"no TSV columns documented for {path}"
    printed = runner.invoke(app, args).stdout.splitlines()[0].split("\t")
    assert columns.group(1).split() == printed
    document = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    fields = re.search(r"JSON: `(\{.*\})`", text_doc)
    assert fields, f"no JSON documented for {path}"
    documented = re.findall(r'"(\w+)"', fields.group(1))
    printed_names = _names(document)
    assert set(documented) == printed_names, (documented, printed_names)


def _names(document: object) -> set[str]:
    """Every key of the JSON document, nested ones included (the first item of each list)."""
    names: set[str] = set()
    if isinstance(document, dict):
        for key, value in document.items():
            names.add(key)
            names |= _names(value)
    elif isinstance(document, list) and document:
        names |= _names(document[0])
    return names
