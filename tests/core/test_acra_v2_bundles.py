"""Acra's own keystore v2 export bundles (written by Acra 0.96's Go code, in
tests/acra_fixtures) import into a keyloader v2 store; what Acra's bundles get wrong is
refused with the reason, nothing written."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from keyloader.cli.app import app
from keyloader.errors import ConfigError, IntegrityError, RingFormatError
from keyloader.keyrings.bundle import import_ring_bundle
from keyloader.keyrings.directory import RingDirectory
from keyloader.keyrings.engine import RingKeyManager
from keyloader.masterkey import MasterKey, generate_master_key

from ..acrav2 import FIXTURES, manifest

API = manifest()["v2"]["api"]
CHECKS = json.loads((FIXTURES / "cli_checks.json").read_text())["results"]


def _files(name: str, target: Path) -> tuple[Path, Path]:
    paths = []
    for suffix in ("bundle", "secret"):
        path = target / f"{name}.{suffix}"
        shutil.copyfile(FIXTURES / "v2" / f"{name}.{suffix}", path)
        path.chmod(0o600)
        paths.append(path)
    return paths[0], paths[1]


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with generate_master_key("v2") as pair:
        directory = RingDirectory.create(tmp_path / "store")
        with RingKeyManager(directory, pair) as keys:
            yield keys


@pytest.mark.parametrize(
    ("name", "count"), [("export-all", 9), ("export-backuper", 8), ("cli-export-ids", 4)]
)
def test_acras_v2_bundles_import_with_every_key(
    store: RingKeyManager, tmp_path: Path, name: str, count: int
) -> None:
    bundle, secret = _files(name, tmp_path)
    report = import_ring_bundle(store, bundle, secret)
    assert len(report.imported) == count  # as many as acra-keys imported
    wanted = f"Successfully imported {count} keys"
    assert any(check["stderr_last"].endswith(f'{wanted}"') for check in CHECKS)
    with store.read("client/client1/symmetric") as key:
        assert key.bytes() == base64.b64decode(API["client1"]["symmetric_current"])
    public = base64.b64decode(API["client1"]["storage_public_current"])
    assert store.read_public("client/client1/storage") == public
    with store.read("client/client1/storage") as key:
        assert key.bytes() == base64.b64decode(API["client1"]["storage_private_current"])
    assert all(result.ok for result in store.verify())
    again = import_ring_bundle(store, bundle, secret)
    assert len(again.kept) == count  # existing rings are kept unless force
    forced = import_ring_bundle(store, bundle, secret, force=True)
    assert len(forced.replaced) == count


def test_the_history_of_a_ring_comes_along(store: RingKeyManager, tmp_path: Path) -> None:
    import_ring_bundle(store, *_files("export-all", tmp_path))
    older = API["client1"]["symmetric_all_newest_first"][1]
    with store.read("client/client1/symmetric", 2) as key:
        assert key.bytes() == base64.b64decode(older)


def test_public_only_and_empty_bundles(store: RingKeyManager, tmp_path: Path) -> None:
    report = import_ring_bundle(store, *_files("cli-export-public", tmp_path))
    assert len(report.imported) == 3  # the keypair rings, public halves only: as Acra does
    public = base64.b64decode(API["client1"]["storage_public_current"])
    assert store.read_public("client/client1/storage") == public
    with pytest.raises(RingFormatError, match="no key rings"):
        import_ring_bundle(store, *_files("cli-export-all-private", tmp_path))


def test_missing_large_or_foreign_files_are_refused(store: RingKeyManager, tmp_path: Path) -> None:
    bundle, secret = _files("export-all", tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        import_ring_bundle(store, tmp_path / "nope", secret)
    with pytest.raises(ConfigError, match="does not exist"):
        import_ring_bundle(store, bundle, tmp_path / "nope")
    with pytest.raises(ConfigError, match="is a directory"):
        import_ring_bundle(store, tmp_path, secret)
    large = tmp_path / "large"
    large.write_bytes(secret.read_bytes() + b" " * 4096)
    with pytest.raises(ConfigError, match="too large for the secret file"):
        import_ring_bundle(store, bundle, large)
    with pytest.raises(ConfigError, match="not the secret file of a keystore v2 bundle"):
        import_ring_bundle(store, bundle, bundle)
    spaced = tmp_path / "spaced"
    spaced.write_bytes(b"\n  " + secret.read_bytes())
    assert len(import_ring_bundle(store, bundle, spaced).imported) == 9
    assert len(import_ring_bundle(store, bundle, secret).kept) == 9


def test_a_wrong_secret_or_a_changed_bundle_is_refused(
    store: RingKeyManager, tmp_path: Path
) -> None:
    bundle, _ = _files("export-all", tmp_path)
    _, other = _files("export-backuper", tmp_path)
    with pytest.raises(IntegrityError, match="does not verify"):
        import_ring_bundle(store, bundle, other)
    _, secret = _files("export-all", tmp_path)
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 1
    bundle.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        import_ring_bundle(store, bundle, secret)
    assert store.store.list() == []


def test_the_cli_imports_into_a_v2_store(tmp_path: Path) -> None:
    bundle, secret = _files("export-all", tmp_path)
    with generate_master_key("v2") as pair, pair.to_text() as text:
        env = {"ACRA_MASTER_KEY": text.bytes().decode()}
    root = tmp_path / "new" / ".acrakeys"
    args = ["--keys-dir", str(root), "-s", "keystore_version=v2", "keys", "import"]
    files = ["--key_bundle_file", str(bundle), "--key_bundle_secret", str(secret), "--json"]
    result = CliRunner().invoke(app, [*args, *files], env=env)
    assert result.exit_code == 0, result.stderr
    assert len(json.loads(result.stdout)["imported"]) == 9


# -- keyloader writing Acra's v2 bundle --------------------------------------------------


def test_a_v2_store_exports_in_acras_format_and_imports_back(tmp_path: Path) -> None:
    from keyloader.keyrings.bundle import export_ring_bundle

    from ..acrav2 import copy_store, master_pair

    source = copy_store("main", tmp_path / "acra")
    out, secret = tmp_path / "out.bundle", tmp_path / "out.secret"
    with RingKeyManager(RingDirectory(source), MasterKey(*master_pair())) as acra_store:
        report = export_ring_bundle(acra_store, None, out, secret, acra=True)
    assert len(report.key_ids) == 9
    assert report.entries == 11
    assert secret.stat().st_mode & 0o777 == 0o600
    assert secret.read_bytes().startswith(b'{"encryption":"')
    with generate_master_key("v2") as pair:
        target = RingDirectory.create(tmp_path / "target")
        with RingKeyManager(target, pair) as keys:
            imported = import_ring_bundle(keys, out, secret)
            assert len(imported.imported) == 9
            older = API["client1"]["symmetric_all_newest_first"][1]
            with keys.read("client/client1/symmetric", 2) as key:
                assert key.bytes() == base64.b64decode(older)
            assert all(result.ok for result in keys.verify())


def test_the_cli_exports_a_v2_store_in_either_format_and_imports_both(tmp_path: Path) -> None:
    from ..acrav2 import copy_store

    source = copy_store("main", tmp_path / "acra")
    env = {"ACRA_MASTER_KEY": manifest()["master_keys"]["v2"]["ACRA_MASTER_KEY"]}
    export = ["--keys-dir", str(source), "keys", "export", "client/client1/symmetric", "--json"]
    made = {}
    for form in ("acra", "keyloader"):
        files = [tmp_path / f"{form}.bundle", tmp_path / f"{form}.secret"]
        flags = ["--output", str(files[0]), "--secret-output", str(files[1]), "--format", form]
        result = CliRunner().invoke(app, [*export, *flags], env=env)
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["keys"] == ["client/client1/storage-sym"]
        assert json.loads(result.stdout)["entries"] == 2  # the current key and the older one
        made[form] = files
    assert made["acra"][1].read_bytes().startswith(b'{"encryption":"')
    assert len(made["keyloader"][1].read_bytes()) == 32
    older = base64.b64decode(API["client1"]["symmetric_all_newest_first"][1])
    for form, (bundle, secret) in made.items():
        root = tmp_path / f"into-{form}"
        args = ["--keys-dir", str(root), "-s", "keystore_version=v2", "keys", "import"]
        result = CliRunner().invoke(
            app, [*args, "--input", str(bundle), "--secret", str(secret)], env=env
        )
        assert result.exit_code == 0, (form, result.stderr)
        read = ["--keys-dir", str(root), "keys", "read", "client/client1/symmetric"]
        result = CliRunner().invoke(app, [*read, "--index", "2", "--format", "raw"], env=env)
        assert result.exit_code == 0, result.stderr
        assert result.stdout_bytes == older, form
