"""Master-key migration env -> aws-kms -> env against a real moto server, and the contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from keyloader.api import open_keystore, resolve, rewrap_keystore
from keyloader.errors import MasterKeyNotFoundError
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader.providers import MasterKeyProvider
from keyloader.testing import MasterKeyProviderContract
from keyloader_aws import AwsKmsProvider

from ..keytext import text_of
from ..rewrapcheck import settings_plaintexts as plaintexts
from .conftest import ACCESS_KEY, REGION, SECRET_KEY, MotoServer, encrypted_key, make_alias

SYM = "client/client1/symmetric"


def test_env_to_aws_kms_and_back(
    moto: MotoServer, credentials_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = moto.admin()
    make_alias(admin)
    keys_dir = tmp_path / ".acrakeys"
    kms = {"credentials_path": str(credentials_file)}
    with generate_master_key() as env_key, generate_master_key() as kms_key:
        monkeypatch.setenv("ACRA_MASTER_KEY", text_of(env_key))
        env_settings = resolve(keys_dir=keys_dir)
        with open_keystore(env_settings) as keys:
            keys.generate(["symmetric", "searchable"], client_id="client1")
            keys.rotate(SYM)
        before = plaintexts(env_settings)
        assert len(before) == 3

        # env -> aws-kms: the target reads its ciphertext from DST_ACRA_MASTER_KEY
        monkeypatch.setenv("DST_ACRA_MASTER_KEY", encrypted_key(admin, kms_key))
        target = resolve(keys_dir=keys_dir, rewrap_to_options=kms, enterprise=True)
        report = rewrap_keystore(target, to_provider="aws-kms")
        assert (report.rewrapped, report.new_fingerprint) == (3, kms_key.fingerprint)

        # the service now runs on aws-kms: ACRA_MASTER_KEY holds the ciphertext
        monkeypatch.setenv("ACRA_MASTER_KEY", encrypted_key(admin, kms_key))
        monkeypatch.delenv("DST_ACRA_MASTER_KEY")
        kms_settings = resolve(
            provider="aws-kms", provider_options=kms, keys_dir=keys_dir, enterprise=True
        )
        assert plaintexts(kms_settings) == before

        # aws-kms -> env
        with generate_master_key() as back:
            monkeypatch.setenv("DST_ACRA_MASTER_KEY", text_of(back))
            report = rewrap_keystore(kms_settings, to_provider="env")
            assert (report.rewrapped, report.skipped) == (3, 0)
            monkeypatch.setenv("ACRA_MASTER_KEY", text_of(back))
            assert plaintexts(resolve(keys_dir=keys_dir)) == before


def test_a_missing_aws_kms_target_changes_nothing(
    moto: MotoServer, credentials_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys_dir = tmp_path / ".acrakeys"
    with generate_master_key() as env_key:
        monkeypatch.setenv("ACRA_MASTER_KEY", text_of(env_key))
        with open_keystore(resolve(keys_dir=keys_dir)) as keys:
            keys.generate(["symmetric"], client_id="client1")
        snapshot = {p: p.read_bytes() for p in keys_dir.rglob("*") if p.is_file()}
        target = resolve(
            keys_dir=keys_dir,
            rewrap_to_options={"credentials_path": str(credentials_file)},
            enterprise=True,
        )
        with pytest.raises(MasterKeyNotFoundError, match=r"rewrap target provider 'aws-kms'.*DST_"):
            rewrap_keystore(target, to_provider="aws-kms")
        assert {p: p.read_bytes() for p in keys_dir.rglob("*") if p.is_file()} == snapshot


def test_cli_rewrap_env_to_aws_kms(moto: MotoServer, tmp_path: Path) -> None:
    admin = moto.admin()
    make_alias(admin)
    keyloader = str(Path(sys.executable).with_name("keyloader"))
    with generate_master_key() as env_key, generate_master_key() as kms_key:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ACRA_"))},
            "ACRA_MASTER_KEY": text_of(env_key),
            "DST_ACRA_MASTER_KEY": encrypted_key(admin, kms_key),
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        }

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [keyloader, *args],
                env=env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )

        assert run("keys", "generate", "--client-id", "client1").returncode == 0
        target = ["--to-option", f"region={REGION}", "--to-option", f"endpoint={moto.url}"]
        result = run(
            "--enterprise", "--json", "keys", "rewrap", "--to-provider", "aws-kms", *target
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["new_fingerprint"] == kms_key.fingerprint
        assert text_of(kms_key) not in result.stdout + result.stderr


# -- the conformance suite ---------------------------------------------------------------


class TestAwsKmsProvider(MasterKeyProviderContract):
    @pytest.fixture(params=["v1", "v2"])
    def expected_key(self, request: pytest.FixtureRequest) -> Iterator[MasterKey]:
        with generate_master_key(request.param) as key:
            yield key

    @pytest.fixture
    def provider_class(self) -> type[MasterKeyProvider]:
        return AwsKmsProvider

    @pytest.fixture(params=["credentials-file", "aws-chain"])
    def make_provider(
        self,
        moto: MotoServer,
        credentials_file: Path,
        expected_key: MasterKey,
        request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch,
    ) -> Callable[..., MasterKeyProvider]:
        admin = moto.admin()
        make_alias(admin)
        monkeypatch.setenv("ACRA_MASTER_KEY", encrypted_key(admin, expected_key))
        if request.param == "credentials-file":
            base: dict[str, object] = {"credentials_path": credentials_file}
        else:
            monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            base = {"region": REGION, "endpoint": moto.url}

        def make(**options: object) -> MasterKeyProvider:
            return AwsKmsProvider({"keystore_version": "auto", **base, **options})

        return make

    @pytest.fixture
    def broken_provider(self, moto: MotoServer, credentials_file: Path) -> MasterKeyProvider:
        return AwsKmsProvider(
            {"credentials_path": credentials_file, "key_alias": "alias/not-there"}
        )
