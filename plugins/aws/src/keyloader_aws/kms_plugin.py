"""The plugin of the real ``aws-kms`` provider: registered only when boto3 is installed.

``pip install 'keyloader-aws[kms]'`` brings boto3; then this plugin's provider
replaces the placeholder that :mod:`keyloader_aws.plugin` registers (a
non-placeholder provider of the same name wins). Checking for boto3 does not
import it: ``keyloader --help`` and ``import keyloader`` stay free of AWS code.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from keyloader import hookimpl

if TYPE_CHECKING:
    from keyloader.providers import MasterKeyProvider

__all__ = ["SDK_MODULES", "keyloader_master_key_providers", "sdk_installed"]

SDK_MODULES = ("boto3", "botocore")


def sdk_installed() -> bool:
    """True if boto3 and botocore can be imported (found, not imported)."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in SDK_MODULES)
    except (ImportError, ValueError):  # a module set to None in sys.modules, a broken path
        return False


@hookimpl
def keyloader_master_key_providers() -> list[type[MasterKeyProvider]]:
    """The real ``aws-kms`` provider, or nothing when boto3 is missing."""
    if not sdk_installed():
        return []
    from .provider import AwsKmsProvider

    return [AwsKmsProvider]
