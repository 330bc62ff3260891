"""Acra's AWS KMS credentials file: reading and checking it, never showing its values.

The file is what Acra's ``--kms_credentials_path`` names: a JSON object with
``access_key_id``, ``secret_access_key``, ``region`` and an optional
``endpoint`` (a KMS-compatible endpoint such as LocalStack). Like Go's
``encoding/json``, which Acra uses, field names match case-insensitively.
Unknown fields are refused here, so a typo is caught before it matters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from keyloader.errors import ConfigError
from keyloader.files import read_json_object

__all__ = [
    "CREDENTIALS_FIELDS",
    "REQUIRED_FIELDS",
    "AwsKmsCredentials",
    "check_endpoint",
    "check_region",
    "load_credentials",
]

REQUIRED_FIELDS = ("access_key_id", "secret_access_key", "region")
"""Fields every credentials file must give."""

CREDENTIALS_FIELDS = (*REQUIRED_FIELDS, "endpoint")
"""Every field a credentials file may give."""

MAX_FILE_SIZE = 64 * 1024
"""A credentials file larger than this is not one."""

_REGION = re.compile(r"[a-z]{2}(?:-[a-z0-9]+)+-[0-9]+")
_FORMAT = (
    "a JSON object with access_key_id, secret_access_key, region and optional endpoint, "
    "as Acra's --kms_credentials_path reads it"
)


@dataclass(frozen=True)
class AwsKmsCredentials:
    """The fields of a credentials file; ``repr`` hides the access keys."""

    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    region: str
    endpoint: str | None = None


def check_region(region: str) -> None:
    """Refuse text that is not an AWS region name (``eu-west-1``); raises ``ValueError``."""
    if not _REGION.fullmatch(region):
        raise ValueError(f"{region!r} is not an AWS region name such as eu-west-1")


def load_credentials(path: Path) -> AwsKmsCredentials:
    """Read and check the credentials file at ``path``.

    Raises :class:`ConfigError` (also a ``ValueError``) naming the file and the
    field at fault: missing file, not JSON, unknown, repeated or missing field,
    a field that is not a non-empty string, a bad region or endpoint. Messages
    never contain a field's value.
    """
    fields = read_json_object(
        path, f"AWS KMS credentials file {path}", max_size=MAX_FILE_SIZE, expected=_FORMAT
    )
    values: dict[str, object] = {}
    for name, value in fields:
        known = name.lower()
        if known not in CREDENTIALS_FIELDS:
            raise ConfigError(
                f"AWS KMS credentials file {path}: unknown field {name!r}; known fields: "
                f"{', '.join(CREDENTIALS_FIELDS)}"
            )
        if known in values:
            raise ConfigError(
                f"AWS KMS credentials file {path}: field {known!r} is given twice; keep one"
            )
        values[known] = value
    for name in REQUIRED_FIELDS:
        if name not in values:
            raise ConfigError(
                f"AWS KMS credentials file {path}: field {name!r} is missing; the file must be "
                f"{_FORMAT}"
            )
    text = {name: _text(path, name, values[name]) for name in REQUIRED_FIELDS}
    try:
        check_region(text["region"])
    except ValueError:
        raise ConfigError(
            f"AWS KMS credentials file {path}: field 'region' is not an AWS region name "
            f"such as eu-west-1"
        ) from None
    endpoint = values.get("endpoint")
    if endpoint is not None:
        endpoint = _text(path, "endpoint", endpoint)
        _check_endpoint(path, endpoint)
    return AwsKmsCredentials(
        access_key_id=text["access_key_id"],
        secret_access_key=text["secret_access_key"],
        region=text["region"],
        endpoint=endpoint,
    )


def _text(path: Path, name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"AWS KMS credentials file {path}: field {name!r} must be a non-empty string"
        )
    return value


def check_endpoint(endpoint: str) -> None:
    """Refuse text that is not an ``http://`` or ``https://`` URL with a host; ``ValueError``."""
    try:
        parts = urlsplit(endpoint)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            "must be an http:// or https:// URL with a host (such as "
            "https://kms.eu-west-1.amazonaws.com)"
        )


def _check_endpoint(path: Path, endpoint: str) -> None:
    try:
        check_endpoint(endpoint)
    except ValueError as exc:
        raise ConfigError(f"AWS KMS credentials file {path}: field 'endpoint' {exc}") from None
