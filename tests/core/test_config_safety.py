"""Configuration fixes: boolean words everywhere, and config files others could change."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keyloader.config import load_settings
from keyloader.errors import ConfigError
from keyloader.providers import Option

WORDS_TRUE = ["1", "true", "TRUE", "yes", "Yes", "on", "ON", " on "]
WORDS_FALSE = ["0", "false", "False", "no", "NO", "off", "Off"]


@pytest.mark.parametrize(
    ("text", "expected"), [(w, True) for w in WORDS_TRUE] + [(w, False) for w in WORDS_FALSE]
)
def test_enterprise_and_debug_accept_every_boolean_word(
    tmp_path: Path, text: str, expected: bool
) -> None:
    settings = load_settings(
        env={"KEYLOADER_ENTERPRISE": text, "KEYLOADER_DEBUG": text}, cwd=tmp_path
    )
    assert (settings.enterprise, settings.debug) == (expected, expected)


@pytest.mark.parametrize(("text", "expected"), [("on", True), ("off", False), ("Yes", True)])
def test_a_toml_string_and_an_option_accept_boolean_words(
    tmp_path: Path, text: str, expected: bool
) -> None:
    (tmp_path / "keyloader.toml").write_text(f'enterprise = "{text}"\n')
    assert load_settings(env={}, cwd=tmp_path).enterprise is expected
    option = Option("flag", "A flag.", type="bool")
    assert option.convert(text, origin="option 'flag'") is expected


@pytest.mark.parametrize("text", ["maybe", "2", "onn"])
def test_other_words_are_refused_with_the_spellings(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="1/true/yes/on or 0/false/no/off"):
        load_settings(env={"KEYLOADER_DEBUG": text}, cwd=tmp_path)
    (tmp_path / "keyloader.toml").write_text(f'enterprise = "{text}"\n')
    with pytest.raises(ConfigError, match="enterprise must be a boolean"):
        load_settings(env={}, cwd=tmp_path)


def test_debug_on_through_the_cli_is_not_a_configuration_error(tmp_path: Path) -> None:
    from keyloader.cli.app import app

    env = {"KEYLOADER_DEBUG": "on", "KEYLOADER_KEYS_DIR": str(tmp_path / "keys")}
    result = CliRunner().invoke(app, ["keys", "read", "audit-log"], env=env)
    assert result.exit_code == 1
    assert "is not a boolean" not in result.output
    assert "error: secure_log_key does not exist" in result.output


def test_enterprise_on_unlocks_the_gate_through_the_cli() -> None:
    from keyloader.cli.app import app

    result = CliRunner().invoke(app, ["--json", "providers"], env={"KEYLOADER_ENTERPRISE": "on"})
    assert result.exit_code == 0, result.output
    assert '"locked"' not in result.output
    assert '"unavailable"' in result.output


# -- config files others could change ------------------------------------------------


@pytest.mark.parametrize("mode", [0o666, 0o664, 0o646, 0o620, 0o602])
def test_a_config_file_group_or_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    config = tmp_path / "keyloader.toml"
    config.write_text('provider = "vault"\n')
    config.chmod(mode)
    with pytest.raises(ConfigError, match="writable by group or others") as excinfo:
        load_settings(env={}, cwd=tmp_path)
    assert f"chmod go-w {config}" in str(excinfo.value)
    with pytest.raises(ConfigError, match="writable by group or others"):
        load_settings(env={"KEYLOADER_CONFIG": str(config)}, cwd=tmp_path)


@pytest.mark.parametrize("mode", [0o600, 0o644, 0o640, 0o400])
def test_a_config_file_only_its_owner_can_write_is_used(tmp_path: Path, mode: int) -> None:
    config = tmp_path / "keyloader.toml"
    config.write_text('provider = "vault"\n')
    config.chmod(mode)
    assert load_settings(env={}, cwd=tmp_path).provider == "vault"


@pytest.mark.skipif(os.getuid() != 0, reason="giving a file to another user needs root")
def test_a_config_file_another_user_owns_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "keyloader.toml"
    config.write_text('provider = "vault"\n')
    os.chown(config, 54321, 54321)
    with pytest.raises(ConfigError, match=r"owned by another user \(uid 54321\)"):
        load_settings(env={}, cwd=tmp_path)


def test_a_refused_config_file_fails_the_cli_with_one_line(tmp_path: Path) -> None:
    from keyloader.cli.app import app

    config = tmp_path / "keyloader.toml"
    config.write_text('keystore = "memory"\n')
    config.chmod(0o666)
    result = CliRunner().invoke(app, ["--config", str(config), "keys", "list"], env={})
    assert result.exit_code == 1
    assert result.output.startswith("error: config file")
    assert "Traceback" not in result.output
