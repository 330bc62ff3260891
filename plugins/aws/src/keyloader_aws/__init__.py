"""keyloader-aws: the open-source placeholder of the Enterprise Edition ``aws-kms`` provider."""

from __future__ import annotations

from .credentials import AwsKmsCredentials as AwsKmsCredentials
from .credentials import load_credentials as load_credentials
from .plugin import AwsKmsPlaceholder as AwsKmsPlaceholder

__all__ = ["AwsKmsCredentials", "AwsKmsPlaceholder", "load_credentials"]
