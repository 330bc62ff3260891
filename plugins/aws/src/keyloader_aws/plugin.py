"""The ``aws-kms`` provider placeholder: name, description and option schema, no AWS SDK.

AWS KMS is an Enterprise Edition provider. This open-source package registers
it so it is listed, documented and its options validated; the core's
enterprise gate decides what selecting it does (docs/enterprise.md). An implementation
registers a non-placeholder provider named ``aws-kms`` that takes these options,
most simply by subclassing :class:`AwsKmsPlaceholder` with ``placeholder = False``.

The options mirror Acra's ``kms_encrypted_master_key`` strategy: the master
key's AWS KMS ciphertext, base64, in ``ACRA_MASTER_KEY``; the KMS key alias
``alias/acra_master_key``; credentials in the JSON file of ``--kms_credentials_path``.
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
    "PROVIDER_NAME",
    "AwsKmsPlaceholder",
    "keyloader_master_key_providers",
]

PROVIDER_NAME = "aws-kms"
DEFAULT_KEY_ALIAS = "alias/acra_master_key"
"""Acra's KMS key for the master key (``AcraMasterKeyKEKID`` behind ``alias/``)."""
DEFAULT_ENCRYPTED_KEY_VARIABLE = "ACRA_MASTER_KEY"

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


class AwsKmsPlaceholder(PlaceholderProvider):
    """Open-source placeholder of the Enterprise Edition ``aws-kms`` provider."""

    name: ClassVar[str] = PROVIDER_NAME
    aliases: ClassVar[tuple[str, ...]] = ("kms_encrypted_master_key",)
    description: ClassVar[str] = (
        "Master key decrypted by AWS KMS, Acra's kms_encrypted_master_key strategy: an "
        "environment variable, ACRA_MASTER_KEY by default, holds its KMS ciphertext in base64"
    )
    options: ClassVar[tuple[Option, ...]] = (
        Option(
            "credentials_path",
            "Acra's AWS KMS credentials file (--kms_credentials_path): JSON with "
            "access_key_id, secret_access_key, region and optional endpoint. Checked when given.",
            type="path",
            required=True,
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
    )


@hookimpl
def keyloader_master_key_providers() -> list[type[MasterKeyProvider]]:
    """The ``aws-kms`` placeholder."""
    return [AwsKmsPlaceholder]
