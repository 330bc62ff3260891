"""An open-source placeholder for the enterprise ``aws-kms`` provider."""

from __future__ import annotations

from typing import ClassVar

import keyloader
from keyloader.providers import MasterKeyProvider, Option, PlaceholderProvider


class AwsKmsPlaceholder(PlaceholderProvider):
    name: ClassVar[str] = "aws-kms"
    description: ClassVar[str] = "Master key encrypted with AWS KMS (placeholder)"
    options: ClassVar[tuple[Option, ...]] = (Option("key_id", "The KMS key ARN."),)


@keyloader.hookimpl
def keyloader_master_key_providers() -> list[type[MasterKeyProvider]]:
    return [AwsKmsPlaceholder]
