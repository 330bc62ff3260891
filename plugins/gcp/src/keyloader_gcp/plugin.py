"""The ``gcp-kms`` provider placeholder: name, description and option schema, no Google SDK.

Google Cloud KMS is an Enterprise Edition provider. This open-source package
registers it so it is listed, documented and its options validated; the core's
enterprise gate decides what selecting it does (docs/enterprise.md). An implementation
registers a non-placeholder provider named ``gcp-kms`` that takes these options,
most simply by subclassing :class:`GcpKmsPlaceholder` with ``placeholder = False``.

Like the AWS provider, the master key's KMS ciphertext sits base64 in an
environment variable (``ACRA_MASTER_KEY``); ``key_name`` is the Cloud KMS
crypto key that decrypts it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from keyloader import hookimpl
from keyloader.providers import Option, PlaceholderProvider

from .credentials import check_credentials_file

if TYPE_CHECKING:
    from keyloader.providers import MasterKeyProvider

__all__ = [
    "DEFAULT_ENCRYPTED_KEY_VARIABLE",
    "KEY_NAME_FORMAT",
    "PROVIDER_NAME",
    "GcpKmsPlaceholder",
    "check_key_name",
    "keyloader_master_key_providers",
]

PROVIDER_NAME = "gcp-kms"
DEFAULT_ENCRYPTED_KEY_VARIABLE = "ACRA_MASTER_KEY"
KEY_NAME_FORMAT = "projects/PROJECT/locations/LOCATION/keyRings/RING/cryptoKeys/KEY"
"""The resource name of a Cloud KMS crypto key."""

_KEY_NAME = re.compile(
    r"projects/(?P<project>[a-z0-9][a-z0-9.:-]{0,62})"
    r"/locations/(?P<location>[a-z0-9][a-z0-9-]{0,62})"
    r"/keyRings/(?P<ring>[A-Za-z0-9_-]{1,63})"
    r"/cryptoKeys/(?P<key>[A-Za-z0-9_-]{1,63})"
)


def check_key_name(key_name: str) -> None:
    """Refuse text that is not a Cloud KMS crypto key name; raises ``ValueError``."""
    if _KEY_NAME.fullmatch(key_name):
        return
    hint = ""
    if "/cryptoKeyVersions/" in key_name:
        hint = " without /cryptoKeyVersions/N (Cloud KMS finds the version in the ciphertext)"
    raise ValueError(
        f"{key_name!r} is not a Cloud KMS crypto key name: use {KEY_NAME_FORMAT}{hint}, "
        f"where RING and KEY are 1 to 63 letters, digits, '_' or '-'"
    )


def _check_credentials_path(path: Path) -> None:
    check_credentials_file(path)  # ConfigError is a ValueError: Option.convert names the option


def _check_variable_name(name: str) -> None:
    if not name or "=" in name or "\0" in name:
        raise ValueError("must be an environment variable name (not empty, no '=')")


class GcpKmsPlaceholder(PlaceholderProvider):
    """Open-source placeholder of the Enterprise Edition ``gcp-kms`` provider."""

    name: ClassVar[str] = PROVIDER_NAME
    description: ClassVar[str] = (
        "Master key decrypted by Google Cloud KMS: an environment variable, ACRA_MASTER_KEY "
        "by default, holds its Cloud KMS ciphertext in base64"
    )
    options: ClassVar[tuple[Option, ...]] = (
        Option(
            "key_name",
            f"Cloud KMS crypto key that decrypts the master key: {KEY_NAME_FORMAT}.",
            required=True,
            validator=check_key_name,
        ),
        Option(
            "credentials_path",
            "Google credentials JSON file (a service account key, or another Application "
            "Default Credentials file); without it, Application Default Credentials are used. "
            "Checked when given.",
            type="path",
            env=("GOOGLE_APPLICATION_CREDENTIALS",),
            validator=_check_credentials_path,
        ),
        Option(
            "encrypted_key_variable",
            "Environment variable holding the base64 Cloud KMS ciphertext of the master key "
            "(its plaintext: the raw v1 key, or a v2 JSON pair).",
            default=DEFAULT_ENCRYPTED_KEY_VARIABLE,
            validator=_check_variable_name,
        ),
    )


@hookimpl
def keyloader_master_key_providers() -> list[type[MasterKeyProvider]]:
    """The ``gcp-kms`` placeholder."""
    return [GcpKmsPlaceholder]
