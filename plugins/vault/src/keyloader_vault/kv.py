"""KV secrets: where a path lives (engine version, mount), reading and writing one field.

Imported only when a provider is first used: the calls go through an hvac client.
hvac and requests errors propagate; the provider translates them (``failures``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import hvac
import hvac.exceptions

from keyloader.errors import ConfigError, KeyExistsError, MasterKeyNotFoundError

from .config import VaultConfig
from .jsonfield import Path
from .options import split_path

__all__ = [
    "SecretLocation",
    "field_path",
    "field_paths",
    "field_text",
    "locate",
    "read_as_kv2",
    "read_fields",
    "write_field",
]

_UI_MOUNTS = "/v1/sys/internal/ui/mounts/"


@dataclass(frozen=True)
class SecretLocation:
    """A secret: its KV engine's mount and version, and its path inside the mount."""

    mount: str
    path: str
    kv_version: int

    @property
    def full_path(self) -> str:
        return f"{self.mount}/{self.path}"


def locate(client: hvac.Client, config: VaultConfig) -> SecretLocation:
    """Where ``secrets_path`` lives: asked from Vault with ``kv_version`` auto, else computed.

    Pinned: the mount is the ``mount`` option or the first path segment, no request.
    Auto: ``GET sys/internal/ui/mounts/<path>`` (finds nested mounts such as ``team/kv``).
    """
    segments = split_path(config.secrets_path)
    if config.kv_version != "auto":
        mount_segments = split_path(config.mount) if config.mount else segments[:1]
        return _location(config, "/".join(mount_segments), int(config.kv_version))
    answer = client.adapter.get(_UI_MOUNTS + quote(config.secrets_path))
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("path"), str):
        raise ConfigError(
            f"{config.where} did not say which secrets engine serves {config.secrets_path!r}: "
            f"set kv_version (1 or 2) and mount"
        )
    engine = data.get("type")
    mount = "/".join(split_path(data["path"]))
    if engine not in ("kv", "generic"):
        raise ConfigError(
            f"{config.where}: {config.secrets_path!r} is served by a {engine!r} engine mounted "
            f"at {mount}/, not a KV engine: point secrets_path at a KV secret"
        )
    options = data.get("options")
    version = options.get("version") if isinstance(options, dict) else None
    return _location(config, mount, 2 if str(version) == "2" else 1)


# What a guessed KV v2 read can answer when the guess is wrong (another mount, KV v1, no
# mount there): the precise answer then comes from the detection and the real read.
_WRONG_GUESS = (
    hvac.exceptions.InvalidPath,
    hvac.exceptions.Forbidden,
    hvac.exceptions.InvalidRequest,
    hvac.exceptions.UnsupportedOperation,
)


def read_as_kv2(
    client: hvac.Client, config: VaultConfig
) -> tuple[SecretLocation, dict[str, Any]] | None:
    """With ``kv_version`` auto, one request for the common case: read the secret as if its
    first segment (or ``mount``) were a KV v2 mount. None when that is not what Vault
    answers (nested mount, KV v1, missing, denied): the caller then locates the secret and
    reads it, and reports exactly what is wrong."""
    segments = split_path(config.secrets_path)
    mount = "/".join(split_path(config.mount)) if config.mount else segments[0] if segments else ""
    try:
        location = _location(config, mount, 2)
    except ConfigError:
        return None
    try:
        answer = client.secrets.kv.v2.read_secret_version(
            path=location.path,
            version=config.secret_version,
            mount_point=location.mount,
            raise_on_deleted_version=True,
        )
    except _WRONG_GUESS:
        return None
    outer = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(outer, dict):
        return None
    fields, metadata = outer.get("data"), outer.get("metadata")
    if not (isinstance(fields, dict) and isinstance(metadata, dict)):  # a KV v1 "data/..." secret
        return None
    return location, fields


def _location(config: VaultConfig, mount: str, kv_version: int) -> SecretLocation:
    segments = split_path(config.secrets_path)
    mount_segments = split_path(mount)
    if segments[: len(mount_segments)] != mount_segments:
        raise ConfigError(
            f"{config.where}: secrets_path {config.secrets_path!r} is not under the mount "
            f"{mount}/: secrets_path is <mount>/<path>"
        )
    rest = segments[len(mount_segments) :]
    if not rest:
        raise ConfigError(
            f"option 'secrets_path' of provider 'vault' names the KV mount {mount}/ itself, "
            f"not a secret in it: set it to <mount>/<secret>, e.g. {mount}/acra (Acra's "
            f"default 'secret/' names only the mount)"
        )
    if config.secret_version is not None and kv_version != 2:
        raise ConfigError(
            f"{config.where}: option 'secret_version' needs a KV v2 engine, but {mount}/ is "
            f"KV v1: drop secret_version"
        )
    return SecretLocation(mount, "/".join(rest), kv_version)


def read_fields(
    client: hvac.Client, location: SecretLocation, version: int | None
) -> dict[str, Any]:
    """The secret's fields (KV v2: the given version, else the latest; deleted raises 404)."""
    if location.kv_version == 2:
        answer = client.secrets.kv.v2.read_secret_version(
            path=location.path,
            version=version,
            mount_point=location.mount,
            raise_on_deleted_version=True,
        )
        outer = answer.get("data") if isinstance(answer, dict) else None
        fields = outer.get("data") if isinstance(outer, dict) else None
    else:
        answer = client.secrets.kv.v1.read_secret(path=location.path, mount_point=location.mount)
        fields = answer.get("data") if isinstance(answer, dict) else None
    return fields if isinstance(fields, dict) else {}


def write_field(
    client: hvac.Client,
    location: SecretLocation,
    field: str,
    text: str,
    *,
    force: bool,
    where: str,
) -> None:
    """Set one field, keeping the others; KV v2 writes with check-and-set.

    An existing ``field`` is :class:`KeyExistsError` unless ``force``. KV v2
    writes with ``cas`` = the current version (0 when absent), so a concurrent
    writer makes Vault answer 400, which the provider reports as ``KeyExistsError``.
    """
    current_version = 0
    fields: dict[str, Any] = {}
    if location.kv_version == 2:
        try:
            answer = client.secrets.kv.v2.read_secret_version(
                path=location.path, mount_point=location.mount, raise_on_deleted_version=False
            )
        except hvac.exceptions.InvalidPath:
            answer = None
        outer = answer.get("data") if isinstance(answer, dict) else None
        if isinstance(outer, dict):
            metadata = outer.get("metadata")
            if isinstance(metadata, dict) and isinstance(metadata.get("version"), int):
                current_version = metadata["version"]
            if isinstance(outer.get("data"), dict):
                fields = dict(outer["data"])
    else:
        try:
            answer = client.secrets.kv.v1.read_secret(
                path=location.path, mount_point=location.mount
            )
        except hvac.exceptions.InvalidPath:
            answer = None
        if isinstance(answer, dict) and isinstance(answer.get("data"), dict):
            fields = dict(answer["data"])
    if field in fields and not force:
        raise KeyExistsError(
            f"secret {location.full_path!r} in {where} already holds field {field!r}: "
            f"replacing a master key orphans every key sealed with it; pass force "
            f"(`keyloader master-key store --force`) to replace it"
        )
    fields[field] = text
    try:
        if location.kv_version == 2:
            client.secrets.kv.v2.create_or_update_secret(
                path=location.path, secret=fields, cas=current_version, mount_point=location.mount
            )
        else:
            client.secrets.kv.v1.create_or_update_secret(
                path=location.path, secret=fields, method="PUT", mount_point=location.mount
            )
    finally:
        fields.clear()


def field_path(kv_version: int, field: str) -> Path:
    """Where ``field`` of a secret is in a read's answer: ``data.<field>`` (KV v1) or
    ``data.data.<field>`` (KV v2)."""
    name = field.encode("utf-8", "surrogatepass")
    return (b"data", b"data", name) if kv_version == 2 else (b"data", name)


def field_paths(field: str) -> tuple[Path, Path]:
    """Where ``field`` may be in a read's answer, KV v2 and KV v1 (a guess reads both)."""
    return field_path(2, field), field_path(1, field)


def field_text(fields: dict[str, Any], field: str, location: SecretLocation, where: str) -> str:
    """The text of ``field``; a missing or non-string field is :class:`MasterKeyNotFoundError`.

    When the transport took the value out of the answer (``jsonfield``), the text is
    its placeholder: the value is the one the transport holds.
    """
    if field not in fields:
        known = ", ".join(sorted(repr(name) for name in fields)) or "none"
        raise MasterKeyNotFoundError(
            f"secret {location.full_path!r} in {where} has no field {field!r} (its fields: "
            f"{known}): store the base64 master key there (`keyloader master-key store`), or "
            f"set option 'field'"
        )
    value = fields[field]
    if not isinstance(value, str):
        raise MasterKeyNotFoundError(
            f"field {field!r} of secret {location.full_path!r} in {where} is not a string (it "
            f"is {_json_kind(value)}): it must hold the base64 text of the master key"
        )
    return value


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return "not text"
