"""keyloader-gcp: the open-source placeholder of the Enterprise Edition ``gcp-kms`` provider."""

from __future__ import annotations

from .credentials import check_credentials_file as check_credentials_file
from .plugin import GcpKmsPlaceholder as GcpKmsPlaceholder
from .plugin import check_key_name as check_key_name

__all__ = ["GcpKmsPlaceholder", "check_credentials_file", "check_key_name"]
