"""Keypairs through the CLI, with keyloader's flags and with Acra's spellings."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from keyloader.cli.app import app
from keyloader.masterkey import generate_master_key
from keyloader.themis import keys as themis_keys

from ..acrabackup import acra_export_problems


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    with generate_master_key() as key, key.to_text() as text:
        master = key.encryption.bytes()
        env = {"ACRA_MASTER_KEY": text.bytes().decode(), "KEYLOADER_KEYS_DIR": str(tmp_path / "k")}
    yield env
    keys = tmp_path / "k"
    if keys.exists():  # after every command of the test, Acra's backup rules hold
        assert acra_export_problems(keys, master).problems == []


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(
    "flags",
    [
        ["--client-id", "client_one", "--storage", "--poison-record"],
        ["--client_id", "client_one", "--client_storage_key", "--poison_record_keys"],
    ],
)
def test_generate_keypairs_with_keyloader_or_acra_flags(
    env: dict[str, str], tmp_path: Path, flags: list[str]
) -> None:
    result = run(env, "--json", "keys", "generate", *flags)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["generated"] == [
        "client/client_one/storage",
        "poison-record",
        "poison-record-symmetric",
    ]
    keys = tmp_path / "k"
    assert mode(keys / "client_one_storage") == 0o600
    assert mode(keys / "client_one_storage.pub") == 0o644
    assert mode(keys / ".poison_key" / "poison_key") == 0o600
    assert mode(keys / ".poison_key" / "poison_key.pub") == 0o644
    assert (keys / ".poison_key" / "poison_key_sym").is_file()
    public = (keys / "client_one_storage.pub").read_bytes()
    themis_keys.load_public(public)
    raw = run(env, "keys", "read", "client/client_one/storage", "--format", "raw")
    assert themis_keys.public_of(raw.stdout_bytes) == public
    pub = run(env, "keys", "read", "client/client_one/storage", "--public", "--format", "raw")
    assert pub.stdout_bytes == public


def test_acra_spellings_of_the_symmetric_flags_and_keys_dir(
    env: dict[str, str], tmp_path: Path
) -> None:
    other = tmp_path / "acra-style"
    result = run(
        env,
        "--keys_dir",
        str(other),
        "keys",
        "generate",
        "--client_id",
        "client_two",
        "--client_storage_symmetric_key",
        "--search_hmac_symmetric_key",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == ["client/client_two/symmetric", "client/client_two/searchable"]
    assert {p.name for p in other.iterdir()} >= {"client_two_storage_sym", "client_two_hmac"}
    result = run(env, "--keys_dir", str(other), "keys", "generate", "--audit_log_symmetric_key")
    assert result.stdout.split() == ["audit-log"]


def test_rotate_destroy_and_list_a_keypair(env: dict[str, str], tmp_path: Path) -> None:
    assert run(env, "keys", "generate", "--client-id", "client_one", "--storage").exit_code == 0
    assert run(env, "keys", "rotate", "client/client_one/storage").exit_code == 0
    listing = json.loads(run(env, "--json", "keys", "list", "--rotated").stdout)["keys"]
    rows = [(k["index"], k["state"]) for k in listing]
    assert rows == [(1, "current"), (2, "rotated"), (None, "public"), (2, "public")]
    keys = tmp_path / "k"
    [private_old] = (keys / "client_one_storage.old").iterdir()
    [public_old] = (keys / "client_one_storage.pub.old").iterdir()
    assert private_old.name == public_old.name
    assert mode(public_old) == 0o644
    verify = run(env, "keys", "verify")
    assert verify.exit_code == 0, verify.output
    assert run(env, "keys", "destroy", "client/client_one/storage", "--index", "2").exit_code == 0
    assert not private_old.exists()
    assert not public_old.exists()
    assert run(env, "keys", "destroy", "client/client_one/storage").exit_code == 0
    assert not (keys / "client_one_storage").exists()
    assert not (keys / "client_one_storage.pub").exists()


def test_a_keypair_whose_halves_do_not_match_fails_verify(
    env: dict[str, str], tmp_path: Path
) -> None:
    assert run(env, "keys", "generate", "--client-id", "client_one", "--storage").exit_code == 0
    _, stranger = themis_keys.generate_keypair()
    (tmp_path / "k" / "client_one_storage.pub").write_bytes(stranger)
    result = run(env, "keys", "verify")
    assert result.exit_code == 1
    assert "does not match its public half" in result.stdout
    assert "Traceback" not in result.output


def test_storage_needs_a_client_id(env: dict[str, str], tmp_path: Path) -> None:
    result = run(env, "keys", "generate", "--storage")
    assert result.exit_code == 1
    assert result.output.startswith("error: ")
    assert not (tmp_path / "k").exists() or not any((tmp_path / "k").iterdir())
