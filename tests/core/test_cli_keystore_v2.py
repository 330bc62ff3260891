"""The CLI on an Acra keystore v2 directory (a copy of Acra's own): the same commands
as on v1 read, list, verify, write and use its keys; what is v1-only says so."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from typer.testing import CliRunner

from keyloader.cli.app import app
from keyloader.masterkey import generate_master_key

from ..acrav2 import copy_store, manifest

V2 = manifest()["master_keys"]["v2"]
CLIENT = manifest()["v2"]["api"]["client1"]


def _run(root: Path, *args: str, expect: int = 0, stdin: bytes | None = None) -> bytes:
    result = CliRunner().invoke(
        app,
        ["--keys-dir", str(root), *args],
        env={"ACRA_MASTER_KEY": V2["ACRA_MASTER_KEY"]},
        input=stdin,
    )
    assert result.exit_code == expect, (args, result.exit_code, result.stderr)
    assert "Traceback" not in result.stderr
    return result.stdout_bytes


def test_the_commands_work_on_acras_v2_store(tmp_path: Path) -> None:
    root = copy_store("main", tmp_path / "keystore")
    listed = json.loads(_run(root, "keys", "list", "--rotated", "--check", "--json"))
    rows = listed["keys"] if isinstance(listed, dict) else listed
    assert any(row["key_id"] == "client/client1/symmetric" and row["index"] == 2 for row in rows)
    assert json.loads(_run(root, "keys", "verify", "--json"))["ok"] is True
    raw = _run(root, "keys", "read", "client/client1/symmetric", "--format", "raw")
    assert raw == base64.b64decode(CLIENT["symmetric_current"])
    sealed = _run(root, "data", "encrypt", "client/client1/symmetric", stdin=b"a v2 row")
    assert _run(root, "data", "decrypt", "client/client1/symmetric", stdin=sealed) == b"a v2 row"
    _run(root, "keys", "generate", "--client-id", "new-client", "--symmetric")
    _run(root, "keys", "rotate", "client/new-client/symmetric")
    assert (root / "client" / "new-client" / "storage-sym.keyring").exists()


def test_a_bundle_goes_back_into_a_store_of_its_own_version_only(tmp_path: Path) -> None:
    root = copy_store("main", tmp_path / "keystore")
    v2_files = [tmp_path / "v2.bundle", tmp_path / "v2.secret"]
    out = ["--output", str(v2_files[0]), "--secret-output", str(v2_files[1])]
    _run(root, "keys", "export", "--all", *out)
    v1_root = tmp_path / "v1" / ".acrakeys"
    with generate_master_key() as key, key.to_text() as text:
        v1_env = {"ACRA_MASTER_KEY": text.bytes().decode()}
    v1_files = [tmp_path / "v1.bundle", tmp_path / "v1.secret"]
    for args in (
        ["keys", "generate", "--client-id", "client1", "--symmetric"],
        ["keys", "export", "--all", "--output", str(v1_files[0]), "--secret-output"],
    ):
        extra = [str(v1_files[1])] if args[1] == "export" else []
        result = CliRunner().invoke(app, ["--keys-dir", str(v1_root), *args, *extra], env=v1_env)
        assert result.exit_code == 0, result.stderr
    before = sorted(p.name for p in v1_root.rglob("*"))
    into_v1 = ["--keys-dir", str(v1_root), "keys", "import", "--force", "--input"]
    result = CliRunner().invoke(app, [*into_v1, str(v2_files[0]), "--secret", str(v2_files[1])])
    assert result.exit_code == 1
    assert "holds Acra keystore v2 key rings" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in v1_root.rglob("*")) == before
    fresh = tmp_path / "fresh-v2"
    v2_args = ["-s", "keystore_version=v2", "keys", "import", "--input", str(v1_files[0])]
    result = CliRunner().invoke(
        app,
        ["--keys-dir", str(fresh), *v2_args, "--secret", str(v1_files[1])],
        env={"ACRA_MASTER_KEY": V2["ACRA_MASTER_KEY"]},
    )
    assert result.exit_code == 1
    assert "holds keystore v1 keys" in result.stderr
    assert "keys migrate" in result.stderr
    assert not list(fresh.rglob("*.keyring"))


def test_a_v1_master_key_on_a_v2_store_is_a_clear_error(tmp_path: Path) -> None:
    root = copy_store("main", tmp_path / "keystore")
    result = CliRunner().invoke(
        app,
        ["--keys-dir", str(root), "keys", "read", "audit-log"],
        env={"ACRA_MASTER_KEY": manifest()["master_keys"]["v1"]["ACRA_MASTER_KEY"]},
    )
    assert result.exit_code == 1
    assert "needs a v2 master key pair" in result.stderr


def test_a_new_directory_is_v2_when_the_store_option_asks(tmp_path: Path) -> None:
    root = tmp_path / "fresh" / ".acrakeys"
    env = {"ACRA_MASTER_KEY": V2["ACRA_MASTER_KEY"]}
    result = CliRunner().invoke(
        app,
        [
            "--keys-dir",
            str(root),
            "-s",
            "keystore_version=v2",
            "keys",
            "generate",
            "--client-id",
            "fresh-client",
            "--symmetric",
            "--storage",
        ],
        env=env,
    )
    assert result.exit_code == 0, result.stderr
    assert (root / "version").read_bytes() == b"Acra Keystore v2"
    assert (root / "client" / "fresh-client" / "storage.keyring").exists()
    v1_dir = tmp_path / "v1"  # an existing v1 directory keeps its version
    v1_env = {"ACRA_MASTER_KEY": manifest()["master_keys"]["v1"]["ACRA_MASTER_KEY"]}
    args = ["--keys-dir", str(v1_dir), "keys", "generate", "--client-id", "old-client"]
    assert CliRunner().invoke(app, args, env=v1_env).exit_code == 0
    again = ["--keys-dir", str(v1_dir), "-s", "keystore_version=v2", "keys", "list"]
    result = CliRunner().invoke(app, again, env=v1_env)
    assert result.exit_code == 0, result.stderr
    assert not (v1_dir / "version").exists()
    assert "old-client" in result.stdout


def test_acras_keystore_flag_names_the_version(tmp_path: Path) -> None:
    """acra-keymaker --keystore=v2: read as the version of a new directory (no key store
    is named v1 or v2); a store name still selects the store."""
    root = tmp_path / "new" / ".acrakeys"
    args = ["--keys_dir", str(root), "--keystore", "v2", "keys", "generate"]
    result = CliRunner().invoke(
        app,
        [*args, "--client_id", "acra-flags", "--client_storage_symmetric_key"],
        env={"ACRA_MASTER_KEY": V2["ACRA_MASTER_KEY"]},
    )
    assert result.exit_code == 0, result.stderr
    assert (root / "version").read_bytes() == b"Acra Keystore v2"
    assert (root / "client" / "acra-flags" / "storage-sym.keyring").exists()


def test_the_global_keystore_version_flag(tmp_path: Path) -> None:
    """--keystore-version v1|v2 before or after the command: a new directory's version, and
    the version of the key `master-key generate` makes; an existing directory keeps its own."""
    result = CliRunner().invoke(app, ["--keystore-version", "v2", "master-key", "generate"])
    assert result.exit_code == 0, result.stderr
    pair = result.stdout.strip()
    assert json.loads(base64.b64decode(pair)).keys() == {"encryption", "signature"}
    root = tmp_path / "new" / ".acrakeys"
    args = ["--keys-dir", str(root), "keys", "generate", "--client-id", "flag-client"]
    result = CliRunner().invoke(
        app, [*args, "--keystore-version", "v2"], env={"ACRA_MASTER_KEY": pair}
    )
    assert result.exit_code == 0, result.stderr
    assert (root / "version").read_bytes() == b"Acra Keystore v2"
    assert (root / "client" / "flag-client" / "storage-sym.keyring").exists()
    v1_dir = tmp_path / "v1"
    v1_env = {"ACRA_MASTER_KEY": manifest()["master_keys"]["v1"]["ACRA_MASTER_KEY"]}
    made = ["--keys-dir", str(v1_dir), "keys", "generate", "--client-id", "old-client"]
    assert CliRunner().invoke(app, made, env=v1_env).exit_code == 0
    listed = ["--keystore-version", "v2", "--keys-dir", str(v1_dir), "keys", "list"]
    result = CliRunner().invoke(app, listed, env=v1_env)
    assert result.exit_code == 0, result.stderr
    assert "old-client" in result.stdout
    assert not (v1_dir / "version").exists()
    wrong = CliRunner().invoke(app, ["--keystore-version", "v3", "master-key", "generate"])
    assert wrong.exit_code == 2
    assert "v1 or v2" in wrong.stderr
    bad_store = CliRunner().invoke(
        app, ["--keystore-version", "v3", "--keys-dir", str(tmp_path / "x"), "keys", "list"]
    )
    assert bad_store.exit_code != 0
    assert "Traceback" not in bad_store.stderr
