"""`keyloader keys rewrap|export|import` through the CLI: results, refusals, no leaks."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from keyloader.cli.app import app
from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader.secret import SecretBytes
from keyloader.stores.filesystem import FilesystemKeyStore

from ..keytext import text_of

SYM = "client/client1/symmetric"


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def ok(*args: str) -> Result:
    result = run(*args)
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def fails(*args: str, code: int = 1) -> str:
    result = run(*args)
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    if code == 1:
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    return result.stderr


def manager(key: MasterKey, keys_dir: Path = Path(".acrakeys")) -> KeyManager:
    store = FilesystemKeyStore({"keys_dir": keys_dir, "lock_timeout": 5.0})
    return KeyManager(store, MasterKey(SecretBytes(key.encryption.buffer)))


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[MasterKey, MasterKey]]:
    """An old key in ACRA_MASTER_KEY, a new one in DST_ACRA_MASTER_KEY, and a few keys."""
    with generate_master_key() as old, generate_master_key() as new:
        monkeypatch.setenv("ACRA_MASTER_KEY", text_of(old))
        monkeypatch.setenv("DST_ACRA_MASTER_KEY", text_of(new))
        ok("keys", "generate", "--client-id", "client1", "--symmetric", "--searchable")
        ok("keys", "generate", "--client-id", "client2", "--symmetric", "--audit-log")
        ok("keys", "rotate", SYM)
        yield old, new


def secrets_of(key: MasterKey, *others: MasterKey) -> list[str]:
    forms: list[str] = []
    for k in (key, *others):
        raw = k.encryption.bytes()
        forms += [text_of(k), raw.hex(), base64.b64encode(raw).decode()]
    with manager(key) as km:
        for info in km.list(rotated=True):
            if info.key_id and info.index:
                plain = km.read(info.key_id, info.index).bytes()
                forms += [plain.hex(), base64.b64encode(plain).decode()]
    return forms


def test_rewrap_env_to_env_then_everything_opens_under_the_new_key(
    keys: tuple[MasterKey, MasterKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = keys
    before = {}
    with manager(old) as km:
        for info in km.list(rotated=True):
            assert info.key_id
            assert info.index
            before[(info.key_id, info.index)] = km.read(info.key_id, info.index).bytes()
    forms = secrets_of(old, new)

    dry = json.loads(ok("keys", "rewrap", "--to-provider", "env", "--dry-run", "--json").stdout)
    assert dry["dry_run"] is True
    assert dry["rewrapped"] == 5  # 4 current + 1 rotated
    with manager(old) as km:
        assert all(r.ok for r in km.verify())  # nothing written

    result = ok("keys", "rewrap", "--to-provider", "env", "--json")
    document = json.loads(result.stdout)
    assert document["new_fingerprint"] == new.fingerprint
    assert document["old_fingerprint"] == old.fingerprint
    assert (document["rewrapped"], document["skipped"], document["verified"]) == (5, 0, 5)
    assert document["failed"] == []
    for form in forms:
        assert form not in result.stdout + result.stderr

    with manager(new) as km:
        after = {(k, i): km.read(k, i).bytes() for (k, i) in before}
    assert after == before  # same keys, same names, same history numbering

    monkeypatch.setenv("ACRA_MASTER_KEY", text_of(new))
    assert json.loads(ok("keys", "verify", "--json").stdout)["ok"] is True
    # the same key again is refused, nothing changes
    assert "is the current master key" in fails("keys", "rewrap", "--to-provider", "env")


def test_rewrap_resumes_where_it_stopped(keys: tuple[MasterKey, MasterKey]) -> None:
    old, new = keys
    with manager(old) as km:  # half done: one key already under the new master key
        plain = km.read("client/client1/searchable")
        blob_path = Path(".acrakeys/client1_hmac")
    from keyloader.themis import scell

    blob_path.write_bytes(scell.encrypt(new.encryption.buffer, plain.buffer, b"client1"))
    document = json.loads(ok("keys", "rewrap", "--to-provider", "env", "--json").stdout)
    assert (document["rewrapped"], document["skipped"]) == (4, 1)


def test_rewrap_refusals_change_nothing(keys: tuple[MasterKey, MasterKey]) -> None:
    _old, _ = keys
    snapshot = {p: p.read_bytes() for p in Path(".acrakeys").rglob("*") if p.is_file()}
    legacy = Path(".acrakeys/client1_server")
    legacy.write_bytes(b"an old acra key")
    legacy.chmod(0o600)
    assert "client1_server" in fails("keys", "rewrap", "--to-provider", "env")
    assert "NOT_SET_ANYWHERE" in fails(
        "keys", "rewrap", "--to-provider", "env", "--to-option", "variable=NOT_SET_ANYWHERE"
    )
    fails("keys", "rewrap", "--to-provider", "nope")
    fails("keys", "rewrap", "--to-provider", "env", "--to-option", "novalue", code=2)
    for path, data in snapshot.items():
        assert path.read_bytes() == data
    ok("keys", "rewrap", "--to-provider", "env", "--skip-unknown")
    assert legacy.read_bytes() == b"an old acra key"


def test_export_import_round_trip_across_master_keys(
    keys: tuple[MasterKey, MasterKey], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    old, new = keys
    bundle, secret = tmp_path / "keys.bundle", tmp_path / "keys.secret"
    exported = ok(
        "keys",
        "export",
        "--all",
        "--output",
        str(bundle),
        "--secret-output",
        str(secret),
        "--json",
    )
    document = json.loads(exported.stdout)
    assert sorted(document["keys"]) == sorted(
        [SYM, "client/client1/searchable", "client/client2/symmetric", "audit-log"]
    )
    assert document["entries"] == 5  # 4 current keys + 1 rotated
    assert bundle.stat().st_mode & 0o777 == 0o600
    assert secret.stat().st_mode & 0o777 == 0o600
    assert len(secret.read_bytes()) == 32
    assert "exists" in fails(
        "keys", "export", "--all", "--output", str(bundle), "--secret-output", str(secret)
    )

    monkeypatch.setenv("ACRA_MASTER_KEY", text_of(new))
    other = tmp_path / "other"
    imported = ok(
        "--keys-dir",
        str(other),
        "keys",
        "import",
        "--input",
        str(bundle),
        "--secret",
        str(secret),
        "--json",
    )
    assert len(json.loads(imported.stdout)["imported"]) == 5
    with manager(old) as src, manager(new, other) as dst:
        for info in src.list(rotated=True):
            assert info.key_id
            assert info.index
            assert src.read(info.key_id, info.index) == dst.read(info.key_id, info.index)
    forms = secrets_of(old, new)
    for form in forms:
        assert form not in exported.stdout + imported.stdout


def test_import_refuses_a_wrong_secret_or_tampered_bundle(
    keys: tuple[MasterKey, MasterKey], tmp_path: Path
) -> None:
    bundle, secret = tmp_path / "b", tmp_path / "s"
    ok("keys", "export", SYM, "--output", str(bundle), "--secret-output", str(secret))
    wrong = tmp_path / "wrong"
    wrong.write_bytes(bytes(32))
    wrong.chmod(0o600)
    target = tmp_path / "target"
    fails(
        "--keys-dir", str(target), "keys", "import", "--input", str(bundle), "--secret", str(wrong)
    )
    data = bytearray(bundle.read_bytes())
    data[-1] ^= 1
    bundle.write_bytes(bytes(data))
    fails(
        "--keys-dir", str(target), "keys", "import", "--input", str(bundle), "--secret", str(secret)
    )
    assert not target.exists() or not list(target.rglob("*_sym"))


def test_export_usage_errors(keys: tuple[MasterKey, MasterKey], tmp_path: Path) -> None:
    out = ["--output", str(tmp_path / "b"), "--secret-output", str(tmp_path / "s")]
    fails("keys", "export", *out, code=2)
    fails("keys", "export", SYM, "--all", *out, code=2)
    fails("keys", "export", SYM, code=2)
    fails("keys", "import", "--input", str(tmp_path / "b"), code=2)
    assert not (tmp_path / "b").exists()
