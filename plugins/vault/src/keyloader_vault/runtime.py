"""One load or store against Vault: credentials, login, locate, read or write, typed errors.

Imported only when a provider is first used (it imports hvac through ``transport``).

While an operation runs, the transport takes the secret field's value (and an AppRole
login's token) out of every answer before hvac parses it (``jsonfield``): hvac's
``dict`` holds a placeholder, and the value comes from the transport, in secret pages.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

import hvac.exceptions
import requests

from keyloader.secret import SecretBytes

from .auth import Credentials, keeper_source, read_jwt, resolve_credentials
from .config import VaultConfig
from .failures import Context, scrub, translate
from .jsonfield import Capture, first_non_ascii
from .kv import (
    SecretLocation,
    field_path,
    field_paths,
    field_text,
    locate,
    read_as_kv2,
    read_fields,
    write_field,
)
from .tokens import LOGIN_TOKEN, LOOKUP_TOKEN, UNWRAPPED_SECRET_ID, Login
from .transport import GaveUp, VaultTransport

__all__ = ["read_key_text", "write_key_text"]

_Result = TypeVar("_Result")
_FAILURES = (hvac.exceptions.VaultError, requests.exceptions.RequestException, GaveUp)


class _Operation:
    """The step being run, so that an error says what failed."""

    def __init__(self, source: str) -> None:
        self.credentials = Credentials(source)
        self.step = "login"


def read_key_text(transport: VaultTransport, config: VaultConfig) -> SecretBytes | str:
    """The text of the master-key field: one request with a token on a KV v2 mount (auto) or
    with kv_version pinned; with auto and anything else, the mount is detected first.

    A ``SecretBytes`` the caller wipes; a ``str`` only when the value could not be taken
    out of the answer (an answer the tokenizer does not read: hvac's ``str``), or for a
    value with a non-ASCII character, which is no key's text: then ``A`` characters up to
    that one, on which :func:`~keyloader.masterkey.parse_master_key` raises the error it
    would raise on the value (its position), without the value.
    """

    def action(client: Any, operation: _Operation, capture: Capture) -> SecretBytes | str:
        operation.step = "locate"
        guessed = read_as_kv2(client, config) if config.kv_version == "auto" else None
        if guessed is not None:
            location, fields = guessed
        else:
            location = _locate(transport, client, config)
            operation.step = "read"
            fields = read_fields(client, location, config.secret_version)
        try:
            text = field_text(fields, config.field, location, config.where)
        finally:
            fields.clear()
        value = capture.pop(field_path(location.kv_version, config.field))
        if value is None:
            return text  # hvac's str: the transport could not take the value out
        position = first_non_ascii(value.view)
        if position >= 0:  # no key's text: a stand-in that parses to the same error (where)
            value.wipe()
            return "A" * position + "\x80"
        return value

    return _run(transport, config, action)


def write_key_text(
    transport: VaultTransport, config: VaultConfig, text: str, *, force: bool
) -> None:
    """Write the master-key field, keeping the secret's other fields (KV v2 check-and-set)."""

    def action(client: Any, operation: _Operation, capture: Capture) -> None:
        operation.step = "locate"
        location = _locate(transport, client, config)
        operation.step = "write"
        write_field(client, location, config.field, text, force=force, where=config.where)

    _run(transport, config, action)


def _login_token(answer: Any, capture: Capture) -> SecretBytes:
    """The token a login answered, as the transport took it out of the answer."""
    token = capture.pop(LOGIN_TOKEN)
    if token is not None:
        return token
    text: str = answer["auth"]["client_token"]  # hvac's own read, and failure, of it
    return SecretBytes(text.encode("utf-8", "surrogatepass"))


def _login(transport: VaultTransport, config: VaultConfig, operation: _Operation) -> Login:
    """The login of ``config.method``, its credentials read now (only when a token is
    needed): AppRole (a wrapped secret id unwrapped at the first login and kept), JWT and
    Kubernetes (the JWT file read at each login), or the TLS client certificate."""

    def login(client: Any, capture: Capture) -> tuple[SecretBytes, Any]:
        operation.step = "login"
        payload: dict[str, str] = {}
        if config.method == "approle":
            credentials = resolve_credentials(config)
            if credentials.wrapped is not None:
                operation.credentials = credentials
                secret_id = _unwrapped(transport, client, capture, credentials.wrapped, operation)
                credentials = dataclasses.replace(credentials, secret_id=secret_id)
            operation.credentials = credentials
            payload = {
                "role_id": credentials.role_id or "",
                "secret_id": credentials.secret_id or "",
            }
        elif config.method in ("jwt", "kubernetes"):
            jwt = read_jwt(config)
            operation.credentials = Credentials(keeper_source(config), secret_id=jwt)
            payload = {"role": config.role or "", "jwt": jwt}
        elif config.role:  # cert: the certificate role to match, else any that does
            payload = {"name": config.role}
        answer = client.adapter.login(  # hvac would keep the token in a str and send it itself
            f"/v1/auth/{config.login_mount}/login", use_token=False, json=payload
        )
        return _login_token(answer, capture), answer

    return login


def _unwrapped(
    transport: VaultTransport,
    client: Any,
    capture: Capture,
    wrapped: str,
    operation: _Operation,
) -> str:
    """The secret id a wrapping token holds, unwrapped once (``sys/wrapping/unwrap``: the
    wrapping token works once) and kept, in secret pages, for the provider's later logins."""
    if transport.secret_id is None or transport.secret_id.wiped:
        operation.step = "unwrap"
        transport.use_token(SecretBytes(wrapped.encode("ascii", "replace")))
        answer = client.sys.unwrap()
        value = capture.pop(UNWRAPPED_SECRET_ID)
        if value is None:  # hvac's own read of it
            value = SecretBytes(str(answer["data"]["secret_id"]).encode())
        transport.secret_id = value
        transport.use_token(None)  # spent: the login goes without a token
        operation.step = "login"
    return transport.secret_id.bytes().decode("ascii", "replace")


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
    action: Callable[[Any, _Operation, Capture], _Result],
) -> _Result:
    """Authenticate, run ``action`` under the deadline, and translate failures outside ``except``.

    Raising outside the ``except`` block keeps the original exception (whose request
    carries the token) out of ``__context__``; ``__cause__`` is a scrubbed copy. The
    token (and the values taken out of answers) are wiped when the operation ends.
    """
    keeper = transport.keeper
    operation = _Operation(keeper_source(config))
    login = _login(transport, config, operation) if keeper.logs_in else None
    failure: BaseException | None = None
    secrets: tuple[str, ...] = ()
    client = transport.begin()
    capture = transport.capture(
        (*field_paths(config.field), LOGIN_TOKEN, LOOKUP_TOKEN, UNWRAPPED_SECRET_ID)
    )
    given: SecretBytes | None = None
    try:
        try:
            if login is not None:
                transport.use_token(keeper.login_token(client, capture, login))
            else:
                operation.credentials = resolve_credentials(config)
                given = operation.credentials.token
                assert given is not None
                operation.step = "token"
                transport.use_token(keeper.given(client, capture, given))
            try:
                return action(client, operation, capture)
            except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized):
                if login is None or keeper.fresh:
                    raise
                # a kept token Vault no longer takes (revoked, or its TTL shorter than said)
                transport.use_token(keeper.relogin(client, capture, login))
                return action(client, operation, capture)
        except _FAILURES as exc:
            failure = exc
            secrets = (*operation.credentials.secrets, transport.token_text())
    finally:
        transport.end()
        if given is not None:
            given.wipe()
    assert failure is not None
    context = Context(
        where=config.where,
        path=config.secrets_path,
        step=operation.step,
        timeout=config.timeout,
        auth_source=operation.credentials.source,
        approle_mount=config.login_mount,
        method=config.method,
        secret_version=config.secret_version,
        secrets=tuple(secret for secret in secrets if secret),
        expired_at=keeper.expired_at(),
        nodes=len(config.nodes),
        attempt_timeout=config.attempt_timeout,
    )
    error = translate(failure, context)
    cause = scrub(failure, context.secrets)
    del failure
    if error is None:  # pragma: no cover - _FAILURES are all translated
        raise cause
    raise error from cause
