"""``keys migrate``: Acra's own v1 store into keystore v2 (history carried as older
seqnums) and back, never touching the source; reruns, dry runs, refusals."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keyloader.cli.app import app
from keyloader.errors import ConfigError, IntegrityError
from keyloader.keyrings.directory import RingDirectory, is_v2
from keyloader.keyrings.engine import RingKeyManager
from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, generate_master_key, parse_master_key
from keyloader.migrate import migrate_keys
from keyloader.secret import SecretBytes
from keyloader.stores.filesystem import FilesystemKeyStore

from ..acrav2 import copy_v1_store, manifest

V1 = manifest()["v1"]["api"]
V1_KEY = manifest()["master_keys"]["v1"]["ACRA_MASTER_KEY"]


def _v1(root: Path, text: str = V1_KEY) -> KeyManager:
    return KeyManager(FilesystemKeyStore({"keys_dir": root}), parse_master_key(text), cache_size=0)


def _digest(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_acras_v1_store_migrates_to_v2_with_its_history(tmp_path: Path) -> None:
    source_dir = copy_v1_store(tmp_path / "v1")
    before = _digest(source_dir)
    destination = tmp_path / "v2" / ".acrakeys"
    with generate_master_key("v2") as pair, _v1(source_dir) as source:
        report = migrate_keys(source, destination, "v2", pair)
        assert report.keys == 9  # 2 clients x 3 kinds, audit log, poison keypair and symmetric
        assert report.versions == 11  # client1's symmetric and storage keys were rotated once
        assert is_v2(destination)
        assert _digest(source_dir) == before  # the source is never modified
        assert pair.signature is not None
        copy = MasterKey(SecretBytes(pair.encryption.buffer), SecretBytes(pair.signature.buffer))
        with RingKeyManager(RingDirectory(destination), copy) as moved:
            for index, text in enumerate(V1["client1"]["symmetric_all_newest_first"], start=1):
                with moved.read("client/client1/symmetric", index) as key:  # newest first
                    assert key.bytes() == base64.b64decode(text)
            storage = V1["client1"]["storage_private_all_newest_first"]
            with moved.read("client/client1/storage", 2) as key:
                assert key.bytes() == base64.b64decode(storage[1])
            public = base64.b64decode(V1["client1"]["storage_public_current"])
            assert moved.read_public("client/client1/storage") == public
            assert all(result.ok for result in moved.verify())
            again = migrate_keys(source, destination, "v2", pair)  # a rerun: nothing to do
            assert again.up_to_date


def test_v2_migrates_back_to_v1(tmp_path: Path) -> None:
    source_dir = copy_v1_store(tmp_path / "v1")
    middle, back = tmp_path / "v2", tmp_path / "back"
    with generate_master_key("v2") as pair2, generate_master_key() as v1_key:
        with _v1(source_dir) as source:
            migrate_keys(source, middle / "again", "v2", pair2)
        assert pair2.signature is not None
        copy = MasterKey(SecretBytes(pair2.encryption.buffer), SecretBytes(pair2.signature.buffer))
        with RingKeyManager(RingDirectory(middle / "again"), copy) as rings:
            migrate_keys(rings, back, "v1", v1_key)
        with KeyManager(
            FilesystemKeyStore({"keys_dir": back}), MasterKey(SecretBytes(v1_key.encryption.buffer))
        ) as restored:
            for index, text in enumerate(V1["client1"]["symmetric_all_newest_first"], start=1):
                with restored.read("client/client1/symmetric", index) as key:
                    assert key.bytes() == base64.b64decode(text)
            listing = {blob.name: blob for blob in restored.store.list()}
            assert len(listing["client1_storage"].history) == 1
            assert len(listing["client1_storage.pub"].history) == 1
            assert all(result.ok for result in restored.verify())


def test_dry_runs_refusals_and_force(tmp_path: Path) -> None:
    source_dir = copy_v1_store(tmp_path / "v1")
    destination = tmp_path / "v2"
    with generate_master_key("v2") as pair, generate_master_key() as v1_key:
        with _v1(source_dir) as source:
            dry = migrate_keys(source, destination, "v2", pair, dry_run=True)
            assert dry.versions == 11
            assert not destination.exists()
            with pytest.raises(ConfigError, match="needs a v2 master key"):
                migrate_keys(source, destination, "v2", v1_key)
            destination.mkdir()
            (destination / "something").write_text("not keys")
            with pytest.raises(ConfigError, match="--force"):
                migrate_keys(source, destination, "v2", pair)
        with _v1(source_dir, base64.b64encode(bytes(32)).decode()) as wrong:
            with pytest.raises(IntegrityError):
                migrate_keys(wrong, tmp_path / "never", "v2", pair, dry_run=True)
    assert not (tmp_path / "never").exists()


def test_the_cli_takes_acras_flags(tmp_path: Path) -> None:
    source_dir = copy_v1_store(tmp_path / "v1")
    destination = tmp_path / "v2"
    with generate_master_key("v2") as pair, pair.to_text() as text:
        target = text.bytes().decode()
    args = [
        "keys",
        "migrate",
        "--src_keystore",
        "v1",
        "--dst_keystore",
        "v2",
        "--src_keys_dir",
        str(source_dir),
        "--dst_keys_dir",
        str(destination),
        "--json",
    ]
    env = {"ACRA_MASTER_KEY": V1_KEY, "DST_ACRA_MASTER_KEY": target}
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.stderr
    assert '"versions": 11' in result.stdout
    assert is_v2(destination)
    wrong = [*args[:3], "v2", *args[4:]]  # --src_keystore v2 on a v1 source
    result = CliRunner().invoke(app, wrong, env=env)
    assert result.exit_code == 1
    assert "not v2" in result.stderr


def test_the_source_key_comes_from_src_acra_master_key_as_in_acra(tmp_path: Path) -> None:
    """Acra's ``SRC_ACRA_MASTER_KEY`` is read when set (ACRA_MASTER_KEY may hold another key);
    an explicit ``-o variable=`` or ``file=`` still wins."""
    source_dir = copy_v1_store(tmp_path / "v1")
    with generate_master_key("v2") as pair, pair.to_text() as text:
        target = text.bytes().decode()
    with generate_master_key() as other, other.to_text() as text:
        unrelated = text.bytes().decode()

    def migrate(into: str, *flags: str, **env: str) -> tuple[int, str]:
        args = ["--keys-dir", str(source_dir), *flags, "keys", "migrate", "--dst_keystore", "v2"]
        result = CliRunner().invoke(
            app,
            [*args, "--dst_keys_dir", str(tmp_path / into), "--dry-run"],
            env={"ACRA_MASTER_KEY": None, "DST_ACRA_MASTER_KEY": target, **env},
        )
        return result.exit_code, result.stderr

    assert migrate("a", SRC_ACRA_MASTER_KEY=V1_KEY) == (0, "")
    assert migrate("b", SRC_ACRA_MASTER_KEY=V1_KEY, ACRA_MASTER_KEY=unrelated) == (0, "")
    assert migrate("c", ACRA_MASTER_KEY=V1_KEY)[0] == 0  # without it: ACRA_MASTER_KEY
    code, stderr = migrate("d", "-o", "variable=MINE", SRC_ACRA_MASTER_KEY=V1_KEY, MINE=unrelated)
    assert code == 1, stderr  # the given variable wins, and holds the wrong key
    assert "Traceback" not in stderr
    assert unrelated not in stderr
