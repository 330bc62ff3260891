"""Google credentials files: a light check of their shape, never showing their values.

A credentials file (``GOOGLE_APPLICATION_CREDENTIALS``) is a JSON object whose
``type`` says what it holds. The check refuses what Google's libraries would
refuse later: a missing file, text that is not a JSON object, an unknown
``type``, and a service account key or user credentials without their fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from keyloader.errors import ConfigError

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
    data = _read_object(path, where)
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


def _read_object(path: Path, where: str) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"{where} does not exist: create it ({_FORMAT}), or fix the path")
    if not path.is_file():
        raise ConfigError(f"{where} is not a regular file: give the path of the JSON file")
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_FILE_SIZE + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {where}: {exc.strerror or type(exc).__name__}") from None
    if len(raw) > MAX_FILE_SIZE:
        raise ConfigError(f"{where} is larger than {MAX_FILE_SIZE} bytes: it must be {_FORMAT}")
    import json  # here: only reading a credentials file needs it

    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{where} is not UTF-8 text: it must be {_FORMAT}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{where} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}): "
            f"it must be {_FORMAT}"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where} does not hold a JSON object: it must be {_FORMAT}")
    return data
