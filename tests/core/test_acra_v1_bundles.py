"""Acra's own v1 export bundles (``acra-keys export`` from Acra 0.96's Go code, in
tests/acra_fixtures) import into a keyloader store: every key, history included, reads
back as the manifest records it; what Acra gets wrong is refused, nothing written."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from keyloader.acra_bundle import read_acra_v1_bundle
from keyloader.bundle import export_keys, import_keys
from keyloader.cli.app import app
from keyloader.errors import IntegrityError
from keyloader.keyids import classify
from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, generate_master_key, parse_master_key
from keyloader.secret import SecretBytes
from keyloader.stores.filesystem import FilesystemKeyStore

from ..acrav2 import FIXTURES, copy_v1_store, manifest

EXPORT = next(e for e in manifest()["v1"]["exports"] if e["name"] == "all-private")


def _copy(name: str, target: Path) -> Path:
    path = target / Path(name).name
    shutil.copyfile(FIXTURES / name, path)
    path.chmod(0o600)  # git keeps no modes; Acra writes its secret file 0600
    return path


@pytest.fixture
def manager(tmp_path: Path) -> Any:
    with generate_master_key() as key:
        store = FilesystemKeyStore({"keys_dir": tmp_path / ".acrakeys"})
        with KeyManager(store, MasterKey(SecretBytes(key.encryption.buffer))) as keys:
            yield keys


def test_the_gob_decoder_reads_every_entry_acra_wrote(tmp_path: Path) -> None:
    secret = SecretBytes((FIXTURES / EXPORT["secret"]).read_bytes())
    entries = read_acra_v1_bundle((FIXTURES / EXPORT["bundle"]).read_bytes(), secret, tmp_path)
    assert [entry.name for entry in entries] == [entry["name"] for entry in EXPORT["entries"]]
    for entry, expected in zip(entries, EXPORT["entries"], strict=True):
        assert entry.content.bytes() == base64.b64decode(expected["content"])
        entry.content.wipe()


def test_acras_v1_bundle_imports_with_its_history(manager: KeyManager, tmp_path: Path) -> None:
    bundle, secret = _copy(EXPORT["bundle"], tmp_path), _copy(EXPORT["secret"], tmp_path)
    report = import_keys(manager, bundle, secret)
    assert len(report.imported) == len(EXPORT["entries"])
    listing = {blob.name: blob for blob in manager.store.list()}
    for expected in EXPORT["entries"]:
        name, _, timestamp = expected["name"].partition(".old/")
        content = base64.b64decode(expected["content"])
        kind = classify(name)
        assert kind.key_id is not None
        if kind.public:
            stored = manager.store.get(name) if not timestamp else None
            assert stored is None or stored == content
            continue
        if timestamp:
            assert timestamp in listing[name].history
            index = 2 + sorted(listing[name].history).index(timestamp)
        else:
            index = 1
        with manager.read(kind.key_id, index) as key:
            assert key.bytes() == content
    results = manager.verify()  # every key opens under this store's master key
    assert results
    assert all(result.ok for result in results)
    again = import_keys(manager, bundle, secret)
    assert len(again.identical) == len(EXPORT["entries"])  # a rerun changes nothing


def test_keys_exported_by_id_hold_zeros_and_are_refused(
    manager: KeyManager, tmp_path: Path
) -> None:
    bundle = _copy("v1/cli-export-ids.bundle", tmp_path)
    secret = _copy("v1/cli-export-ids.secret", tmp_path)
    with pytest.raises(IntegrityError, match=r"zero bytes.*--all --private_keys"):
        import_keys(manager, bundle, secret)
    assert list(manager.store.list()) == []


def test_the_wrong_secret_or_a_changed_bundle_is_refused(
    manager: KeyManager, tmp_path: Path
) -> None:
    bundle = _copy(EXPORT["bundle"], tmp_path)
    other = _copy("v1/cli-export-ids.secret", tmp_path)
    with pytest.raises(IntegrityError, match="wrong secret"):
        import_keys(manager, bundle, other)
    secret = _copy(EXPORT["secret"], tmp_path)
    data = bytearray(bundle.read_bytes())
    data[-1] ^= 1
    bundle.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        import_keys(manager, bundle, secret)
    assert list(manager.store.list()) == []


def test_the_cli_takes_acras_flag_spellings(tmp_path: Path) -> None:
    bundle, secret = _copy(EXPORT["bundle"], tmp_path), _copy(EXPORT["secret"], tmp_path)
    with generate_master_key() as key, key.to_text() as text:
        env = {"ACRA_MASTER_KEY": text.bytes().decode()}
    keys_dir = tmp_path / "restored"
    result = CliRunner().invoke(
        app,
        [
            "--keys-dir",
            str(keys_dir),
            "keys",
            "import",
            "--key_bundle_file",
            str(bundle),
            "--key_bundle_secret",
            str(secret),
            "--json",
        ],
        env=env,
    )
    assert result.exit_code == 0, result.stderr
    assert "client1_storage_sym" in result.stdout
    assert os.path.exists(keys_dir / "client1_storage.old")


# -- keyloader writing Acra's v1 bundle --------------------------------------------------

VECTOR = json.loads(
    (Path(__file__).parent / "vectors" / "keyloader_acra_v1_bundle.json").read_text()
)


def test_a_keyloader_made_acra_bundle_is_what_go_decoded(tmp_path: Path) -> None:
    """The committed bundle was opened by pythemis and its gob decoded by Go's encoding/gob
    (tests/core/vectors/make_acra_v1_bundle.py); keyloader reads the same entries, and
    they are Acra's keys."""
    assert "encoding/gob" in VECTOR["peer_check"]["gob"]
    secret = SecretBytes(bytes.fromhex(VECTOR["secret"]))
    entries = read_acra_v1_bundle(bytes.fromhex(VECTOR["bundle"]), secret, tmp_path)
    decoded = {entry["name"]: entry["content"] for entry in VECTOR["entries"]}
    assert {entry.name: entry.content.bytes().hex() for entry in entries} == decoded
    client = manifest()["v1"]["api"]["client1"]
    assert (
        decoded["client1_storage_sym"]
        == base64.b64decode(client["symmetric_all_newest_first"][0]).hex()
    )
    for entry in entries:
        entry.content.wipe()


def test_export_in_acras_format_imports_back(manager: KeyManager, tmp_path: Path) -> None:
    source = copy_v1_store(tmp_path / "acra")
    key = parse_master_key(manifest()["master_keys"]["v1"]["ACRA_MASTER_KEY"])
    with KeyManager(FilesystemKeyStore({"keys_dir": source}), key) as acra_store:
        report = export_keys(
            acra_store, None, tmp_path / "out.bundle", tmp_path / "out.secret", acra=True
        )
    assert report.entries == 15
    assert (tmp_path / "out.secret").stat().st_mode & 0o777 == 0o600
    imported = import_keys(manager, tmp_path / "out.bundle", tmp_path / "out.secret")
    assert len(imported.imported) == 15
    client = manifest()["v1"]["api"]["client1"]
    for index, text in enumerate(client["symmetric_all_newest_first"], start=1):
        with manager.read("client/client1/symmetric", index) as read:
            assert read.bytes() == base64.b64decode(text)


def test_the_cli_exports_in_acras_format(tmp_path: Path) -> None:
    source = copy_v1_store(tmp_path / "acra")
    args = ["--keys-dir", str(source), "keys", "export", "--all", "--format", "acra"]
    files = ["--key_bundle_file", str(tmp_path / "b"), "--key_bundle_secret", str(tmp_path / "s")]
    env = {"ACRA_MASTER_KEY": manifest()["master_keys"]["v1"]["ACRA_MASTER_KEY"]}
    result = CliRunner().invoke(app, [*args, *files], env=env)
    assert result.exit_code == 0, result.stderr
    secret = SecretBytes((tmp_path / "s").read_bytes())
    entries = read_acra_v1_bundle((tmp_path / "b").read_bytes(), secret, tmp_path)
    assert len(entries) == 15
    bad = CliRunner().invoke(app, [*args[:-1], "gob", *files, "--force"], env=env)
    assert bad.exit_code == 1
    assert "unknown bundle format" in bad.stderr
