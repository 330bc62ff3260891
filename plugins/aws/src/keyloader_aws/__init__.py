"""keyloader-aws: the open-source placeholder of the Enterprise Edition ``aws-kms`` provider."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keyloader.lazy import lazy_exports

from .plugin import AwsKmsPlaceholder as AwsKmsPlaceholder

if TYPE_CHECKING:
    from .credentials import AwsKmsCredentials, load_credentials

__all__ = ["AwsKmsCredentials", "AwsKmsPlaceholder", "load_credentials"]

# The credentials parser loads when first used, not when the plugin registers.
__getattr__, __dir__ = lazy_exports(
    __name__, {"AwsKmsCredentials": ".credentials", "load_credentials": ".credentials"}
)
