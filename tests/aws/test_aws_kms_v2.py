"""Acra keystore v2 under AWS KMS, end to end against a real moto server: Acra's own v2 store
rewrapped from its env pair to a pair KMS wraps, used through aws-kms (read, verify, write,
data), migrated to keystore v1 under aws-kms, and a v1 key in KMS refused on a v2 store."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from keyloader.api import migrate_keystore, open_keystore, resolve, rewrap_keystore
from keyloader.masterkey import generate_master_key

from ..acrav2 import copy_store, manifest
from ..keytext import text_of
from ..rewrapcheck import settings_plaintexts as plaintexts
from .conftest import ACCESS_KEY, REGION, SECRET_KEY, MotoServer, encrypted_key, make_alias

ACRA_PAIR = manifest()["master_keys"]["v2"]["ACRA_MASTER_KEY"]
ROTATED = manifest()["v2"]["api"]["client1"]["symmetric_all_newest_first"][1]


def test_a_v2_store_moves_to_aws_kms_and_works_there(
    moto: MotoServer, credentials_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = moto.admin()
    make_alias(admin)
    root = copy_store("main", tmp_path / "keystore")
    kms = {"credentials_path": str(credentials_file)}
    monkeypatch.setenv("ACRA_MASTER_KEY", ACRA_PAIR)
    before = plaintexts(resolve(keys_dir=root))
    assert len(before) >= 10
    with generate_master_key("v2") as pair:
        monkeypatch.setenv("DST_ACRA_MASTER_KEY", encrypted_key(admin, pair))
        target = resolve(keys_dir=root, rewrap_to_options=kms, enterprise=True)
        report = rewrap_keystore(target, to_provider="aws-kms")
        assert report.complete
        assert report.new_fingerprint == pair.fingerprint
        monkeypatch.setenv("ACRA_MASTER_KEY", encrypted_key(admin, pair))
    monkeypatch.delenv("DST_ACRA_MASTER_KEY")
    settings = resolve(provider="aws-kms", provider_options=kms, keys_dir=root, enterprise=True)
    assert plaintexts(settings) == before
    with open_keystore(settings) as keys:
        assert keys.keystore_version == "v2"
        with keys.read("client/client1/symmetric", 2) as key:
            assert key.bytes() == base64.b64decode(ROTATED)
        assert all(result.ok for result in keys.verify())
        keys.generate(["symmetric", "storage"], client_id="kms-client")
        sealed = keys.encrypt("client/kms-client/storage", b"a row under KMS")
        assert keys.decrypt("client/kms-client/storage", sealed) == b"a row under KMS"
    assert (root / "client" / "kms-client" / "storage-sym.keyring").exists()

    # v2 under aws-kms -> v1 under a v1 key KMS wraps
    with generate_master_key() as v1_key:
        monkeypatch.setenv("DST_ACRA_MASTER_KEY", encrypted_key(admin, v1_key))
        migrated = tmp_path / "v1"
        report_v1 = migrate_keystore(
            resolve(
                provider="aws-kms",
                provider_options=kms,
                keys_dir=root,
                enterprise=True,
                rewrap_to_options=kms,
            ),
            destination=migrated,
            destination_version="v1",
            to_provider="aws-kms",
        )
        assert report_v1.versions >= len(before)
        monkeypatch.setenv("ACRA_MASTER_KEY", encrypted_key(admin, v1_key))
    v1_settings = resolve(
        provider="aws-kms", provider_options=kms, keys_dir=migrated, enterprise=True
    )
    with open_keystore(v1_settings) as v1:
        assert v1.keystore_version == "v1"
        with v1.read("client/client1/symmetric", 2) as key:
            assert key.bytes() == base64.b64decode(ROTATED)
        assert v1.decrypt("client/kms-client/storage", sealed) == b"a row under KMS"


def test_a_v1_key_in_kms_on_a_v2_store_is_a_clear_error(moto: MotoServer, tmp_path: Path) -> None:
    admin = moto.admin()
    make_alias(admin)
    root = copy_store("main", tmp_path / "keystore")
    keyloader = str(Path(sys.executable).with_name("keyloader"))
    with generate_master_key() as v1_key:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ACRA_"))},
            "ACRA_MASTER_KEY": encrypted_key(admin, v1_key),
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        }
        flags = ["--provider", "aws-kms", "-o", f"region={REGION}", "-o", f"endpoint={moto.url}"]
        result = subprocess.run(
            [keyloader, "--enterprise", *flags, "--keys-dir", str(root), "keys", "verify"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1, result.stderr
        assert "v2 master key pair" in result.stderr
        assert "Traceback" not in result.stderr
        assert text_of(v1_key) not in result.stdout + result.stderr
