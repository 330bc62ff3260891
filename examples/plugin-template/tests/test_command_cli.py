"""The plugin in the ``keyloader`` CLI: ``command-check``, ``master-key check``, ``plugins``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points, version
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

import keyloader_command
from keyloader.cli.app import app
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader_command import AUDIT_LOG_VAR, plugin

KeyCommand = Callable[[MasterKey], tuple[str, ...]]
NoKey = Callable[[str, MasterKey], None]
HOOKS = [
    "keyloader_audit_actions",
    "keyloader_audit_event",
    "keyloader_cli_commands",
    "keyloader_master_key_providers",
]


def run(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def ok(*args: str, env: dict[str, str | None] | None = None) -> Result:
    result = run(*args, env=env)
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    assert result.stderr == ""
    return result


def failed(*args: str, code: int = 1) -> Result:
    result = run(*args)
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    return result


def option(argv: tuple[str, ...]) -> str:
    return "argv=" + json.dumps(argv)


@pytest.fixture
def v1_key() -> Iterator[MasterKey]:
    with generate_master_key("v1") as key:
        yield key


# -- command-check (keyloader_cli_commands) ---------------------------------------------------


def test_command_check_prints_only_the_fingerprint(
    master_key: MasterKey, key_command: KeyCommand, assert_no_key: NoKey
) -> None:
    result = ok("command-check", "-o", option(key_command(master_key)))
    assert result.stdout == f"{master_key.fingerprint}\n"
    assert_no_key(result.stdout, master_key)
    document = json.loads(
        ok("--json", "command-check", "-o", option(key_command(master_key))).stdout
    )
    assert document == {"fingerprint": master_key.fingerprint}


def test_command_check_reads_the_environment_and_the_config_file(
    v1_key: MasterKey, key_command: KeyCommand, clean_environment: Path
) -> None:
    argv = key_command(v1_key)
    env: dict[str, str | None] = {"KEYLOADER_COMMAND_ARGV": json.dumps(argv)}
    assert ok("command-check", env=env).stdout == f"{v1_key.fingerprint}\n"
    items = ", ".join(json.dumps(item) for item in argv)
    (clean_environment / "keyloader.toml").write_text(f"[providers.command]\nargv = [{items}]\n")
    assert ok("command-check").stdout == f"{v1_key.fingerprint}\n"


def test_command_check_expect(v1_key: MasterKey, key_command: KeyCommand) -> None:
    given = option(key_command(v1_key))
    ok("command-check", "-o", given, "--expect", v1_key.fingerprint.upper())
    with generate_master_key() as other:
        result = failed("command-check", "-o", given, "--expect", other.fingerprint)
    assert result.stderr.startswith("error: the command printed master key ")
    assert f"not the expected {other.fingerprint}" in result.stderr
    bad = failed("command-check", "-o", given, "--expect", "not-hex", code=2)
    assert "16 hex digits" in bad.stderr


def test_command_check_errors_are_one_line(v1_key: MasterKey) -> None:
    result = failed("command-check", "-o", 'argv=["sh", "-c", "echo denied >&2; exit 4"]')
    assert result.stderr.startswith("denied\n")  # the command's stderr, passed through
    assert result.stderr.endswith(
        "error: command 'sh' (option 'argv' of provider 'command') failed with exit status 4; "
        "its stderr, if any, is shown above. Run the command yourself to see why\n"
    )
    missing = failed("command-check")
    assert "needs option 'argv'" in missing.stderr
    other = failed("--provider", "env", "command-check")
    assert "always uses provider 'command'" in other.stderr
    shell = failed("command-check", "-o", "argv=my-tool --decrypt")
    assert "not a JSON array of strings" in shell.stderr


def test_the_hook_adds_the_command_to_a_typer_app() -> None:
    target = typer.Typer()
    plugin.keyloader_cli_commands(target)
    assert [info.name for info in target.registered_commands] == ["command-check"]
    with pytest.raises(TypeError, match=r"typer\.Typer"):
        plugin.keyloader_cli_commands(object())


def test_command_check_help() -> None:
    result = ok("command-check", "--help")
    assert "fingerprint" in result.stdout
    assert "--expect" in result.stdout


# -- the provider through the core's commands -------------------------------------------------


def test_master_key_check_with_provider_command(
    master_key: MasterKey, key_command: KeyCommand, assert_no_key: NoKey
) -> None:
    argv = option(key_command(master_key))
    result = ok("master-key", "check", "--provider", "command", "-o", argv)
    header, row = result.stdout.splitlines()
    assert header.split("\t") == ["provider", "version", "length", "fingerprint"]
    assert row.split("\t") == ["command", master_key.version, "32", master_key.fingerprint]
    assert_no_key(result.stdout, master_key)


def test_keys_commands_with_provider_command_write_the_audit_log(
    v1_key: MasterKey, key_command: KeyCommand, tmp_path: Path, assert_no_key: NoKey
) -> None:
    log = tmp_path / "audit.jsonl"
    env: dict[str, str | None] = {AUDIT_LOG_VAR: str(log)}
    globals_ = ["--provider", "command", "-o", option(key_command(v1_key))]
    ok(*globals_, "keys", "generate", "--client-id", "client1", env=env)
    ok(*globals_, "keys", "rotate", "client/client1/symmetric", env=env)
    actions = [json.loads(line)["action"] for line in log.read_text().splitlines()]
    assert actions == ["master_key_loaded", "key_generated", "master_key_loaded", "key_rotated"]
    assert_no_key(log.read_text(), v1_key)


def test_providers_show_command() -> None:
    document = json.loads(ok("providers", "show", "command", "--json").stdout)["provider"]
    assert (document["name"], document["plugin"], document["status"]) == (
        "command",
        "command",
        "available",
    )
    options = {o["name"]: o for o in document["options"]}
    assert list(options) == ["argv", "timeout", "keystore_version"]
    assert options["argv"]["required"] is True
    assert options["argv"]["secret"] is False
    assert options["argv"]["env"] == ["KEYLOADER_COMMAND_ARGV"]
    assert options["timeout"]["default"] == 30.0


# -- keyloader plugins ---------------------------------------------------------------------------


def test_entry_point() -> None:
    (entry_point,) = entry_points(group="keyloader", name="command")
    assert entry_point.value == "keyloader_command.plugin"
    assert entry_point.dist is not None
    assert entry_point.dist.name == "keyloader-command"
    assert entry_point.load() is plugin


def test_keyloader_plugins_lists_the_plugin() -> None:
    document = json.loads(ok("plugins", "--json").stdout)
    (row,) = [p for p in document["plugins"] if p["name"] == "command"]
    assert row == {
        "name": "command",
        "entry_point": "command",
        "distribution": "keyloader-command",
        "version": version("keyloader-command"),
        "hooks": HOOKS,
        "providers": ["command"],
        "stores": [],
        "status": "ok",
        "error": None,
    }
    assert row["version"] == keyloader_command.__version__
