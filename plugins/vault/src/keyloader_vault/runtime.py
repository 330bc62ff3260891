"""One load or store against Vault: credentials, login, locate, read or write, typed errors.

Imported only when a provider is first used (it imports hvac through ``transport``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import hvac.exceptions
import requests

from .auth import Credentials, resolve_credentials
from .config import VaultConfig
from .failures import Context, scrub, translate
from .kv import SecretLocation, field_text, locate, read_as_kv2, read_fields, write_field
from .transport import GaveUp, VaultTransport

__all__ = ["read_key_text", "write_key_text"]

_Result = TypeVar("_Result")
_FAILURES = (hvac.exceptions.VaultError, requests.exceptions.RequestException, GaveUp)


class _Operation:
    """The step being run, so that an error says what failed."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        self.step = "login"


def read_key_text(transport: VaultTransport, config: VaultConfig) -> str:
    """The text of the master-key field: one request with a token on a KV v2 mount (auto) or
    with kv_version pinned; with auto and anything else, the mount is detected first."""

    def action(client: Any, operation: _Operation) -> str:
        operation.step = "locate"
        guessed = read_as_kv2(client, config) if config.kv_version == "auto" else None
        if guessed is not None:
            location, fields = guessed
        else:
            location = _locate(transport, client, config)
            operation.step = "read"
            fields = read_fields(client, location, config.secret_version)
        try:
            return field_text(fields, config.field, location, config.where)
        finally:
            fields.clear()

    return _run(transport, config, action)


def write_key_text(
    transport: VaultTransport, config: VaultConfig, text: str, *, force: bool
) -> None:
    """Write the master-key field, keeping the secret's other fields (KV v2 check-and-set)."""

    def action(client: Any, operation: _Operation) -> None:
        operation.step = "locate"
        location = _locate(transport, client, config)
        operation.step = "write"
        write_field(client, location, config.field, text, force=force, where=config.where)

    _run(transport, config, action)


def _locate(transport: VaultTransport, client: Any, config: VaultConfig) -> SecretLocation:
    """The secret's location; a pinned kv_version's is computed once per transport."""
    if config.kv_version == "auto":
        return locate(client, config)
    if transport.pinned is None:
        transport.pinned = locate(client, config)
    location: SecretLocation = transport.pinned
    return location


def _run(
    transport: VaultTransport,
    config: VaultConfig,
    action: Callable[[Any, _Operation], _Result],
) -> _Result:
    """Authenticate, run ``action`` under the deadline, and translate failures outside ``except``.

    Raising outside the ``except`` block keeps the original exception (whose request
    carries the token) out of ``__context__``; ``__cause__`` is a scrubbed copy.
    """
    credentials = resolve_credentials(config)
    operation = _Operation(credentials)
    failure: BaseException | None = None
    secrets: tuple[str, ...] = ()
    client = transport.begin()
    try:
        try:
            if credentials.role_id is not None:
                client.auth.approle.login(
                    role_id=credentials.role_id,
                    secret_id=credentials.secret_id,
                    mount_point=config.approle_mount,
                )
            else:
                transport.token = credentials.token or ""
            return action(client, operation)
        except _FAILURES as exc:
            failure = exc
            secrets = (*credentials.secrets, transport.token)
    finally:
        transport.end()
    assert failure is not None
    context = Context(
        where=config.where,
        path=config.secrets_path,
        step=operation.step,
        timeout=config.timeout,
        auth_source=credentials.source,
        approle_mount=config.approle_mount,
        secret_version=config.secret_version,
        secrets=tuple(secret for secret in secrets if secret),
    )
    error = translate(failure, context)
    cause = scrub(failure, context.secrets)
    del failure
    if error is None:  # pragma: no cover - _FAILURES are all translated
        raise cause
    raise error from cause
