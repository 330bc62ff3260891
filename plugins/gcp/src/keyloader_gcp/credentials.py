"""Google credentials files: a light check of their shape, never showing their values.

A credentials file (``GOOGLE_APPLICATION_CREDENTIALS``) is a JSON object whose
``type`` says what it holds. The check refuses what Google's libraries would
refuse later: a missing file, text that is not a JSON object, an unknown
``type``, and a service account key or user credentials without their fields.
"""

from __future__ import annotations

from pathlib import Path

from keyloader.errors import ConfigError
from keyloader.files import read_json_object

__all__ = ["CREDENTIAL_TYPES", "REQUIRED_FIELDS", "check_credentials_file"]

CREDENTIAL_TYPES = (
    "service_account",
    "authorized_user",
    "external_account",
    "external_account_authorized_user",
    "impersonated_service_account",
    "gdch_service_account",
)
"""The ``type`` values of Google credentials files."""

REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "service_account": ("client_email", "private_key"),
    "authorized_user": ("client_id", "client_secret", "refresh_token"),
}
"""Fields checked for the common types (others are left to Google's libraries)."""

MAX_FILE_SIZE = 1024 * 1024
"""A credentials file larger than this is not one."""

_FORMAT = (
    "a Google credentials JSON file, such as a service account key "
    "(`gcloud iam service-accounts keys create`)"
)


def check_credentials_file(path: Path) -> str:
    """Check the credentials file at ``path``; return its ``type``.

    Raises :class:`ConfigError` (also a ``ValueError``) naming the file and the
    field at fault. Messages never contain a field's value.
    """
    where = f"Google credentials file {path}"
    data = dict(read_json_object(path, where, max_size=MAX_FILE_SIZE, expected=_FORMAT))
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ConfigError(f"{where}: field 'type' is missing or not a string: it must be {_FORMAT}")
    if kind not in CREDENTIAL_TYPES:
        raise ConfigError(
            f"{where}: field 'type' is not a known credentials type; known types: "
            f"{', '.join(CREDENTIAL_TYPES)}"
        )
    for name in REQUIRED_FIELDS.get(kind, ()):
        value = data.get(name)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(
                f"{where}: field {name!r} is missing or empty; a {kind} file needs "
                f"{', '.join(REQUIRED_FIELDS[kind])}"
            )
    return kind
