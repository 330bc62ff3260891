"""Lazy built-in commands: only the invoked command is imported and built; help stays exact."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest
from typer._click.utils import make_default_short_help
from typer.core import TyperGroup
from typer.testing import CliRunner

from keyloader.cli.app import BUILTIN_COMMANDS, KeyloaderGroup, app, build_command

PROBE = """
import json, sys
from keyloader.cli import main
code = main(sys.argv[1:])
sys.stdout.flush()
print("\\nMODULES " + json.dumps(sorted(sys.modules)), file=sys.stderr)
sys.exit(code)
"""

COMMAND_MODULES = {
    "keyloader.cli.keys",
    "keyloader.cli.master_key",
    "keyloader.cli.plugins_cmd",
    "keyloader.cli.render",
}


def modules_after(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, set[str]]:
    process = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
        timeout=60,
    )
    marker = process.stderr.rindex("MODULES ")
    modules = set(json.loads(process.stderr[marker + len("MODULES ") :]))
    return process.returncode, process.stdout, modules


def all_built(group: TyperGroup) -> None:
    """Build every command of ``group`` and of its sub-groups."""
    for command in group.commands.values():
        if isinstance(command, TyperGroup):
            all_built(command)


# -- what a run imports ------------------------------------------------------------------


def test_help_imports_no_command_module() -> None:
    code, stdout, modules = modules_after("--help")
    assert code == 0
    assert not modules & COMMAND_MODULES, sorted(modules & COMMAND_MODULES)
    for name in BUILTIN_COMMANDS:
        assert name in stdout


def test_master_key_check_imports_only_its_group_and_no_key_store() -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    code, stdout, modules = modules_after("master-key", "check", env={"ACRA_MASTER_KEY": key})
    assert code == 0
    assert stdout.splitlines()[0].split("\t") == ["provider", "version", "length", "fingerprint"]
    assert "keyloader.cli.master_key" in modules
    unexpected = {
        "keyloader.cli.keys",
        "keyloader.cli.plugins_cmd",
        "keyloader.keystore",
        "keyloader.stores.base",
        "keyloader.themis.scell",
        "keyloader._plugin_records",
        "tomllib",
        "logging",
        "rich",
        "cryptography",
    }
    assert not modules & unexpected, sorted(modules & unexpected)


def test_a_group_builds_only_the_invoked_command() -> None:
    group = build_command()
    master_key = group.commands["master-key"]
    assert isinstance(master_key, TyperGroup)
    assert list(master_key.commands) == ["generate", "check", "store"]  # names, nothing built
    check = master_key.commands["check"]
    assert check.name == "check"
    assert "generate" in master_key.commands
    assert master_key.commands.is_built("check")  # type: ignore[attr-defined]
    assert not master_key.commands.is_built("generate")  # type: ignore[attr-defined]
    assert not group.commands.is_built("keys")  # type: ignore[attr-defined]


# -- help text ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(BUILTIN_COMMANDS))
def test_listed_help_is_the_commands_own_help(name: str) -> None:
    command = build_command().commands[name]
    for limit in (20, 45, 74, 200):
        expected = command.get_short_help_str(limit)
        assert make_default_short_help(BUILTIN_COMMANDS[name].help, limit) == expected


@pytest.mark.parametrize("columns", ["60", "80", "200"])
def test_root_help_is_the_same_before_and_after_building_the_commands(
    columns: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", columns)
    lazy = build_command()
    built = build_command()
    all_built(built)
    assert lazy.main(["--help"], prog_name="keyloader", standalone_mode=False) == 0
    lazy_help = capsys.readouterr().out
    assert built.main(["--help"], prog_name="keyloader", standalone_mode=False) == 0
    built_help = capsys.readouterr().out
    assert "Commands:" in lazy_help
    assert lazy_help == built_help


def test_builtin_commands_are_listed_in_order_without_building_them() -> None:
    group = build_command()
    assert isinstance(group, KeyloaderGroup)
    assert list(group.commands) == [
        "plugins",
        "providers",
        "master-key",
        "keys",
        "data",
        "config",
        "exec",
    ]
    assert len(group.commands) == 7
    assert "keys" in group.commands
    assert "nope" not in group.commands
    assert not any(group.commands.is_built(name) for name in BUILTIN_COMMANDS)  # type: ignore[attr-defined]


# -- global options on lazily built commands ---------------------------------------------


def test_global_options_after_a_lazily_built_leaf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", base64.b64encode(os.urandom(32)).decode())
    result = CliRunner().invoke(
        app, ["master-key", "check", "--json", "-o", "variable=MY_KEY", "--provider", "env"]
    )
    assert result.exit_code == 0, (result.stdout, result.stderr)
    document = json.loads(result.stdout)
    assert document["provider"] == "env"
    assert document["length"] == 32


def test_global_options_on_a_group_that_runs_on_its_own() -> None:
    result = CliRunner().invoke(app, ["providers", "--json"])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "env" in {row["name"] for row in json.loads(result.stdout)["providers"]}


def test_a_leaf_option_that_is_not_global_is_still_refused() -> None:
    result = CliRunner().invoke(app, ["master-key", "check", "--no-such-option"])
    assert result.exit_code == 2
    assert "No such option" in result.stderr
