"""Registers a non-placeholder ``aws-kms``; it does not set ``enterprise``, the name gates it."""

from __future__ import annotations

from typing import ClassVar, NoReturn

import keyloader
from keyloader.errors import ProviderUnavailableError
from keyloader.providers import MasterKeyProvider


class AwsKmsProvider(MasterKeyProvider):
    name: ClassVar[str] = "aws-kms"
    description: ClassVar[str] = "Master key encrypted with AWS KMS"

    def load(self) -> NoReturn:
        raise ProviderUnavailableError("provider 'aws-kms' (test implementation) has no KMS")


@keyloader.hookimpl
def keyloader_master_key_providers() -> list[type[MasterKeyProvider]]:
    return [AwsKmsProvider]
