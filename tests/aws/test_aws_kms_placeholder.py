"""keyloader-aws: the ``aws-kms`` placeholder, its options and Acra's credentials file."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest

from keyloader.errors import ConfigError
from keyloader.plugins import make_plugin_manager
from keyloader.providers import Option
from keyloader.testing import PlaceholderProviderContract
from keyloader_aws import AwsKmsCredentials, AwsKmsPlaceholder, load_credentials
from keyloader_aws import plugin as aws_plugin

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
GOOD = {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET, "region": "eu-west-2"}
NO_SECRET = {"access_key_id": ACCESS_KEY, "region": "eu-west-1"}


def write(path: Path, content: object) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def file_with(content: object) -> Callable[[Path], Path]:
    """An option value for ``invalid_options``: a credentials file holding ``content``."""
    return lambda directory: write(directory / "kms.json", content)


def option(name: str) -> Option:
    return next(o for o in AwsKmsPlaceholder.options if o.name == name)


# -- the class and the gate ----------------------------------------------------------------


def test_the_placeholder_declares_what_it_is() -> None:
    assert AwsKmsPlaceholder.name == "aws-kms"
    assert AwsKmsPlaceholder.aliases == ("kms_encrypted_master_key",)
    assert "AWS KMS" in AwsKmsPlaceholder.description
    assert "kms_encrypted_master_key" in AwsKmsPlaceholder.description
    assert [o.name for o in AwsKmsPlaceholder.options] == [
        "credentials_path",
        "region",
        "key_alias",
        "encrypted_key_variable",
        "endpoint",
        "ca_bundle",
        "timeout",
        "retries",
    ]
    assert [o.name for o in AwsKmsPlaceholder.options if o.required] == []
    assert option("key_alias").default == "alias/acra_master_key"
    assert option("encrypted_key_variable").default == "ACRA_MASTER_KEY"
    assert (option("timeout").default, option("retries").default) == (30.0, 2)
    assert aws_plugin.keyloader_master_key_providers() == [AwsKmsPlaceholder]


def test_the_real_provider_comes_with_boto3_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from keyloader_aws import AwsKmsProvider, kms_plugin

    assert kms_plugin.keyloader_master_key_providers() == [AwsKmsProvider]
    assert issubclass(AwsKmsProvider, AwsKmsPlaceholder)
    assert AwsKmsProvider.option_schema() == AwsKmsPlaceholder.option_schema()
    assert (AwsKmsProvider.placeholder, AwsKmsProvider.enterprise) == (False, True)
    monkeypatch.setitem(sys.modules, "boto3", None)  # as if it were not installed
    assert kms_plugin.sdk_installed() is False
    assert kms_plugin.keyloader_master_key_providers() == []


def test_without_boto3_the_gate_says_how_to_install_the_real_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from keyloader.api import load_master_key
    from keyloader.errors import ProviderNotImplementedError
    from keyloader_aws import kms_plugin

    monkeypatch.setitem(sys.modules, "boto3", None)
    pm = make_plugin_manager(autoload=False, plugins=[aws_plugin, kms_plugin])
    assert pm.find_provider("aws-kms") is AwsKmsPlaceholder
    with pytest.raises(ProviderNotImplementedError) as caught:
        load_master_key(plugin_manager=pm, provider="aws-kms", enterprise=True)
    assert "pip install 'keyloader-aws[kms]'" in str(caught.value)
    assert "placeholder" in str(caught.value)


class TestAwsKmsPlaceholderContract(PlaceholderProviderContract):
    plugin: ClassVar[object] = aws_plugin
    provider_name = "aws-kms"
    invalid_options: ClassVar[list[Any]] = [
        pytest.param(
            {"credentials_path": lambda d: d / "missing.json"}, "does not exist", id="missing"
        ),
        pytest.param(
            {"credentials_path": file_with({**GOOD, "session_token": SECRET})},
            "unknown field 'session_token'",
            id="unknown-field",
        ),
        pytest.param(
            {"credentials_path": file_with(NO_SECRET)},
            "field 'secret_access_key' is missing",
            id="no-secret",
        ),
        pytest.param(
            {"credentials_path": file_with({**GOOD, "region": SECRET})},
            "field 'region' is not an AWS region name",
            id="secret-as-region",
        ),
        pytest.param({"region": "Frankfurt"}, "not an AWS region name", id="region"),
        pytest.param({"key_alias": "alias/aws/ebs"}, "AWS managed key", id="key-alias"),
        pytest.param({"encrypted_key_variable": "A=B"}, "environment variable name", id="variable"),
    ]
    secret_values = (SECRET, ACCESS_KEY)

    @pytest.fixture
    def valid_options(self, tmp_path: Path) -> dict[str, object]:
        return {"credentials_path": write(tmp_path / "kms.json", GOOD), "region": "eu-west-1"}

    def test_region_from_aws_region_is_validated_in_every_state(
        self, state: str, valid_options: dict[str, object], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("AWS_REGION", "Frankfurt")
        options = {"credentials_path": valid_options["credentials_path"]}
        with pytest.raises(
            ConfigError, match=r"'region' of provider 'aws-kms' \(from AWS_REGION\)"
        ):
            self.load_in_state(state, options)


# -- the credentials file ----------------------------------------------------------------


def test_acra_credentials_file_is_read(tmp_path: Path) -> None:
    path = write(tmp_path / "kms.json", {**GOOD, "endpoint": "http://localstack:4566"})
    credentials = load_credentials(path)
    assert credentials == AwsKmsCredentials(
        ACCESS_KEY, SECRET, "eu-west-2", "http://localstack:4566"
    )
    assert SECRET not in repr(credentials)
    assert ACCESS_KEY not in repr(credentials)


def test_field_names_match_case_insensitively_like_go(tmp_path: Path) -> None:
    path = write(
        tmp_path / "kms.json",
        {"Access_Key_ID": ACCESS_KEY, "SECRET_ACCESS_KEY": SECRET, "Region": "us-east-1"},
    )
    assert load_credentials(path).region == "us-east-1"
    assert (
        load_credentials(write(tmp_path / "null.json", {**GOOD, "endpoint": None})).endpoint is None
    )


BAD_FILES: list[tuple[str, object, str]] = [
    ("not-json", "{'access_key_id': 1}", "is not valid JSON"),
    ("empty", "", "is not valid JSON"),
    ("array", [GOOD], "does not hold a JSON object"),
    ("unknown", {**GOOD, "session_token": SECRET}, "unknown field 'session_token'"),
    ("twice", '{"region": "eu-west-1", "REGION": "eu-west-2"}', "'region' is given twice"),
    ("no-access-key", {"secret_access_key": SECRET, "region": "eu-west-1"}, "'access_key_id'"),
    ("no-secret", NO_SECRET, "'secret_access_key'"),
    ("no-region", {"access_key_id": ACCESS_KEY, "secret_access_key": SECRET}, "'region'"),
    ("secret-number", {**GOOD, "secret_access_key": 12345}, "'secret_access_key' must be"),
    ("secret-blank", {**GOOD, "secret_access_key": "  "}, "'secret_access_key' must be"),
    ("bad-region", {**GOOD, "region": SECRET}, "'region' is not an AWS region"),
    ("bad-endpoint", {**GOOD, "endpoint": f"ftp://{SECRET}@host"}, "'endpoint' must be"),
    ("endpoint-no-host", {**GOOD, "endpoint": "https://"}, "'endpoint' must be"),
    ("endpoint-bad-port", {**GOOD, "endpoint": "https://kms:99999"}, "'endpoint' must be"),
]


@pytest.mark.parametrize(("label", "content", "expected"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_credentials_files_name_the_file_and_field_never_a_value(
    label: str, content: object, expected: str, tmp_path: Path
) -> None:
    path = write(tmp_path / f"{label}.json", content)
    with pytest.raises(ConfigError) as excinfo:
        load_credentials(path)
    message = str(excinfo.value)
    assert str(path) in message
    assert expected in message
    assert SECRET not in message
    assert ACCESS_KEY not in message


def test_a_credentials_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"region": "\xe9"}')
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_credentials(path)


def test_a_huge_file_is_not_a_credentials_file(tmp_path: Path) -> None:
    path = write(tmp_path / "huge.json", {**GOOD, "endpoint": "https://kms/" + "x" * 70_000})
    with pytest.raises(ConfigError, match="larger than"):
        load_credentials(path)


def test_missing_and_directory_paths(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist: create it .*or fix the path"):
        load_credentials(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="is not a regular file"):
        load_credentials(tmp_path)


# -- the other options ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "alias",
    [
        "alias/acra_master_key",
        "alias/team/acra-key_2",
        "arn:aws:kms:eu-west-1:111122223333:alias/acra_master_key",
        "arn:aws-us-gov:kms:us-gov-west-1:111122223333:alias/acra",
    ],
)
def test_key_aliases_accepted(alias: str) -> None:
    assert option("key_alias").convert(alias, origin="key_alias") == alias


@pytest.mark.parametrize(
    ("alias", "expected"),
    [
        ("acra_master_key", "not a KMS key alias"),
        ("alias/", "not a KMS key alias"),
        ("alias/acra key", "not a KMS key alias"),
        ("1234abcd-12ab-34cd-56ef-1234567890ab", "not a KMS key alias"),
        ("alias/aws/ebs", "AWS managed key"),
        ("arn:aws:kms:eu-west-1:111122223333:alias/aws/s3", "AWS managed key"),
        ("arn:aws:kms:eu-west-1:1111:alias/acra", "not a KMS key alias"),
    ],
)
def test_key_aliases_refused(alias: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        option("key_alias").convert(alias, origin="key_alias")


@pytest.mark.parametrize("region", ["eu-west-1", "us-gov-west-1", "ap-southeast-4", "cn-north-1"])
def test_regions_accepted(region: str) -> None:
    assert option("region").convert(region, origin="region") == region


@pytest.mark.parametrize("region", ["", "eu-west", "EU-WEST-1", "eu_west_1", "eu-west-1 "])
def test_regions_refused(region: str) -> None:
    with pytest.raises(ConfigError, match="not an AWS region name"):
        option("region").convert(region, origin="region")


@pytest.mark.parametrize("variable", ["", "A=B", "NUL\0"])
def test_encrypted_key_variable_must_be_a_variable_name(variable: str) -> None:
    with pytest.raises(ConfigError, match="environment variable name"):
        option("encrypted_key_variable").convert(variable, origin="encrypted_key_variable")
