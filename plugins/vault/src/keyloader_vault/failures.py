"""hvac and requests errors as keyloader's typed errors (docs/vault.md).

Messages name the address, the namespace and the secret path, never the token
or the key. The error's ``__cause__`` is a scrubbed copy of the original: the
same type with the credentials redacted from its text and without the request
(whose headers carry the token) or the response.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass, field
from typing import Any

import hvac.exceptions
import requests

from keyloader.errors import (
    AuthenticationError,
    ConfigError,
    KeyExistsError,
    KeyloaderError,
    MasterKeyNotFoundError,
    ProviderUnavailableError,
)

from .options import display_address
from .transport import GaveUp, tls_failure

__all__ = ["Context", "redact", "scrub", "translate"]

MAX_DETAIL = 300
REDACTED = "<redacted>"


@dataclass(frozen=True)
class Context:
    """What was being done, for messages: where, which path, which step, which credentials."""

    where: str
    path: str
    step: str  # "unwrap", "login", "token" (look up, renew), "locate", "read" or "write"
    timeout: float
    auth_source: str = "the configured credentials"
    approle_mount: str = "approle"
    """The login method's mount (``approle_mount`` or ``auth_mount``)."""
    method: str = "approle"
    secret_version: int | None = None
    secrets: tuple[str, ...] = field(default=(), repr=False)
    expired_at: str | None = None
    """When the token in use expired, as Vault said (None: not expired, or unknown)."""
    nodes: int = 1
    attempt_timeout: float = 0.0


MIN_REDACTED = 8
"""Shorter secrets are not redacted: no substring filter can hide ``t`` or ``root`` without
mangling every word that holds it. Messages keep secrets out by construction; this filter
is the last resort for what a server or a library echoed."""


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every secret value of :data:`MIN_REDACTED` characters or more replaced
    by ``<redacted>``, in one pass (a placeholder is never redacted again)."""
    given = {secret for secret in secrets if secret}
    long = sorted((secret for secret in given if len(secret) >= MIN_REDACTED), key=len)
    if len(long) < len(given):
        _note_short_secret()
    if not long:
        return text
    pattern = re.compile("|".join(re.escape(secret) for secret in reversed(long)))
    return pattern.sub(REDACTED, text)


def _note_short_secret() -> None:
    import logging

    logging.getLogger("keyloader_vault").debug(
        "a configured Vault credential is shorter than %d characters: messages cannot "
        "redact it (use a real token)",
        MIN_REDACTED,
    )


def scrub(exc: BaseException, secrets: tuple[str, ...]) -> BaseException:
    """A copy of ``exc`` without secrets in its text, nor request, response or traceback."""
    if isinstance(exc, GaveUp) and exc.last is not None:
        return scrub(exc.last, secrets)
    copy: BaseException
    try:
        if isinstance(exc, hvac.exceptions.VaultError):
            message = redact(str(exc.args[0]) if exc.args else "", secrets)
            copy = type(exc)(message, method=exc.method, url=redact(str(exc.url), secrets))
        else:
            copy = type(exc)(redact(str(exc), secrets))
    except Exception:  # an exception type with another constructor
        copy = RuntimeError(f"{type(exc).__qualname__}: {redact(str(exc), secrets)}")
    return copy


def translate(exc: BaseException, context: Context) -> KeyloaderError | None:
    """The typed error for an hvac, requests or retry failure; None for anything else."""
    error = _translate(exc, context)
    if error is None:
        return None
    return type(error)(redact(str(error), context.secrets))


def _translate(exc: BaseException, context: Context) -> KeyloaderError | None:
    if isinstance(exc, GaveUp):
        return _gave_up(exc, context)
    if isinstance(exc, requests.exceptions.RequestException) and tls_failure(exc):
        return ProviderUnavailableError(
            f"TLS connection to {context.where} failed: {network_reason(exc)}: set option "
            f"'ca_cert' (VAULT_CACERT) to the CA that signed the server certificate, "
            f"'tls_server_name' if the certificate names another host, or 'client_cert' and "
            f"'client_key' if the server requires a client certificate"
        )
    if isinstance(exc, requests.exceptions.RequestException):
        return ProviderUnavailableError(
            f"request to {context.where} for {context.path!r} failed: {network_reason(exc)}"
        )
    if isinstance(exc, hvac.exceptions.VaultError):
        return _vault_error(exc, context)
    return None


def _gave_up(exc: GaveUp, context: Context) -> KeyloaderError:
    last = exc.last
    attempts = f"{exc.attempts} attempt{'s' if exc.attempts != 1 else ''}"
    if isinstance(last, hvac.exceptions.VaultDown) and "sealed" in server_detail(last).lower():
        return ProviderUnavailableError(
            f"{context.where} is sealed ({attempts} to {_doing(context)}): unseal it "
            f"(`bao operator unseal` or `vault operator unseal`) and try again"
        )
    reason = describe(last, context) if last is not None else "no answer"
    if context.nodes > 1 and exc.node:
        reason = f"{reason}, from {display_address(exc.node)}"
    if isinstance(last, requests.exceptions.Timeout) and not exc.timed_out:
        return ProviderUnavailableError(
            f"no answer from {context.where} ({attempts} to {_doing(context)}, each given "
            f"{context.attempt_timeout:g} s; last: {reason}): check that the server is up "
            f"and reachable, or raise option 'attempt_timeout'"
        )
    if exc.timed_out:
        return ProviderUnavailableError(
            f"no answer from {context.where} within the {context.timeout:g} s timeout "
            f"({attempts} to {_doing(context)}; last: {reason}): check that the server is up "
            f"and reachable, or raise option 'timeout'"
        )
    if isinstance(last, requests.exceptions.ConnectionError):
        return ProviderUnavailableError(
            f"cannot reach {context.where} ({reason}; {attempts} to {_doing(context)}): check "
            f"option 'address' (VAULT_ADDR) and that the server is running"
        )
    return ProviderUnavailableError(
        f"{context.where} failed ({reason}; {attempts} to {_doing(context)}): try again later"
    )


def _vault_error(exc: hvac.exceptions.VaultError, context: Context) -> KeyloaderError:
    detail = server_detail(exc, context.secrets)
    path = context.path
    if context.step == "unwrap":
        return AuthenticationError(
            f"{context.where} would not unwrap the wrapped secret id (option "
            f"'secret_id_wrapped'): a wrapping token works once and expires with its TTL; "
            f"give a newly wrapped secret id ({detail})"
        )
    if context.step == "login":
        label = "AppRole" if context.method == "approle" else context.method
        login = f"{label} login at auth/{context.approle_mount} of {context.where}"
        if isinstance(exc, hvac.exceptions.InvalidPath):
            option = "'approle_mount' or 'auth_mount'" if label == "AppRole" else "'auth_mount'"
            return ConfigError(
                f"{login} failed: no such auth method ({detail}): check option {option}"
            )
        check = {
            "approle": "role_id and the secret id",
            "jwt": "option 'role' and the JWT",
            "kubernetes": "option 'role' and the service-account token",
            "cert": "that a certificate role of the auth method trusts the client certificate",
        }.get(context.method, "the credentials")
        return AuthenticationError(
            f"{login} failed ({detail}): check {check} ({context.auth_source})"
        )
    if isinstance(exc, hvac.exceptions.Forbidden | hvac.exceptions.Unauthorized):
        if context.expired_at is not None:
            return AuthenticationError(
                f"the Vault token expired at {context.expired_at}: renew it or configure a "
                f"login method (AppRole); {context.where} refused access to {path!r} "
                f"({detail}); credentials from {context.auth_source}"
            )
        need = "create and update" if context.step == "write" else "read"
        unmounted = " (or no secrets engine is mounted there)" if context.step == "locate" else ""
        return AuthenticationError(
            f"{context.where} refused access to {path!r}: token invalid or lacks {need} on "
            f"{path}{unmounted}; credentials from {context.auth_source} ({detail})"
        )
    if isinstance(exc, hvac.exceptions.InvalidPath):
        if context.step == "locate":
            return ConfigError(
                f"{context.where} has no secrets engine for {path!r} ({detail}): fix option "
                f"'secrets_path'"
            )
        deleted = _deletion(exc)
        if deleted is not None:
            which = (
                f"version {context.secret_version}"
                if context.secret_version is not None
                else "the latest version"
            )
            return MasterKeyNotFoundError(
                f"{which} of secret {path!r} in {context.where} was {deleted}: undelete it "
                f"(`bao kv undelete`), set option 'secret_version' to a live version, or "
                f"store a new key"
            )
        if context.secret_version is not None:
            return MasterKeyNotFoundError(
                f"no version {context.secret_version} of secret {path!r} in {context.where}: "
                f"set option 'secret_version' to an existing version, or drop it to read the "
                f"latest"
            )
        return MasterKeyNotFoundError(
            f"no secret {path!r} in {context.where}: store the master key there "
            f"(`keyloader master-key store`), or fix option 'secrets_path'"
        )
    if isinstance(exc, hvac.exceptions.InvalidRequest):
        if context.step == "write" and "check-and-set" in detail:
            return KeyExistsError(
                f"secret {path!r} in {context.where} changed while the master key was being "
                f"stored (check-and-set conflict, {detail}): nothing was written; run it again"
            )
        return ConfigError(f"{context.where} rejected the request for {path!r}: {detail}")
    return ProviderUnavailableError(
        f"{context.where} failed to {_doing(context)} ({describe(exc, context)})"
    )


def _doing(context: Context) -> str:
    if context.step == "write":
        return f"write {context.path!r}"
    if context.step == "login":
        return f"log in at auth/{context.approle_mount}"  # the login method's mount
    if context.step == "token":
        return "look up or renew the token"
    if context.step == "unwrap":
        return "unwrap the secret id"
    return f"read {context.path!r}"


def _deletion(exc: hvac.exceptions.VaultError) -> str | None:
    """``deleted`` or ``destroyed`` if a KV v2 404 names a deleted version, else None."""
    document: Any = exc.json
    data = document.get("data") if isinstance(document, dict) else None
    metadata = data.get("metadata") if isinstance(data, dict) else None
    if not isinstance(metadata, dict):
        return None
    if metadata.get("destroyed") is True:
        return "destroyed"
    if metadata.get("deletion_time"):
        return "deleted"
    return None


def describe(exc: BaseException, context: Context) -> str:
    """A short reason: the HTTP status and Vault's errors, or the network failure."""
    if isinstance(exc, hvac.exceptions.VaultError):
        status = getattr(exc, "status_code", None)
        prefix = f"HTTP {status}: " if status is not None else f"{type(exc).__name__}: "
        return prefix + server_detail(exc, context.secrets)
    if isinstance(exc, requests.exceptions.RequestException):
        return network_reason(exc)
    return redact(str(exc), context.secrets)[:MAX_DETAIL]


def server_detail(exc: hvac.exceptions.VaultError, secrets: tuple[str, ...] = ()) -> str:
    """Vault's error strings, shortened and redacted."""
    errors = exc.errors
    if isinstance(errors, list) and errors:
        text = "; ".join(str(error) for error in errors)
    else:
        text = str(exc.args[0]) if exc.args and exc.args[0] else type(exc).__name__
    text = redact(" ".join(text.split()), secrets)
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."


def network_reason(exc: BaseException) -> str:
    """The innermost cause of a connection failure: refused, name not known, TLS verify..."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    found: str | None = None
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {current.verify_message}"
        if isinstance(current, requests.exceptions.ConnectTimeout):
            return "the connection timed out"
        if isinstance(current, requests.exceptions.Timeout | TimeoutError):
            return "no answer in time (read timed out)"
        if isinstance(current, ssl.SSLError) and found is None:
            found = f"TLS error: {current.reason or current.strerror or current}"
        elif isinstance(current, OSError) and current.strerror and found is None:
            found = current.strerror
        followers = [getattr(current, "reason", None), current.__cause__, current.__context__]
        followers += [arg for arg in current.args if isinstance(arg, BaseException)]
        stack.extend(item for item in followers if isinstance(item, BaseException))
    if found is not None:
        return found
    text = " ".join(str(exc).split())
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."
