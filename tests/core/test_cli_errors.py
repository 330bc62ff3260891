"""Every bad input through the CLI: exit 1 and one ``error:`` line, or exit 2 for parse errors."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from keyloader.cli.app import app
from keyloader.cli.errors import run_guarded
from keyloader.keystore import KeyManager
from keyloader.masterkey import generate_master_key

SYM = "client/client1/symmetric"
KEYS = Path(".acrakeys")
KEYLOADER = Path(sys.executable).with_name("keyloader")


def run(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every path under ``root`` with its mode and content digest."""
    if not root.exists():
        return {}
    found = {".": (root.stat().st_mode, "")}
    for path in sorted(root.rglob("*")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        found[str(path.relative_to(root))] = (path.stat().st_mode, digest)
    return found


def assert_fails(*args: str, match: str | None = None, keys: Path = KEYS) -> str:
    """Exit 1, exactly one ``error: ...`` line on stderr, empty stdout, the key dir untouched."""
    before = snapshot(keys)
    result = run(*args)
    assert result.exit_code == 1, (args, result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    if match is not None:
        assert match in lines[0], lines[0]
    assert snapshot(keys) == before
    return lines[0]


def assert_usage_error(*args: str) -> str:
    result = run(*args)
    assert result.exit_code == 2, (args, result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    return result.stderr


@pytest.fixture
def master_text(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with generate_master_key() as key, key.to_text() as text:
        value = text.bytes().decode()
    monkeypatch.setenv("ACRA_MASTER_KEY", value)
    return value


@pytest.fixture
def with_keys(master_text: str) -> str:
    result = run("keys", "generate", "--client-id", "client1", "--symmetric", "--searchable")
    assert result.exit_code == 0, result.stderr
    return master_text


# -- master keys -------------------------------------------------------------------------

TOO_SHORT = base64.b64encode(b"k" * 31).decode()
V2_EQUAL = base64.b64encode(
    json.dumps(
        {
            "encryption": base64.b64encode(b"e" * 32).decode(),
            "signature": base64.b64encode(b"e" * 32).decode(),
        }
    ).encode()
).decode()


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (None, "ACRA_MASTER_KEY"),
        ("", "ACRA_MASTER_KEY"),
        ("not base64 at all!", "ACRA_MASTER_KEY"),
        (TOO_SHORT, "ACRA_MASTER_KEY"),
        (V2_EQUAL, "ACRA_MASTER_KEY"),
    ],
    ids=["unset", "empty", "bad-base64", "too-short", "v2-equal"],
)
@pytest.mark.parametrize(
    "command",
    [
        ["master-key", "check"],
        ["keys", "generate", "--client-id", "client1"],
        ["keys", "verify"],
        ["keys", "read", "client/client0/symmetric"],
        ["keys", "list", "--check"],
    ],
    ids=["check", "generate", "verify", "read", "list-check"],
)
def test_bad_master_key(
    monkeypatch: pytest.MonkeyPatch, value: str | None, match: str, command: list[str]
) -> None:
    with generate_master_key() as key, key.to_text() as text:
        good = text.bytes().decode()
    created = run("keys", "generate", "--client-id", "client0", env={"ACRA_MASTER_KEY": good})
    assert created.exit_code == 0, created.stderr
    if value is not None:
        monkeypatch.setenv("ACRA_MASTER_KEY", value)
    line = assert_fails(*command, match=match)
    if value:
        assert value not in line


def test_bad_master_key_for_an_existing_store(
    with_keys: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACRA_MASTER_KEY", TOO_SHORT)
    assert_fails("keys", "read", SYM)
    assert_fails("keys", "rotate", SYM)
    assert_fails("keys", "list", "--check")


def test_v2_master_key_cannot_open_the_key_store(monkeypatch: pytest.MonkeyPatch) -> None:
    with generate_master_key("v2") as key, key.to_text() as text:
        monkeypatch.setenv("ACRA_MASTER_KEY", text.bytes().decode())
    assert_fails("keys", "generate", "--client-id", "client1", match="keystore v2")


# -- ids and names ---------------------------------------------------------------------------


@pytest.mark.parametrize("client_id", ["abc", "bad/client", "bad!client", "x" * 257])
def test_bad_client_id(master_text: str, client_id: str) -> None:
    assert_fails("keys", "generate", "--client-id", client_id, match="client id")


@pytest.mark.parametrize(
    "args",
    [
        ["keys", "read", "nonsense"],
        ["keys", "read", "client/client1/bogus"],
        ["keys", "read", "client/ab/symmetric"],
        ["keys", "rotate", "client//symmetric"],
        ["keys", "destroy", "audit-log/extra"],
    ],
)
def test_bad_key_id(with_keys: str, args: list[str]) -> None:
    assert_fails(*args)


def test_client_id_with_global_kind(master_text: str) -> None:
    assert_fails("keys", "generate", "--client-id", "client1", "--audit-log", match="client")


def test_a_missing_keypair_is_not_rotated(with_keys: str) -> None:
    assert_fails("keys", "rotate", "client/client1/storage", match="nothing to rotate")


def test_missing_keys_and_indexes(with_keys: str) -> None:
    assert_fails("keys", "read", "client/other-client/symmetric")
    assert_fails("keys", "read", SYM, "--index", "2", match="index")
    assert_fails("keys", "read", SYM, "--index", "0", match="index")
    assert_fails("keys", "destroy", SYM, "--index", "5")
    assert_fails("keys", "rotate", "audit-log")
    assert_fails("keys", "read", "client/client1/storage", "--public")
    assert_fails("keys", "read", SYM, "--public", match="symmetric")


def test_existing_key_on_generate(with_keys: str) -> None:
    assert_fails("keys", "generate", "--client-id", "client1", "--searchable", match="keys rotate")


def test_unknown_provider_and_store(master_text: str) -> None:
    assert_fails("--provider", "nope", "master-key", "check", match="nope")
    assert_fails("keys", "generate", "--client-id", "client1", "--keystore", "nope", match="nope")
    assert_fails("providers", "show", "nope", match="nope")


def test_unknown_options(master_text: str) -> None:
    assert_fails("master-key", "check", "-o", "colour=blue", match="colour")
    assert_fails("keys", "list", "-s", "colour=blue", match="colour")
    assert_fails("master-key", "check", "-o", "keystore_version=v3", match="keystore_version")


def test_locked_enterprise_provider(
    master_text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_plugin(tmp_path / "site", monkeypatch)
    line = assert_fails("--provider", "corporate", "master-key", "check")
    assert "Enterprise Edition" in line
    assert "--enterprise" in line
    line = assert_fails("--provider", "corporate", "master-key", "check", "--enterprise")
    assert "Enterprise Edition" not in line
    assert "not implemented here" in line


# -- files -------------------------------------------------------------------------------------


def test_insecure_directory_permissions(with_keys: str) -> None:
    KEYS.chmod(0o755)
    assert_fails("keys", "list", match="chmod")
    assert_fails("keys", "read", SYM, match="chmod")
    KEYS.chmod(0o700)
    (KEYS / "client1_storage_sym").chmod(0o640)
    assert_fails("keys", "read", SYM, match="chmod")


def test_tampered_key_file(with_keys: str) -> None:
    path = KEYS / "client1_storage_sym"
    blob = bytearray(path.read_bytes())
    blob[20] ^= 0x01
    path.write_bytes(bytes(blob))
    assert_fails("keys", "read", SYM, match="client1_storage_sym")


def test_key_file_moved_to_another_name(with_keys: str) -> None:
    """The Secure Cell context (the client id) binds a blob to its client."""
    moved = KEYS / "client2_storage_sym"
    moved.write_bytes((KEYS / "client1_storage_sym").read_bytes())
    moved.chmod(0o600)
    assert_fails("keys", "read", "client/client2/symmetric", match="client2_storage_sym")


def test_wrong_master_key(with_keys: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with generate_master_key() as other, other.to_text() as text:
        monkeypatch.setenv("ACRA_MASTER_KEY", text.bytes().decode())
    line = assert_fails("keys", "read", SYM, match="cannot decrypt")
    assert "client1_storage_sym" in line


def test_missing_and_bad_config_file(master_text: str, tmp_path: Path) -> None:
    assert_fails("--config", str(tmp_path / "missing.toml"), "keys", "list", match="missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("colour = 'blue'\n")
    assert_fails("keys", "list", "--config", str(bad), match="colour")
    assert_fails("master-key", "check", "--config", str(tmp_path), match=str(tmp_path))


def test_secret_option_on_the_command_line_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provider with a secret option, installed as a real distribution on sys.path."""
    site = tmp_path / "site"
    install_plugin(site, monkeypatch)
    line = assert_fails("--provider", "secretive", "master-key", "check", "-o", "token=hunter2")
    assert "hunter2" not in line
    assert "token" in line
    assert "refused" in line
    assert_fails(
        "master-key",
        "check",
        "--previous-provider",
        "secretive",
        "--previous-option",
        "token=hunter2",
    )


def install_plugin(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    site.mkdir(parents=True)
    (site / "keyloader_secretive.py").write_text(
        "import keyloader, keyloader.errors\n"
        "from keyloader.providers import MasterKeyProvider, Option\n"
        "class Secretive(MasterKeyProvider):\n"
        "    name = 'secretive'\n"
        "    description = 'test provider with a secret option'\n"
        "    options = (Option('token', 'a token', secret=True),"
        " Option('token_file', 'a token file', type='path'))\n"
        "    def load(self):\n"
        "        raise NotImplementedError\n"
        "class Corporate(MasterKeyProvider):\n"
        "    name = 'corporate'\n"
        "    description = 'test enterprise provider'\n"
        "    enterprise = True\n"
        "    def load(self):\n"
        "        raise keyloader.errors.ProviderUnavailableError('not implemented here')\n"
        "@keyloader.hookimpl\n"
        "def keyloader_master_key_providers():\n"
        "    return [Secretive, Corporate]\n"
    )
    dist = site / "keyloader_secretive-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: keyloader-secretive\nVersion: 0.1\n"
    )
    (dist / "entry_points.txt").write_text("[keyloader]\nsecretive = keyloader_secretive\n")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()


# -- the process and its environment ------------------------------------------------------------


def test_bad_log_level() -> None:
    result = run("keys", "list", env={"KEYLOADER_LOG_LEVEL": "LOUD"})
    assert result.exit_code == 1
    assert result.stderr.startswith("error: KEYLOADER_LOG_LEVEL")
    assert result.stdout == ""


def test_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    result = run("master-key", "check", env={"KEYLOADER_DEBUG": "1"})
    assert result.exit_code == 1
    assert "Traceback" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: ")
    assert "MasterKeyNotFoundError" in result.stderr
    assert result.stdout == ""


def test_console_script_error_and_usage_exit_codes() -> None:
    env = {k: v for k, v in os.environ.items() if k != "ACRA_MASTER_KEY"}
    failed = subprocess.run(
        [KEYLOADER, "master-key", "check"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert failed.returncode == 1
    assert failed.stdout == ""
    assert len(failed.stderr.splitlines()) == 1
    assert failed.stderr.startswith("error: ")
    usage = subprocess.run(
        [KEYLOADER, "keys", "frobnicate"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert usage.returncode == 2
    assert "frobnicate" in usage.stderr


def test_ctrl_c_exits_130(with_keys: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(self: KeyManager, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(KeyManager, "list", interrupted)
    result = run("keys", "list")
    assert result.exit_code == 130
    assert result.stdout == ""
    assert "Traceback" not in result.stderr


def test_an_unexpected_error_shows_its_type_only(
    with_keys: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: KeyManager, **kwargs: object) -> None:
        raise ValueError("internal detail that could be anything")

    monkeypatch.setattr(KeyManager, "list", broken)
    line = assert_fails("keys", "list", match="ValueError")
    assert "internal detail" not in line


def test_output_into_a_missing_directory(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "file"
    assert_fails("master-key", "generate", "--output", str(target), match=str(target))
    assert not (tmp_path / "no").exists()


def test_an_os_error_becomes_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    def missing() -> None:
        raise FileNotFoundError(2, "No such file or directory", "/some/where")

    assert run_guarded(missing) == 1
    captured = capsys.readouterr()
    assert captured.err == "error: /some/where: No such file or directory\n"
    assert captured.out == ""


# -- parse errors: exit 2 ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["frobnicate"],
        ["keys", "frobnicate"],
        ["keys", "list", "--frobnicate"],
        ["keys", "read"],
        ["keys", "read", SYM, "--index", "two"],
        ["keys", "read", SYM, "--format", "hex"],
        ["keys", "read", SYM, "--public", "--index", "2"],
        ["keys", "read", SYM, "--json", "--format", "raw"],
        ["keys", "list", "-o", "no-equals-sign"],
        ["-s", "=value", "keys", "list"],
        ["--previous-option", "x", "keys", "list"],
        ["master-key", "generate", "--force"],
        ["providers", "show"],
        ["--provider"],
    ],
)
def test_parse_errors_exit_2(master_text: str, args: list[str]) -> None:
    before = snapshot(KEYS)
    assert_usage_error(*args)
    assert snapshot(KEYS) == before


def test_key_value_errors_do_not_echo_the_value() -> None:
    stderr = assert_usage_error("keys", "list", "-o", "s3cr3t-token-value")
    assert "s3cr3t" not in stderr


def test_no_command_shows_help() -> None:
    result = run()
    assert result.exit_code == 2
    assert "keys" in result.stderr + result.stdout
