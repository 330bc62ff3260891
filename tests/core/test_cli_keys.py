"""``keyloader keys ...`` through the CLI: every command in TSV and JSON, global options."""

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
from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader.secret import SecretBytes
from keyloader.stores.filesystem import FilesystemKeyStore
from keyloader.themis import scell

from ..acrabackup import acra_export_problems

SYM = "client/client1/symmetric"
KEYLOADER = Path(sys.executable).with_name("keyloader")
LIST_COLUMNS = ["key_id", "purpose", "client_id", "index", "state", "created", "path"]


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def ok(*args: str) -> Result:
    result = run(*args)
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    assert result.stderr == ""
    return result


def tsv(result: Result) -> list[dict[str, str]]:
    header, *lines = result.stdout.splitlines()
    columns = header.split("\t")
    return [dict(zip(columns, line.split("\t"), strict=True)) for line in lines]


@pytest.fixture
def master(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[MasterKey]:
    """A fresh v1 master key in ACRA_MASTER_KEY (the env provider's default).

    After the test, the keys directory must pass Acra's backup rules (tests/acrabackup.py)
    unless the test corrupts it on purpose (``@pytest.mark.tampers``).
    """
    with generate_master_key() as key, key.to_text() as text:
        monkeypatch.setenv("ACRA_MASTER_KEY", text.bytes().decode())
        yield key
        keys = Path(".acrakeys")
        if keys.is_dir() and "tampers" not in request.keywords:
            assert acra_export_problems(keys, key.encryption.bytes()).problems == []


def library(master: MasterKey, keys_dir: Path = Path(".acrakeys")) -> KeyManager:
    store = FilesystemKeyStore({"keys_dir": keys_dir, "lock_timeout": 5.0})
    return KeyManager(store, MasterKey(SecretBytes(master.encryption.buffer)))


# -- generate ----------------------------------------------------------------------------


def test_generate_prints_one_key_id_per_line(master: MasterKey) -> None:
    result = ok("keys", "generate", "--client-id", "client1", "--symmetric", "--searchable")
    assert result.stdout.splitlines() == [SYM, "client/client1/searchable"]
    with library(master) as keys:
        assert len(keys.read(SYM)) == 32
        assert len(keys.read("client/client1/searchable")) == 32


def test_generate_defaults_to_the_symmetric_key_and_global_kinds(master: MasterKey) -> None:
    assert ok("keys", "generate", "--client-id", "client1").stdout == SYM + "\n"
    result = ok("keys", "generate", "--audit-log", "--poison-record-symmetric", "--json")
    assert json.loads(result.stdout) == {"generated": ["audit-log", "poison-record-symmetric"]}
    names = sorted(
        p.name for p in Path(".acrakeys").rglob("*") if p.is_file() and "keyloader" not in p.name
    )
    assert names == ["client1_storage_sym", "poison_key_sym", "secure_log_key"]


# -- list --------------------------------------------------------------------------------


def test_list_tsv_and_json(master: MasterKey) -> None:
    ok("keys", "generate", "--client-id", "client1", "--symmetric", "--searchable")
    rows = tsv(ok("keys", "list"))
    assert [r["key_id"] for r in rows] == ["client/client1/searchable", SYM]
    assert rows[1] == {
        "key_id": SYM,
        "purpose": "symmetric",
        "client_id": "client1",
        "index": "1",
        "state": "current",
        "created": rows[1]["created"],
        "path": rows[1]["path"],
    }
    assert rows[1]["path"].endswith(".acrakeys/client1_storage_sym")
    assert rows[1]["created"].endswith("Z")
    assert "T" in rows[1]["created"]
    document = json.loads(ok("keys", "list", "--json").stdout)
    assert list(document) == ["keys"]
    assert [list(k) for k in document["keys"]] == [LIST_COLUMNS, LIST_COLUMNS]
    assert document["keys"][1]["index"] == 1
    assert document["keys"][1]["client_id"] == "client1"


def test_list_rotated_and_check(master: MasterKey) -> None:
    ok("keys", "generate", "--client-id", "client1")
    ok("keys", "rotate", SYM)
    ok("keys", "rotate", SYM)
    assert len(tsv(ok("keys", "list"))) == 1
    rows = tsv(ok("keys", "list", "--rotated", "--check"))
    assert [(r["index"], r["state"], r["decrypts"]) for r in rows] == [
        ("1", "current", "true"),
        ("2", "rotated", "true"),
        ("3", "rotated", "true"),
    ]
    document = json.loads(ok("keys", "list", "--rotated", "--check", "--json").stdout)
    assert [k["decrypts"] for k in document["keys"]] == [True, True, True]
    assert list(document["keys"][0]) == [*LIST_COLUMNS, "decrypts"]


def test_list_reads_an_acra_directory_without_a_master_key(tmp_path: Path) -> None:
    """An .acrakeys directory written the Acra way, and no master key anywhere."""
    keys = tmp_path / "acra" / ".acrakeys"
    keys.mkdir(parents=True, mode=0o700)
    (keys / ".poison_key").mkdir(mode=0o700)
    master = os.urandom(32)

    def write(rel: str, data: bytes, mode: int = 0o600) -> None:
        path = keys / rel
        path.parent.mkdir(mode=0o700, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)

    write("client1_storage_sym", scell.encrypt(master, os.urandom(32), b"client1"))
    write(
        "client1_storage_sym.old/2024-01-02T03:04:05.5",
        scell.encrypt(master, b"k" * 32, b"client1"),
    )
    write("client1_storage", scell.encrypt(master, os.urandom(32), b"client1"))
    write("client1_storage.pub", b"public", 0o644)
    write(
        ".poison_key/poison_key_sym",
        scell.encrypt(master, b"p" * 32, b".poison_key/poison_key_sym"),
    )
    write("auth_key", b"an old Acra key")
    assert "ACRA_MASTER_KEY" not in os.environ

    rows = tsv(ok("keys", "list", "--rotated", "--keys-dir", str(keys)))
    found = {(r["key_id"], r["purpose"], r["index"], r["state"]) for r in rows}
    assert found == {
        ("", "unknown", "", "unknown"),
        ("client/client1/storage", "storage", "1", "current"),
        ("client/client1/storage", "storage", "", "public"),
        (SYM, "symmetric", "1", "current"),
        (SYM, "symmetric", "2", "rotated"),
        ("poison-record-symmetric", "poison-record-symmetric", "1", "current"),
    }
    rotated = next(r for r in rows if r["state"] == "rotated")
    assert rotated["created"] == "2024-01-02T03:04:05Z"
    assert rotated["path"] == f"{keys}/client1_storage_sym.old/2024-01-02T03:04:05.5"


def test_list_of_a_missing_directory_is_empty_and_creates_nothing() -> None:
    assert ok("keys", "list").stdout == "\t".join(LIST_COLUMNS) + "\n"
    assert json.loads(ok("keys", "list", "--json").stdout) == {"keys": []}
    assert not Path(".acrakeys").exists()


# -- read --------------------------------------------------------------------------------


def test_read_base64_raw_and_json(master: MasterKey) -> None:
    ok("keys", "generate", "--client-id", "client1")
    with library(master) as keys:
        expected = keys.read(SYM).bytes()
    assert ok("keys", "read", SYM).stdout == base64.b64encode(expected).decode() + "\n"
    assert ok("keys", "read", SYM, "--format", "raw").stdout_bytes == expected
    assert ok("keys", "read", SYM, "--private", "--index", "1").stdout_bytes.rstrip(b"\n") == (
        base64.b64encode(expected)
    )
    document = json.loads(ok("keys", "read", SYM, "--json").stdout)
    assert document == {
        "key_id": SYM,
        "index": 1,
        "part": "private",
        "key": base64.b64encode(expected).decode(),
    }


def test_read_rotated_index(master: MasterKey) -> None:
    ok("keys", "generate", "--client-id", "client1")
    with library(master) as keys:
        first = keys.read(SYM).bytes()
    ok("keys", "rotate", SYM)
    assert ok("keys", "read", SYM, "--index", "2", "--format", "raw").stdout_bytes == first
    assert ok("keys", "read", SYM, "--format", "raw").stdout_bytes != first


def test_read_public_needs_no_master_key(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    (keys / "client1_storage.pub").write_bytes(b"\x00public\xff")
    (keys / "client1_storage.pub").chmod(0o644)
    result = ok("--keys-dir", str(keys), "keys", "read", "client/client1/storage", "--public")
    assert result.stdout == base64.b64encode(b"\x00public\xff").decode() + "\n"
    raw = ok(
        "keys",
        "read",
        "client/client1/storage",
        "--public",
        "--format",
        "raw",
        "--keys-dir",
        str(keys),
    )
    assert raw.stdout_bytes == b"\x00public\xff"
    document = json.loads(
        ok(
            "keys", "read", "client/client1/storage", "--public", "--json", "--keys-dir", str(keys)
        ).stdout
    )
    assert document["part"] == "public"
    assert document["index"] is None


# -- rotate, destroy ----------------------------------------------------------------------


def test_rotate_and_destroy(master: MasterKey) -> None:
    ok("keys", "generate", "--client-id", "client1")
    assert ok("keys", "rotate", SYM).stdout == SYM + "\n"
    assert json.loads(ok("keys", "rotate", SYM, "--json").stdout) == {"rotated": SYM}
    assert [r["index"] for r in tsv(ok("keys", "list", "--rotated"))] == ["1", "2", "3"]
    assert json.loads(ok("keys", "destroy", SYM, "--index", "2", "--json").stdout) == {
        "destroyed": SYM,
        "index": 2,
    }
    assert [r["index"] for r in tsv(ok("keys", "list", "--rotated"))] == ["1", "2"]
    assert ok("keys", "destroy", SYM).stdout == SYM + "\n"
    rows = tsv(ok("keys", "list", "--rotated"))
    assert [(r["index"], r["state"]) for r in rows] == [("2", "rotated")]


# -- verify ------------------------------------------------------------------------------


@pytest.mark.tampers
def test_verify_ok_and_failure(master: MasterKey) -> None:
    ok("keys", "generate", "--client-id", "client1", "--symmetric", "--searchable")
    rows = tsv(ok("keys", "verify"))
    assert [(r["key_id"], r["ok"], r["error"]) for r in rows] == [
        ("client/client1/searchable", "true", ""),
        (SYM, "true", ""),
    ]
    assert json.loads(ok("keys", "verify", "--json").stdout)["ok"] is True

    path = Path(".acrakeys/client1_hmac")
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 1
    path.write_bytes(bytes(blob))
    result = run("keys", "verify")
    assert result.exit_code == 1
    assert result.stderr == "error: 1 of 2 keys failed verification\n"
    rows = tsv(result)
    assert [r["ok"] for r in rows] == ["false", "true"]
    assert "cannot decrypt" in rows[0]["error"]
    document = json.loads(run("keys", "verify", "--json").stdout)
    assert document["ok"] is False
    assert document["results"][0]["error_type"] == "IntegrityError"
    assert list(document["results"][0]) == ["key_id", "index", "path", "ok", "error", "error_type"]


# -- global options ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--keys-dir", "elsewhere", "--json", "keys", "list"],
        ["keys", "list", "--keys-dir", "elsewhere", "--json"],
        ["--json", "keys", "list", "--keys-dir", "elsewhere"],
        ["--keys-dir", "wrong", "keys", "list", "--keys-dir", "elsewhere", "--json"],
        ["-s", "keys_dir=wrong", "keys", "list", "-s", "keys_dir=elsewhere", "--json"],
    ],
)
def test_global_options_before_and_after_the_command(master: MasterKey, args: list[str]) -> None:
    ok("--keys-dir", "elsewhere", "keys", "generate", "--client-id", "client1")
    document = json.loads(ok(*args).stdout)
    assert [k["key_id"] for k in document["keys"]] == [SYM]


def test_leaf_provider_option_wins(master: MasterKey, monkeypatch: pytest.MonkeyPatch) -> None:
    """-o variable=... after the command beats the one before it (the key is in OTHER_KEY only)."""
    monkeypatch.setenv("OTHER_KEY", os.environ.pop("ACRA_MASTER_KEY"))
    ok(
        "-o",
        "variable=NOPE",
        "keys",
        "generate",
        "--client-id",
        "client1",
        "-o",
        "variable=OTHER_KEY",
    )
    failed = run(
        "-o", "variable=OTHER_KEY", "keys", "generate", "--audit-log", "-o", "variable=NOPE"
    )
    assert failed.exit_code == 1
    assert "NOPE" in failed.stderr


def test_provider_given_after_the_command_wins(master: MasterKey) -> None:
    result = run(
        "--provider",
        "env",
        "keys",
        "generate",
        "--client-id",
        "client1",
        "--provider",
        "no-such-provider",
    )
    assert result.exit_code == 1
    assert "no-such-provider" in result.stderr
    ok(
        "--provider",
        "no-such-provider",
        "keys",
        "generate",
        "--client-id",
        "client1",
        "--provider",
        "env_master_key",
    )


def test_config_file_option(master: MasterKey, tmp_path: Path) -> None:
    config = tmp_path / "keyloader.toml"
    config.write_text('keys_dir = "from-config"\n')
    ok("keys", "generate", "--client-id", "client1", "--config", str(config))
    assert (tmp_path / "from-config" / "client1_storage_sym").is_file()
    rows = tsv(ok("--config", str(config), "keys", "list"))
    assert [r["key_id"] for r in rows] == [SYM]


# -- a real terminal and a real process ------------------------------------------------------


def test_console_script_end_to_end(master: MasterKey) -> None:
    env = {**os.environ}
    generated = subprocess.run(
        [KEYLOADER, "keys", "generate", "--client-id", "client1", "--searchable"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert (generated.returncode, generated.stdout, generated.stderr) == (
        0,
        "client/client1/searchable\n",
        "",
    )
    listed = subprocess.run(
        [KEYLOADER, "--json", "keys", "list", "--check"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert [k["decrypts"] for k in json.loads(listed.stdout)["keys"]] == [True]


def test_terminal_output_is_a_rich_table(master: MasterKey) -> None:
    """On a tty the listing is a table (not TSV), and long values are not cut."""
    client = "a-very-long-client-id-" + "x" * 60
    ok("keys", "generate", "--client-id", client)
    leader, follower = os.openpty()
    try:
        env = {**os.environ, "COLUMNS": "80", "TERM": "xterm"}
        process = subprocess.run(
            [KEYLOADER, "keys", "list"],
            stdout=follower,
            stderr=subprocess.PIPE,
            env=env,
            check=False,
            timeout=60,
        )
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
    assert process.returncode == 0, process.stderr
    text = b"".join(chunks).decode()
    assert "\t" not in text
    assert "key id" in text
    assert "…" not in text
    assert text.count("x") >= 3 * 60  # key id, client id and path, each complete


def test_list_and_destroy_never_load_the_master_key(
    master: MasterKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok("keys", "generate", "--client-id", "client1", "--searchable")
    monkeypatch.setenv("ACRA_MASTER_KEY", "not a key at all")
    assert [r["key_id"] for r in tsv(ok("keys", "list", "--rotated"))] == [
        "client/client1/searchable"
    ]
    assert run("keys", "list", "--check").exit_code == 1  # --check does load it
    ok("keys", "destroy", "client/client1/searchable")
    assert tsv(ok("keys", "list")) == []


def test_previous_master_key_fallback(master: MasterKey, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys sealed under the old key still read with --previous-provider during a rotation."""
    ok("keys", "generate", "--client-id", "client1")
    with library(master) as keys:
        expected = keys.read(SYM).bytes()
    monkeypatch.setenv("OLD_MASTER_KEY", os.environ["ACRA_MASTER_KEY"])
    with generate_master_key() as new, new.to_text() as text:
        monkeypatch.setenv("ACRA_MASTER_KEY", text.bytes().decode())
    assert run("keys", "read", SYM).exit_code == 1
    result = ok(
        "--previous-provider",
        "env",
        "keys",
        "read",
        SYM,
        "--format",
        "raw",
        "--previous-option",
        "variable=OLD_MASTER_KEY",
    )
    assert result.stdout_bytes == expected


@pytest.mark.tampers  # a legacy Acra file Acra's own backup cannot read either
def test_verify_reports_unknown_files_without_failing(master: MasterKey) -> None:
    ok("keys", "generate", "--client-id", "client1")
    legacy = Path(".acrakeys/client1_server")
    legacy.write_bytes(b"pre-0.85 acra transport key")
    legacy.chmod(0o600)
    rows = tsv(ok("keys", "verify"))
    by_path = {Path(r["path"]).name: r for r in rows}
    assert by_path["client1_server"]["ok"] == ""
    assert "unknown file" in by_path["client1_server"]["error"]
    assert by_path["client1_storage_sym"]["ok"] == "true"
    document = json.loads(ok("keys", "verify", "--json").stdout)
    assert document["ok"] is True
    assert [r["ok"] for r in document["results"]] == [None, True]
    assert legacy.read_bytes() == b"pre-0.85 acra transport key"
