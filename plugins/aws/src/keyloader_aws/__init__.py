"""keyloader-aws: the Enterprise Edition ``aws-kms`` provider, placeholder and (with boto3) real."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keyloader.lazy import lazy_exports

from .plugin import AwsKmsPlaceholder as AwsKmsPlaceholder

if TYPE_CHECKING:
    from .credentials import AwsKmsCredentials, load_credentials
    from .provider import AwsKmsProvider, KmsSettings

__all__ = [
    "AwsKmsCredentials",
    "AwsKmsPlaceholder",
    "AwsKmsProvider",
    "KmsSettings",
    "load_credentials",
]

# The credentials parser and the real provider load when first used, not when the plugin
# registers (the provider imports boto3 only when it first talks to KMS).
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AwsKmsCredentials": ".credentials",
        "load_credentials": ".credentials",
        "AwsKmsProvider": ".provider",
        "KmsSettings": ".provider",
    },
)
