"""``keyloader data ...``: Acra's containers from the command line, stdin to stdout."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from keyloader.cli.app import app
from keyloader.containers import acrablock, acrastruct, envelope
from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader.secret import SecretBytes
from keyloader.stores.filesystem import FilesystemKeyStore

SYM = "client/client1/symmetric"
STORAGE = "client/client1/storage"
ROW = b"a secret row \x00\xff binary"
KEYLOADER = Path(sys.executable).with_name("keyloader")


def run(*args: str, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(app, list(args), input=stdin)


def ok(*args: str, stdin: bytes | None = None) -> bytes:
    result = run(*args, stdin=stdin)
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    assert result.stderr == ""
    return result.stdout_bytes


def failed(*args: str, stdin: bytes | None = None, code: int = 1) -> str:
    result = run(*args, stdin=stdin)
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result.stderr


@pytest.fixture
def master(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[MasterKey]:
    monkeypatch.chdir(tmp_path)
    with generate_master_key() as key, key.to_text() as text:
        monkeypatch.setenv("ACRA_MASTER_KEY", text.bytes().decode())
        yield key


@pytest.fixture
def keys(master: MasterKey) -> Iterator[KeyManager]:
    store = FilesystemKeyStore({"keys_dir": Path(".acrakeys")})
    with KeyManager(store, MasterKey(SecretBytes(master.encryption.buffer))) as manager:
        manager.generate(["symmetric", "searchable", "storage"], client_id="client1")
        yield manager


@pytest.mark.parametrize("key_id", [SYM, STORAGE])
def test_encrypt_then_decrypt_through_stdin_and_stdout(keys: KeyManager, key_id: str) -> None:
    sealed = ok("data", "encrypt", key_id, stdin=ROW)
    assert sealed.startswith(envelope.TAG)
    assert keys.decrypt(key_id, sealed) == ROW
    assert ok("data", "decrypt", key_id, stdin=sealed) == ROW
    bare = ok("data", "encrypt", key_id, "--no-envelope", stdin=ROW)
    assert bare.startswith(acrablock.TAG if key_id == SYM else acrastruct.TAG)
    assert ok("data", "decrypt", key_id, stdin=bare) == ROW


def test_base64_files_context_and_searchable(keys: KeyManager, tmp_path: Path) -> None:
    plain, sealed, back = tmp_path / "plain", tmp_path / "sealed.b64", tmp_path / "back"
    plain.write_bytes(ROW)
    args = ("--base64", "--searchable", "--context", "row-17")
    assert ok("data", "encrypt", SYM, "--input", str(plain), "--output", str(sealed), *args) == b""
    text = sealed.read_bytes()
    assert text.endswith(b"\n")
    assert sealed.stat().st_mode & 0o777 == 0o600
    value = base64.b64decode(text)
    assert value[:33] == keys.search_hash("client1", ROW)
    assert keys.decrypt(SYM, value, searchable=True, context=b"row-17") == ROW
    ok("data", "decrypt", SYM, "--input", str(sealed), "--output", str(back), *args)
    assert back.read_bytes() == ROW
    assert "DecryptionError" not in failed("data", "decrypt", SYM, "--base64", stdin=text)


def test_hash_prints_the_33_byte_hash(keys: KeyManager) -> None:
    assert ok("data", "hash", "client1", stdin=ROW) == keys.search_hash("client1", ROW)
    text = ok("data", "hash", "client1", "--base64", stdin=ROW)
    assert base64.b64decode(text) == keys.search_hash("client1", ROW)


def test_poison_records_with_acras_flags(keys: KeyManager) -> None:
    message = failed("data", "poison-record")
    assert "keys generate --poison-record" in message
    keys.generate(["poison-record", "poison-record-symmetric"])
    for flags, kind in (((), envelope.ACRASTRUCT), (("--type", "acrablock"), envelope.ACRABLOCK)):
        text = ok("data", "poison-record", *flags)
        assert text.endswith(b"\n")
        assert text.count(b"\n") == 1
        record = base64.b64decode(text)
        assert record[11] == kind
        assert keys.is_poison_record(record)
        assert ok("data", "is-poison", "--base64", stdin=text) == b"poison record\n"
        assert ok("data", "is-poison", stdin=record) == b"poison record\n"
    for spelling in ("--data_length", "--data-length"):
        record = base64.b64decode(ok("data", "poison-record", "--type", "acrablock", spelling, "7"))
        assert len(record) == 12 + 18 + 76 + 44 + 7
    assert "--data_length must be 1 or more" in failed(
        "data", "poison-record", "--data_length", "-1", code=2
    )
    assert "--data_length must be 1 or more" in failed(
        "data", "poison-record", "--data_length", "0", code=2
    )
    assert "'zone' is not one of" in failed("data", "poison-record", "--type", "zone", code=2)


def test_is_poison_exits_1_on_an_ordinary_value(keys: KeyManager) -> None:
    keys.generate(["poison-record"])
    result = run("data", "is-poison", stdin=keys.encrypt(STORAGE, ROW))
    assert result.exit_code == 1
    assert result.stdout == "not a poison record\n"
    assert result.stderr == ""
    json_result = run("--json", "data", "is-poison", stdin=b"plain text")
    assert json_result.exit_code == 1
    assert json.loads(json_result.stdout) == {"poison_record": False}


def test_bad_input_is_a_clear_error_without_the_data(keys: KeyManager) -> None:
    sealed = keys.encrypt(SYM, ROW)
    message = failed("data", "decrypt", SYM, stdin=sealed[:-1])
    assert message.startswith("error: ")
    assert SYM in message
    assert "secret row" not in message
    assert "is an AcraBlock" in failed("data", "decrypt", STORAGE, stdin=sealed)
    assert "does not encrypt data" in failed("data", "encrypt", "audit-log", stdin=ROW)
    assert "is empty" in failed("data", "encrypt", SYM, stdin=b"", code=2)
    assert "not base64" in failed("data", "decrypt", SYM, "--base64", stdin=b"@@@=", code=2)
    assert "cannot read" in failed("data", "decrypt", SYM, "--input", "/nonexistent/x", code=2)


def test_an_acrastruct_is_made_without_a_master_key(
    keys: KeyManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ACRA_MASTER_KEY")
    sealed = ok("data", "encrypt", STORAGE, stdin=ROW)
    assert keys.decrypt(STORAGE, sealed) == ROW
    assert "ACRA_MASTER_KEY" in failed("data", "encrypt", SYM, stdin=ROW)


def test_the_installed_command_pipes_binary_data(keys: KeyManager) -> None:
    env = {**os.environ}
    sealed = subprocess.run(
        [KEYLOADER, "data", "encrypt", SYM], input=ROW, capture_output=True, env=env, check=True
    ).stdout
    plain = subprocess.run(
        [KEYLOADER, "data", "decrypt", SYM], input=sealed, capture_output=True, env=env, check=True
    ).stdout
    assert plain == ROW
    broken = subprocess.run(
        [KEYLOADER, "data", "decrypt", SYM], input=sealed[:50], capture_output=True, env=env
    )
    assert broken.returncode == 1
    assert broken.stdout == b""
    assert b"Traceback" not in broken.stderr
