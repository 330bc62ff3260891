"""``keyloader master-key generate`` and ``master-key check`` through the CLI."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from keyloader.cli.app import app
from keyloader.masterkey import fingerprint, parse_master_key


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def ok(*args: str) -> Result:
    result = run(*args)
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    assert result.stderr == ""
    return result


def fails(*args: str) -> Result:
    result = run(*args)
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return result


def tsv(result: Result) -> list[dict[str, str]]:
    header, *lines = result.stdout.splitlines()
    return [dict(zip(header.split("\t"), line.split("\t"), strict=True)) for line in lines]


# -- generate ----------------------------------------------------------------------------


def test_generate_prints_the_text_form_only() -> None:
    first = ok("master-key", "generate").stdout
    second = ok("master-key", "generate").stdout
    assert first.endswith("\n")
    assert first.count("\n") == 1
    assert len(base64.b64decode(first.strip(), validate=True)) == 32
    assert first != second
    with parse_master_key(first.strip()) as key:
        assert key.version == "v1"


def test_generate_v2_prints_a_v2_pair() -> None:
    text = ok("master-key", "generate", "--keystore-version", "v2").stdout.strip()
    pair = json.loads(base64.b64decode(text))
    assert sorted(pair) == ["encryption", "signature"]
    assert pair["encryption"] != pair["signature"]
    with parse_master_key(text) as key:
        assert key.version == "v2"


def test_generate_json_holds_the_key_and_its_fingerprint() -> None:
    document = json.loads(ok("master-key", "generate", "--json").stdout)
    assert list(document) == ["master_key", "version", "length", "fingerprint"]
    with parse_master_key(document["master_key"]) as key:
        assert document["fingerprint"] == key.fingerprint
    assert (document["version"], document["length"]) == ("v1", 32)


def test_generate_output_writes_raw_bytes_0600_and_prints_no_key(tmp_path: Path) -> None:
    target = tmp_path / "master.key"
    result = ok("master-key", "generate", "--output", str(target))
    raw = target.read_bytes()
    assert len(raw) == 32
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    rows = tsv(result)
    assert rows == [
        {"path": str(target), "version": "v1", "length": "32", "fingerprint": fingerprint(raw)}
    ]
    assert base64.b64encode(raw).decode() not in result.stdout
    assert raw.hex() not in result.stdout


def test_generate_output_refuses_an_existing_file_unless_forced(tmp_path: Path) -> None:
    target = tmp_path / "master.key"
    target.write_bytes(b"keep me")
    target.chmod(0o644)
    result = fails("master-key", "generate", "--output", str(target))
    assert str(target) in result.stderr
    assert target.read_bytes() == b"keep me"
    document = json.loads(
        ok("master-key", "generate", "--output", str(target), "--force", "--json").stdout
    )
    assert list(document) == ["path", "version", "length", "fingerprint"]
    assert len(target.read_bytes()) == 32
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert document["fingerprint"] == fingerprint(target.read_bytes())


def test_generate_v2_output_writes_the_text_form(tmp_path: Path) -> None:
    target = tmp_path / "v2.key"
    ok("master-key", "generate", "--keystore-version", "v2", "--output", str(target))
    with parse_master_key(target.read_text()) as key:
        assert key.version == "v2"


def test_generate_output_into_a_missing_directory(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "master.key"
    result = fails("master-key", "generate", "--output", str(target))
    assert str(target) in result.stderr
    assert not target.parent.exists()


def test_generate_usage_errors() -> None:
    for args in (["--force"], ["--keystore-version", "v3"], ["--output"]):
        result = run("master-key", "generate", *args)
        assert result.exit_code == 2, args
        assert result.stdout == ""


def test_generated_key_file_is_read_by_the_env_provider(tmp_path: Path) -> None:
    target = tmp_path / "master.key"
    fp = tsv(ok("master-key", "generate", "--output", str(target)))[0]["fingerprint"]
    rows = tsv(ok("master-key", "check", "-o", f"file={target}"))
    assert rows == [{"provider": "env", "version": "v1", "length": "32", "fingerprint": fp}]


# -- check -------------------------------------------------------------------------------


def test_check_prints_provider_version_length_fingerprint(monkeypatch: pytest.MonkeyPatch) -> None:
    text = ok("master-key", "generate").stdout.strip()
    monkeypatch.setenv("ACRA_MASTER_KEY", text)
    result = ok("master-key", "check")
    raw = base64.b64decode(text)
    assert tsv(result) == [
        {"provider": "env", "version": "v1", "length": "32", "fingerprint": fingerprint(raw)}
    ]
    assert text not in result.stdout
    document = json.loads(ok("master-key", "check", "--json").stdout)
    assert document == {
        "provider": "env",
        "version": "v1",
        "length": 32,
        "fingerprint": fingerprint(raw),
    }


def test_check_accepts_a_longer_key_and_a_v2_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACRA_MASTER_KEY", base64.b64encode(os.urandom(48)).decode())
    assert tsv(ok("master-key", "check"))[0]["length"] == "48"
    v2 = ok("master-key", "generate", "--keystore-version", "v2").stdout.strip()
    monkeypatch.setenv("ACRA_MASTER_KEY", v2)
    assert tsv(ok("master-key", "check"))[0]["version"] == "v2"


def test_check_reads_another_variable_and_an_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", base64.b64encode(os.urandom(32)).decode())
    rows = tsv(ok("--provider", "env_master_key", "master-key", "check", "-o", "variable=MY_KEY"))
    assert rows[0]["provider"] == "env"


def test_check_without_a_key_fails() -> None:
    result = fails("master-key", "check")
    assert "ACRA_MASTER_KEY" in result.stderr


# -- store --output and the environment file ----------------------------------------------


def test_store_output_is_checked_before_anything_else(tmp_path: Path) -> None:
    existing = tmp_path / "master-key.env"
    existing.write_text("KEEP=1\n")
    result = fails("master-key", "store", "--generate", "--output", str(existing))
    assert "already exists" in result.stderr
    assert existing.read_text() == "KEEP=1\n"
    missing = fails("master-key", "store", "--generate", "--output", str(tmp_path / "no" / "f"))
    assert "does not exist; create it first" in missing.stderr
    env = fails("master-key", "store", "--generate", "--output", str(tmp_path / "new.env"))
    assert "cannot store master keys" in env.stderr
    assert not (tmp_path / "new.env").exists()


def test_write_environment_file(tmp_path: Path) -> None:
    from keyloader.errors import ConfigError, KeyExistsError
    from keyloader.masterkey_file import check_new_file, write_environment_file

    target = tmp_path / "service.env"
    assert check_new_file(target) == target
    written = write_environment_file(target, {"ACRA_MASTER_KEY": "QUJD", "OTHER": "x=y"})
    assert written == target
    assert target.read_text() == "ACRA_MASTER_KEY=QUJD\nOTHER=x=y\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    with pytest.raises(KeyExistsError, match="already exists"):
        check_new_file(target)
    with pytest.raises(KeyExistsError, match="already exists"):
        write_environment_file(target, {"A": "b"})
    for bad in ({"A=B": "c"}, {"": "c"}, {"A": "line\nbreak"}):
        with pytest.raises(ConfigError, match="environment file"):
            write_environment_file(tmp_path / "bad.env", bad)
        assert not (tmp_path / "bad.env").exists()
