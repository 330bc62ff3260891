"""The real aws-kms provider loading master keys from a real moto server (boto3 over HTTP)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest

from keyloader.api import load_master_key
from keyloader.errors import (
    AuthenticationError,
    ConfigError,
    EnterpriseFeatureError,
    InvalidMasterKeyError,
    KeyloaderError,
    MasterKeyNotFoundError,
    ProviderUnavailableError,
)
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader.testing.providers import assert_no_key_material
from keyloader_aws import AwsKmsProvider

from ..servers import LOOPBACK, free_port
from ..slow_servers import dripping_server, silent_server
from .conftest import (
    ACCESS_KEY,
    ALIAS,
    REGION,
    SECRET_KEY,
    KmsOptions,
    MotoServer,
    ciphertext_of,
    encrypted_key,
    make_alias,
)

__all__ = ["dripping_server", "silent_server"]  # fixtures used by name below


def load(options: dict[str, object], **kwargs: Any) -> MasterKey:
    return load_master_key(provider="aws-kms", provider_options=options, enterprise=True, **kwargs)


@pytest.fixture
def admin(moto: MotoServer) -> Any:
    return moto.admin()


# -- loading -------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_loads_the_key_acra_encrypted(
    version: str, admin: Any, file_options: KmsOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_alias(admin)
    with generate_master_key(version) as key:  # type: ignore[arg-type]
        monkeypatch.setenv("ACRA_MASTER_KEY", encrypted_key(admin, key))
        with load(file_options()) as loaded:
            assert loaded == key
            assert loaded.version == version


def test_keystore_version_applies_to_the_plaintext(
    admin: Any, file_options: KmsOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_alias(admin)
    with generate_master_key("v2") as pair:
        monkeypatch.setenv("ACRA_MASTER_KEY", encrypted_key(admin, pair))
        with load(file_options(keystore_version="v2")) as loaded:
            assert loaded == pair
        with load(file_options(keystore_version="v1")) as raw, pair.to_bytes() as document:
            assert raw.version == "v1", "v1: the plaintext is the key, whatever it holds"
            assert raw.encryption.bytes() == document.bytes()
    with generate_master_key("v1") as key:
        monkeypatch.setenv("ACRA_MASTER_KEY", encrypted_key(admin, key))
        with pytest.raises(InvalidMasterKeyError, match="not a keystore v2 master key"):
            load(file_options(keystore_version="v2"))


def test_the_standard_aws_chain_when_no_credentials_file(
    moto: MotoServer, admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_alias(admin)
    with generate_master_key() as key:
        monkeypatch.setenv("ACRA_MASTER_KEY", encrypted_key(admin, key))
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        monkeypatch.setenv("AWS_REGION", REGION)
        monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", moto.url)
        with load({}) as loaded:
            assert loaded == key


def test_a_profile_gives_credentials_and_region(
    moto: MotoServer, admin: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    make_alias(admin)
    (tmp_path / "config").write_text(f"[profile team]\nregion = {REGION}\n")
    (tmp_path / "credentials").write_text(
        f"[team]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_PROFILE", "team")
    with generate_master_key() as key:
        monkeypatch.setenv("ACRA_MASTER_KEY", encrypted_key(admin, key))
        with load({"endpoint": moto.url}) as loaded:
            assert loaded == key


def test_another_variable_and_alias(
    admin: Any, file_options: KmsOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_alias(admin, "alias/team/acra")
    with generate_master_key() as key:
        monkeypatch.setenv("TEAM_KEY", encrypted_key(admin, key, "alias/team/acra"))
        options = file_options(key_alias="alias/team/acra", encrypted_key_variable="TEAM_KEY")
        with load(options) as loaded:
            assert loaded == key


def test_the_enterprise_flag_still_gates_it(
    admin: Any, file_options: KmsOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_alias(admin)
    with generate_master_key() as key:
        monkeypatch.setenv("ACRA_MASTER_KEY", encrypted_key(admin, key))
    with pytest.raises(EnterpriseFeatureError, match="--enterprise"):
        load_master_key(provider="aws-kms", provider_options=file_options(), enterprise=False)
    with pytest.raises(EnterpriseFeatureError):
        load_master_key(provider="kms_encrypted_master_key", provider_options=file_options())


# -- what goes wrong -----------------------------------------------------------------------


def test_wrong_region_says_which_region_was_asked(
    admin: Any, file_options: KmsOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_alias(admin)
    with generate_master_key() as key:
        monkeypatch.setenv("ACRA_MASTER_KEY", encrypted_key(admin, key))
    with pytest.raises(MasterKeyNotFoundError) as caught:
        load(file_options(region="us-east-2"))
    message = str(caught.value)
    assert f"KMS key {ALIAS} in region us-east-2" in message
    assert "does not exist" in message
    assert "master-key store --generate" in message


def test_missing_alias(
    admin: Any, file_options: KmsOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_alias(admin)
    with generate_master_key() as key:
        monkeypatch.setenv("ACRA_MASTER_KEY", encrypted_key(admin, key))
    with pytest.raises(
        MasterKeyNotFoundError, match=r"alias/missing in region eu-west-1 .*NotFound"
    ):
        load(file_options(key_alias="alias/missing"))


@pytest.mark.parametrize(
    ("disable", "expected"),
    [
        (lambda admin, key_id: admin.disable_key(KeyId=key_id), r"is disabled .*enable-key"),
        (
            lambda admin, key_id: admin.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7),
            r"cannot be used in its state .*cancel-key-deletion",
        ),
    ],
    ids=["disabled", "pending-deletion"],
)
def test_a_key_that_cannot_be_used(
    disable: Any,
    expected: str,
    admin: Any,
    file_options: KmsOptions,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key_id = make_alias(admin)
    with generate_master_key() as key:
        monkeypatch.setenv("ACRA_MASTER_KEY", encrypted_key(admin, key))
    disable(admin, key_id)
    with pytest.raises(ProviderUnavailableError, match=expected):
        load(file_options())


def test_a_damaged_ciphertext(
    admin: Any, file_options: KmsOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_alias(admin)
    with generate_master_key() as key:
        blob = bytearray(base64.b64decode(encrypted_key(admin, key)))
    blob[-1] ^= 1
    monkeypatch.setenv("ACRA_MASTER_KEY", base64.b64encode(blob).decode())
    with pytest.raises(InvalidMasterKeyError, match=r"is not a ciphertext .* decrypts"):
        load(file_options())


def test_a_ciphertext_of_another_key(
    admin: Any, file_options: KmsOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_alias(admin)
    make_alias(admin, "alias/other")
    with generate_master_key() as key:
        monkeypatch.setenv("ACRA_MASTER_KEY", encrypted_key(admin, key, "alias/other"))
    # AWS answers IncorrectKeyException, moto AccessDeniedException: both say what to check
    with pytest.raises((InvalidMasterKeyError, AuthenticationError), match="another KMS key"):
        load(file_options())


@pytest.mark.parametrize(
    ("value", "error", "expected"),
    [
        (None, MasterKeyNotFoundError, "ACRA_MASTER_KEY is not set"),
        ("  ", MasterKeyNotFoundError, "ACRA_MASTER_KEY is empty"),
        ("not base64!", InvalidMasterKeyError, "ACRA_MASTER_KEY"),
        ("ключ", InvalidMasterKeyError, "non-ASCII"),
        (base64.b64encode(b"short").decode(), InvalidMasterKeyError, "too short for an AWS KMS"),
    ],
    ids=["unset", "blank", "not-base64", "non-ascii", "short"],
)
def test_a_bad_variable_is_refused_before_kms_is_asked(
    value: str | None,
    error: type[Exception],
    expected: str,
    file_options: KmsOptions,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if value is not None:
        monkeypatch.setenv("ACRA_MASTER_KEY", value)
    options = file_options(endpoint=f"http://{LOOPBACK}:{free_port()}")  # nothing listens
    with pytest.raises(error, match=expected) as caught:
        load(options)
    assert "make one with `keyloader --enterprise --provider aws-kms" in str(caught.value)


@pytest.mark.parametrize(
    ("plaintext", "expected"),
    [
        (b"k" * 16, "is 16 bytes; a master key needs at least 32"),
        (
            json.dumps(
                {
                    "encryption": base64.b64encode(b"e" * 32).decode(),
                    "signature": base64.b64encode(b"e" * 32).decode(),
                }
            ).encode(),
            "keys are equal",
        ),
    ],
    ids=["short-key", "equal-pair"],
)
def test_a_plaintext_that_is_no_master_key(
    plaintext: bytes,
    expected: str,
    admin: Any,
    file_options: KmsOptions,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_alias(admin)
    monkeypatch.setenv("ACRA_MASTER_KEY", ciphertext_of(admin, plaintext))
    with pytest.raises(InvalidMasterKeyError, match=expected) as caught:
        load(file_options())
    assert "the AWS KMS plaintext of environment variable ACRA_MASTER_KEY" in str(caught.value)


def test_no_credentials_anywhere(
    moto: MotoServer, admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_alias(admin)
    with generate_master_key() as key:
        monkeypatch.setenv("ACRA_MASTER_KEY", encrypted_key(admin, key))
    with pytest.raises(AuthenticationError, match=r"found no AWS credentials.*credentials_path"):
        load({"endpoint": moto.url, "region": REGION})


def test_no_region_anywhere(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACRA_MASTER_KEY", base64.b64encode(b"c" * 64).decode())
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    with pytest.raises(ConfigError, match="needs a region"):
        load({"endpoint": moto.url})


def test_refused_credentials_never_show_the_secret(
    moto: MotoServer,
    admin: Any,
    file_options: KmsOptions,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """moto accepts any access key; what the error says is checked on the key alias instead."""
    make_alias(admin)
    with generate_master_key() as key:
        monkeypatch.setenv("ACRA_MASTER_KEY", encrypted_key(admin, key))
        for options in (file_options(key_alias="alias/none"), file_options(region="ap-south-1")):
            with pytest.raises(KeyloaderError) as caught:
                load(options)
            text = f"{caught.value!s} {caught.value!r}"
            assert SECRET_KEY not in text
            assert ACCESS_KEY not in text
            assert_no_key_material(text, key, "the error")
            assert caught.value.__cause__ is None
            assert caught.value.__suppress_context__


# -- a server that is down or slow ---------------------------------------------------------


def test_a_server_that_is_down_fails_fast_and_typed(
    file_options: KmsOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACRA_MASTER_KEY", base64.b64encode(b"c" * 64).decode())
    endpoint = f"http://{LOOPBACK}:{free_port()}"
    started = time.monotonic()
    with pytest.raises(ProviderUnavailableError, match=r"cannot reach AWS KMS .* after 3 attempts"):
        load(file_options(endpoint=endpoint, retries=2, timeout=10))
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("server", ["silent_server", "dripping_server"])
def test_the_deadline_holds_against_a_slow_server(
    request: pytest.FixtureRequest,
    server: str,
    file_options: KmsOptions,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACRA_MASTER_KEY", base64.b64encode(b"c" * 64).decode())
    endpoint = request.getfixturevalue(server)
    started = time.monotonic()
    with pytest.raises(ProviderUnavailableError, match=r"within the 1\.5 s deadline"):
        load(file_options(endpoint=endpoint, timeout=1.5, retries=2))
    elapsed = time.monotonic() - started
    assert elapsed < 4, f"the 1.5 s deadline took {elapsed:.1f} s"


# -- the provider object -----------------------------------------------------------------


def test_one_client_serves_many_loads(
    admin: Any, file_options: KmsOptions, monkeypatch: pytest.MonkeyPatch, credentials_file: Path
) -> None:
    make_alias(admin)
    with generate_master_key() as key:
        monkeypatch.setenv("ACRA_MASTER_KEY", encrypted_key(admin, key))
        provider = AwsKmsProvider(
            {"credentials_path": credentials_file, "keystore_version": "auto"}
        )
        try:
            for _ in range(3):
                with provider.load() as loaded:
                    assert loaded == key
            client = provider._client
            assert client is not None
            with provider.load():
                assert provider._client is client, "each load built a new boto3 client"
        finally:
            provider.close()
        assert provider._client is None
        assert "variable='ACRA_MASTER_KEY'" in repr(provider)
        assert SECRET_KEY not in repr(provider.kms_settings)


def test_consumed_environment(credentials_file: Path) -> None:
    with_file = AwsKmsProvider({"credentials_path": credentials_file})
    assert with_file.consumed_environment() == ("ACRA_MASTER_KEY",)
    chain = AwsKmsProvider({"encrypted_key_variable": "TEAM_KEY"})
    consumed = chain.consumed_environment()
    assert consumed[0] == "TEAM_KEY"
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        assert name in consumed
    assert "AWS_REGION" not in consumed
