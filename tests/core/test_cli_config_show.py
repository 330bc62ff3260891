"""``keyloader config show``: every resolved value with its source, secrets redacted."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from keyloader.cli.app import app

TOKEN = "s.do-not-print-this-t0ken"


def show(*args: str, env: dict[str, str] | None = None) -> list[dict[str, object]]:
    result = CliRunner().invoke(app, [*args, "--json", "config", "show"], env=env or {})
    assert result.exit_code == 0, result.output
    rows: list[dict[str, object]] = json.loads(result.stdout)["config"]
    return rows


def row(rows: list[dict[str, object]], scope: str, name: str) -> dict[str, object]:
    [found] = [r for r in rows if r["scope"] == scope and r["name"] == name]
    return found


def test_each_value_says_where_it_came_from(tmp_path: Path) -> None:
    config = tmp_path / "keyloader.toml"
    config.write_text('keystore = "memory"\ncache_size = 7\n[providers.vault]\ntimeout = 4\n')
    env = {"KEYLOADER_CONFIG": str(config), "VAULT_ADDR": "http://127.0.0.1:8200"}
    rows = show("--provider", "vault", "-o", "secrets_path=secret/acra", env=env)
    assert row(rows, "settings", "provider") == {
        "scope": "settings",
        "name": "provider",
        "value": "vault",
        "source": "--provider",
        "secret": False,
    }
    assert row(rows, "settings", "keystore")["source"] == f"{config} keystore"
    assert row(rows, "settings", "cache_size")["value"] == 7
    assert row(rows, "settings", "config_file")["source"] == "KEYLOADER_CONFIG"
    assert row(rows, "settings", "enterprise")["source"] == "default"
    assert row(rows, "provider vault", "address")["source"] == "VAULT_ADDR"
    assert row(rows, "provider vault", "secrets_path")["source"] == "--option"
    assert row(rows, "provider vault", "timeout") == {
        "scope": "provider vault",
        "name": "timeout",
        "value": 4.0,
        "source": f"{config} [providers.vault]",
        "secret": False,
    }
    assert row(rows, "key store memory", "keys_dir")["value"] == ".acrakeys"


def test_secrets_are_redacted_and_never_printed() -> None:
    env = {"VAULT_ADDR": "http://127.0.0.1:8200", "VAULT_TOKEN": TOKEN}
    for output in ("--json", None):
        args = ["--provider", "vault", "-o", "secrets_path=secret/acra"]
        args += [output, "config", "show"] if output else ["config", "show"]
        result = CliRunner().invoke(app, args, env=env)
        assert result.exit_code == 0, result.output
        assert TOKEN not in result.output
        assert "<redacted>" in result.output
    token = row(show("--provider", "vault", env=env), "provider vault", "token")
    assert (token["value"], token["source"], token["secret"]) == ("<redacted>", "VAULT_TOKEN", True)


def test_a_previous_provider_gets_its_own_rows() -> None:
    rows = show("--previous-provider", "env", "--previous-option", "variable=OLD_KEY")
    assert row(rows, "previous provider env", "variable") == {
        "scope": "previous provider env",
        "name": "variable",
        "value": "OLD_KEY",
        "source": "--previous-option",
        "secret": False,
    }


def test_an_unknown_provider_is_a_one_line_error() -> None:
    result = CliRunner().invoke(app, ["--provider", "nope", "config", "show"], env={})
    assert result.exit_code == 1
    assert result.output.startswith("error: no master-key provider named 'nope'")
    assert "Traceback" not in result.output
