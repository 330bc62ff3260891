"""The ``aws-kms`` provider placeholder: name, description and option schema, no AWS SDK.

AWS KMS is an Enterprise Edition provider. This plugin registers its
placeholder, so it is listed, documented and its options validated; the core's
enterprise gate decides what selecting it does (docs/enterprise.md). The real
provider (:mod:`keyloader_aws.kms_plugin`, installed with the ``kms`` extra,
which brings boto3) subclasses :class:`AwsKmsPlaceholder` with ``placeholder =
False`` and replaces it; so can any other implementation.

The options mirror Acra's ``kms_encrypted_master_key`` strategy: the master
key's AWS KMS ciphertext, base64, in ``ACRA_MASTER_KEY``; the KMS key alias
``alias/acra_master_key``; credentials in the JSON file of ``--kms_credentials_path``
(or, without it, the standard AWS credential chain).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from keyloader import hookimpl
from keyloader.providers import Option, PlaceholderProvider

if TYPE_CHECKING:
    from keyloader.providers import MasterKeyProvider

__all__ = [
    "DEFAULT_ENCRYPTED_KEY_VARIABLE",
    "DEFAULT_KEY_ALIAS",
    "DEFAULT_TIMEOUT",
    "INSTALL_HINT",
    "PROVIDER_NAME",
    "AwsKmsPlaceholder",
    "keyloader_master_key_providers",
]

PROVIDER_NAME = "aws-kms"
DEFAULT_KEY_ALIAS = "alias/acra_master_key"
"""Acra's KMS key for the master key (``AcraMasterKeyKEKID`` behind ``alias/``)."""
DEFAULT_ENCRYPTED_KEY_VARIABLE = "ACRA_MASTER_KEY"
DEFAULT_TIMEOUT = 30.0
"""Seconds one load or store may take, retries included (Vault's default too)."""
INSTALL_HINT = "pip install 'keyloader-aws[kms]'"
"""What installs the real provider: this package with boto3."""

_ALIAS_NAME = r"alias/[A-Za-z0-9/_-]{1,250}"
_KEY_ALIAS = re.compile(rf"{_ALIAS_NAME}|arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{{12}}:{_ALIAS_NAME}")


def _check_credentials_path(path: Path) -> None:
    from .credentials import load_credentials  # here: listing providers needs no parser

    load_credentials(path)  # ConfigError is a ValueError: Option.convert names the option


def _check_region(region: str) -> None:
    from .credentials import check_region

    check_region(region)


def _check_key_alias(alias: str) -> None:
    if not _KEY_ALIAS.fullmatch(alias):
        raise ValueError(
            f"{alias!r} is not a KMS key alias: use alias/NAME (NAME of letters, digits, "
            f"'/', '_' and '-'; Acra's is {DEFAULT_KEY_ALIAS}) or an alias ARN"
        )
    if alias.split(":")[-1].startswith("alias/aws/"):
        raise ValueError(
            f"{alias!r} names an AWS managed key, which cannot be used directly: use the "
            f"alias of a customer managed key, such as {DEFAULT_KEY_ALIAS}"
        )


def _check_variable_name(name: str) -> None:
    if not name or "=" in name or "\0" in name:
        raise ValueError("must be an environment variable name (not empty, no '=')")


def _check_endpoint(url: str) -> None:
    from .credentials import check_endpoint

    check_endpoint(url)


def _check_timeout(seconds: float) -> None:
    if not 0 < seconds <= 3600:
        raise ValueError("must be a number of seconds above 0 and at most 3600")


def _check_retries(count: int) -> None:
    if not 0 <= count <= 10:
        raise ValueError("must be a whole number from 0 to 10")


class AwsKmsPlaceholder(PlaceholderProvider):
    """Open-source placeholder of the Enterprise Edition ``aws-kms`` provider."""

    name: ClassVar[str] = PROVIDER_NAME
    aliases: ClassVar[tuple[str, ...]] = ("kms_encrypted_master_key",)
    description: ClassVar[str] = (
        "Master key decrypted by AWS KMS, Acra's kms_encrypted_master_key strategy: an "
        "environment variable, ACRA_MASTER_KEY by default, holds its KMS ciphertext in base64"
    )
    install_hint: ClassVar[str] = (
        f"the real provider installs with `{INSTALL_HINT}` (it brings boto3)"
    )
    options: ClassVar[tuple[Option, ...]] = (
        Option(
            "credentials_path",
            "Acra's AWS KMS credentials file (--kms_credentials_path): JSON with "
            "access_key_id, secret_access_key, region and optional endpoint. Checked when "
            "given; without it, the standard AWS credential chain (environment, profile, role).",
            type="path",
            validator=_check_credentials_path,
        ),
        Option(
            "region",
            "AWS region of the KMS key, such as eu-west-1; overrides the credentials file's "
            "region.",
            env=("AWS_REGION", "AWS_DEFAULT_REGION"),
            validator=_check_region,
        ),
        Option(
            "key_alias",
            "KMS key that decrypts the master key: alias/NAME or an alias ARN.",
            default=DEFAULT_KEY_ALIAS,
            validator=_check_key_alias,
        ),
        Option(
            "encrypted_key_variable",
            "Environment variable holding the base64 KMS ciphertext of the master key "
            "(its plaintext: the raw v1 key, or a v2 JSON pair, as Acra encrypts it).",
            default=DEFAULT_ENCRYPTED_KEY_VARIABLE,
            validator=_check_variable_name,
        ),
        Option(
            "endpoint",
            "KMS endpoint URL (a VPC endpoint, LocalStack); overrides the credentials "
            "file's endpoint. Default: the region's AWS endpoint.",
            env=("AWS_ENDPOINT_URL_KMS", "AWS_ENDPOINT_URL"),
            validator=_check_endpoint,
        ),
        Option(
            "ca_bundle",
            "PEM file of the CAs that verify the endpoint's certificate. Default: botocore's.",
            type="path",
            env=("AWS_CA_BUNDLE",),
        ),
        Option(
            "timeout",
            "Seconds a whole load or store may take, retries included.",
            type="float",
            default=DEFAULT_TIMEOUT,
            validator=_check_timeout,
        ),
        Option(
            "retries",
            "Retries after a connection failure, a throttled request or a KMS server error.",
            type="int",
            default=2,
            validator=_check_retries,
        ),
    )


@hookimpl
def keyloader_master_key_providers() -> list[type[MasterKeyProvider]]:
    """The ``aws-kms`` placeholder (replaced by the real provider when boto3 is installed)."""
    return [AwsKmsPlaceholder]
