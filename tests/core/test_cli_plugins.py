"""``keyloader plugins``, ``providers``, ``providers show`` and plugin-provided commands."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from keyloader.cli.app import app

PLUGIN_COLUMNS = [
    "name",
    "entry_point",
    "distribution",
    "version",
    "hooks",
    "providers",
    "stores",
    "status",
    "error",
]
PROVIDER_COLUMNS = ["name", "plugin", "enterprise", "status", "aliases", "description"]
OPTION_COLUMNS = ["name", "type", "env", "default", "secret", "required", "choices", "help"]


def run(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def ok(*args: str, env: dict[str, str | None] | None = None) -> Result:
    result = run(*args, env=env)
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    assert result.stderr == ""
    return result


def tsv(result: Result) -> tuple[list[str], list[dict[str, str]]]:
    header, *lines = result.stdout.splitlines()
    columns = header.split("\t")
    return columns, [dict(zip(columns, line.split("\t"), strict=True)) for line in lines]


def install(site: Path, monkeypatch: pytest.MonkeyPatch, name: str, source: str) -> None:
    """Install a plugin module as a real distribution (dist-info + entry point) on sys.path."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"keyloader_{name}.py").write_text(source)
    dist = site / f"keyloader_{name}-0.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: keyloader-{name}\nVersion: 0.3\n")
    (dist / "entry_points.txt").write_text(f"[keyloader]\n{name} = keyloader_{name}\n")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()


COMMAND_PLUGIN = """
import keyloader

@keyloader.hookimpl
def keyloader_cli_commands(app):
    import typer

    @app.command("hello")
    def hello(name: str = "world") -> None:
        '''Say hello (a plugin command).'''
        from keyloader.cli.options import current_options

        print(f"hello {name} json={current_options().json_output}")
"""

BROKEN_PLUGIN = "raise RuntimeError('this plugin is broken on purpose')\n"

BROKEN_HOOK = """
import keyloader

@keyloader.hookimpl
def keyloader_cli_commands(app):
    raise RuntimeError('cli hook broken on purpose')
"""


# -- plugins -------------------------------------------------------------------------------


def test_plugins_lists_the_env_plugin() -> None:
    columns, rows = tsv(ok("plugins"))
    assert columns == PLUGIN_COLUMNS
    env = next(r for r in rows if "env" in r["providers"].split(","))
    assert env["status"] == "ok"
    assert env["entry_point"] == "env"
    assert env["distribution"] == "keyloader-env"
    assert "keyloader_master_key_providers" in env["hooks"].split(",")
    assert env["error"] == ""
    document = json.loads(ok("plugins", "--json").stdout)
    assert [list(p) for p in document["plugins"]] == [PLUGIN_COLUMNS] * len(document["plugins"])
    assert any("filesystem" in p["stores"] for p in document["plugins"])


def test_a_broken_plugin_is_reported_and_the_rest_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(tmp_path / "site", monkeypatch, "broken", BROKEN_PLUGIN)
    document = json.loads(ok("--json", "plugins").stdout)
    broken = next(p for p in document["plugins"] if p["name"] == "broken")
    assert broken["status"] == "error"
    assert "broken on purpose" in broken["error"]
    assert broken["distribution"] == "keyloader-broken"
    names = [p["name"] for p in json.loads(ok("providers", "--json").stdout)["providers"]]
    assert "env" in names
    missing = run("its-command")
    assert missing.exit_code == 2  # a usage error, with a pointer to why
    assert "1 plugin(s) failed to load" in missing.stderr
    assert "keyloader plugins" in missing.stderr


# -- providers --------------------------------------------------------------------------------


def test_providers_tsv_and_json() -> None:
    columns, rows = tsv(ok("providers"))
    assert columns == PROVIDER_COLUMNS
    env = next(r for r in rows if r["name"] == "env")
    assert (env["enterprise"], env["status"]) == ("false", "available")
    document = json.loads(ok("providers", "--json").stdout)
    assert [list(p) for p in document["providers"]] == [PROVIDER_COLUMNS] * len(
        document["providers"]
    )
    assert json.loads(ok("--json", "providers").stdout) == document


def test_providers_show_env() -> None:
    columns, rows = tsv(ok("providers", "show", "env"))
    assert columns == OPTION_COLUMNS
    by_name = {r["name"]: r for r in rows}
    assert set(by_name) >= {"variable", "file", "keystore_version"}
    assert by_name["variable"]["default"] == "ACRA_MASTER_KEY"
    assert by_name["keystore_version"]["choices"] == "auto,v1,v2"
    document = json.loads(ok("providers", "show", "env", "--json").stdout)
    provider = document["provider"]
    assert list(provider) == [*PROVIDER_COLUMNS, "options"]
    assert provider["aliases"] == ["env_master_key"]
    assert provider["name"] == "env"
    options = {o["name"]: o for o in provider["options"]}
    assert list(options["variable"]) == OPTION_COLUMNS
    assert options["variable"]["secret"] is False
    assert any(name.startswith("KEYLOADER_ENV_") for name in options["file"]["env"])


def test_providers_show_accepts_an_alias() -> None:
    document = json.loads(ok("--json", "providers", "show", "env_master_key").stdout)
    assert document["provider"]["name"] == "env"


# -- plugin commands ---------------------------------------------------------------------------


def test_a_plugin_adds_a_command_with_global_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(tmp_path / "site", monkeypatch, "greeter", COMMAND_PLUGIN)
    assert ok("hello").stdout == "hello world json=False\n"
    assert ok("--json", "hello", "--name", "you").stdout == "hello you json=True\n"
    assert ok("hello", "--json").stdout == "hello world json=True\n"
    assert "Say hello" in ok("hello", "--help").stdout
    assert "hello" not in ok("--help").stdout  # --help loads no plugin, to start fast
    completion = {
        "_KEYLOADER_COMPLETE": "complete_bash",
        "COMP_WORDS": "keyloader he",
        "COMP_CWORD": "1",
    }
    assert ok(env=completion).stdout.split() == ["hello"]
    assert run("hellp").exit_code == 2


def test_a_failing_cli_hook_is_a_plugin_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(tmp_path / "site", monkeypatch, "clibroken", BROKEN_HOOK)
    help_result = ok("--help")
    assert "keys" in help_result.stdout
    assert run("frobnicate").exit_code == 2
