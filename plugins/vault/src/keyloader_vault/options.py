"""The ``vault`` provider's option schema and the checks of options given together.

Imported when the plugin registers, so it stays light: nothing here imports hvac or
requests, and the resolved configuration (:mod:`keyloader_vault.config`) loads only
when a provider is built.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from keyloader.errors import ConfigError
from keyloader.providers import Option

__all__ = [
    "DEFAULT_FIELD",
    "DEFAULT_SECRETS_PATH",
    "OPTIONS",
    "check_given",
    "display_address",
    "split_addresses",
    "split_path",
]

PROVIDER = "vault"
DEFAULT_SECRETS_PATH = "secret/"
"""Acra's default ``vault_secrets_path``: a mount only, so it must be completed with a secret."""
DEFAULT_FIELD = "acra_master_key"
"""The field Acra reads the base64 master key from."""
AUTH_METHODS = ("auto", "token", "approle", "jwt", "kubernetes", "cert")
LOGIN_METHODS = ("approle", "jwt", "kubernetes", "cert")
KUBERNETES_JWT = "/var/run/secrets/kubernetes.io/serviceaccount/token"
"""Where Kubernetes mounts a pod's service-account token."""
DEFAULT_TIMEOUT = 30.0
DEFAULT_ATTEMPT_TIMEOUT = 5.0
DEFAULT_RETRIES = 2
MAX_RETRIES = 20


def split_addresses(value: str) -> list[str]:
    """The entries of a comma-separated ``address`` (surrounding spaces removed)."""
    return [entry.strip() for entry in value.split(",")]


def _check_address(value: object) -> None:
    entries = split_addresses(str(value))
    schemes = set()
    for number, entry in enumerate(entries, start=1):
        which = f"entry {number} " if len(entries) > 1 else ""
        if not entry:
            raise ValueError(f"{which}is empty: give comma-separated http(s):// URLs")
        parts = urlsplit(entry)
        try:
            parts.port  # noqa: B018 - urllib raises on a port out of range or not a number
        except ValueError:
            raise ValueError(f"{which}has a bad port: use 1 to 65535") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"{which}must be an http:// or https:// URL with a host, e.g. "
                "https://vault.example.com:8200"
            )
        if parts.query or parts.fragment:
            raise ValueError(
                f"{which}must not have a query or fragment: give scheme, host and port only"
            )
        schemes.add(parts.scheme)
    if len(schemes) > 1:
        raise ValueError("mixes http:// and https:// nodes: one cluster speaks one of them")


def _check_path(value: object) -> None:
    if not split_path(str(value)):
        raise ValueError("must name a secret as <mount>/<path>, e.g. secret/acra")
    if any(segment in (".", "..") for segment in split_path(str(value))):
        raise ValueError("must not contain '.' or '..' segments")


def _check_mount(value: object) -> None:
    segments = split_path(str(value))
    if not segments:
        raise ValueError("must name a mount path, e.g. team/kv")
    if any(segment in (".", "..") for segment in segments):
        raise ValueError("must not contain '.' or '..' segments")


def _check_name(value: object) -> None:
    if not str(value).strip():
        raise ValueError("must not be empty")


def _check_positive_version(value: object) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError("must be a version number >= 1")


def _check_timeout(value: object) -> None:
    if not isinstance(value, float) or not math.isfinite(value) or value <= 0:
        raise ValueError("must be a number of seconds > 0")


def _check_retries(value: object) -> None:
    if not isinstance(value, int) or not 0 <= value <= MAX_RETRIES:
        raise ValueError(f"must be an integer from 0 to {MAX_RETRIES}")


OPTIONS: tuple[Option, ...] = (
    Option(
        "address",
        "Vault (or OpenBao) URL, http:// or https://, e.g. https://vault.example.com:8200; "
        "several nodes of a cluster comma-separated (tried in turn, the last that answered "
        "first).",
        env=("VAULT_ADDR",),
        required=True,
        validator=_check_address,
    ),
    Option(
        "secrets_path",
        "KV secret holding the key, <mount>/<path> (Acra's vault_secrets_path), e.g. "
        "secret/acra. The default 'secret/' (Acra's) names only the mount: complete it.",
        default=DEFAULT_SECRETS_PATH,
        validator=_check_path,
    ),
    Option(
        "field",
        "Field of the secret holding the base64 master key (v1, or a v2 pair).",
        default=DEFAULT_FIELD,
        validator=_check_name,
    ),
    Option(
        "kv_version",
        "KV engine version: auto (ask Vault per path, one extra request), 1 or 2.",
        default="auto",
        choices=("auto", "1", "2"),
    ),
    Option(
        "mount",
        "Mount of the KV engine when kv_version is 1 or 2 (default: the first segment of "
        "secrets_path); needed for nested mounts such as team/kv.",
        validator=_check_path,
    ),
    Option(
        "secret_version",
        "KV v2 only: read this version of the secret instead of the latest.",
        type="int",
        validator=_check_positive_version,
    ),
    Option(
        "namespace",
        "Vault namespace (Enterprise / OpenBao), sent as X-Vault-Namespace.",
        env=("VAULT_NAMESPACE",),
    ),
    Option(
        "token",
        "Vault token (third in the auth order, after token_file and AppRole).",
        env=("VAULT_TOKEN",),
        secret=True,
    ),
    Option(
        "api_token",
        "Acra's VAULT_API_TOKEN: base64 of the token, trailing newline trimmed "
        "(last in the auth order).",
        env=("VAULT_API_TOKEN",),
        secret=True,
    ),
    Option(
        "token_file",
        "File holding the Vault token, re-read at every load (first in the auth order; "
        "e.g. a Vault Agent sink). ~/.vault-token is never read unless named here.",
        type="path",
    ),
    Option(
        "role_id",
        "AppRole role id (second in the auth order; needs secret_id_file, secret_id or "
        "secret_id_wrapped).",
    ),
    Option(
        "secret_id",
        "AppRole secret id; set it in the environment (KEYLOADER_VAULT_SECRET_ID), "
        "never on the command line.",
        secret=True,
    ),
    Option(
        "secret_id_file",
        "File holding the AppRole secret id (used before secret_id).",
        type="path",
    ),
    Option(
        "secret_id_wrapped",
        "A response-wrapped AppRole secret id: the wrapping token, unwrapped once (at the "
        "first login, sys/wrapping/unwrap); set it in the environment "
        "(KEYLOADER_VAULT_SECRET_ID_WRAPPED), never on the command line.",
        secret=True,
    ),
    Option(
        "approle_mount",
        "Mount path of the AppRole auth method (auth_mount's older name, for AppRole).",
        default="approle",
        validator=_check_mount,
    ),
    Option(
        "auth_method",
        "How to get a token: auto (token_file, AppRole, token, api_token: the first "
        "configured), token, approle, jwt, kubernetes or cert.",
        default="auto",
        choices=AUTH_METHODS,
    ),
    Option(
        "auth_mount",
        "Mount path of the auth method (default: its name: approle, jwt, kubernetes, cert).",
        validator=_check_mount,
    ),
    Option(
        "role",
        "Role to log in as: jwt and kubernetes (required), cert (the certificate role's "
        "name; optional).",
        validator=_check_name,
    ),
    Option(
        "jwt_file",
        "File holding the JWT for jwt and kubernetes logins, re-read at each login "
        f"(kubernetes default: {KUBERNETES_JWT}).",
        type="path",
    ),
    Option(
        "ca_cert",
        "PEM file of the CA that signed the server certificate (https only).",
        type="path",
        env=("VAULT_CACERT",),
    ),
    Option(
        "client_cert",
        "PEM client certificate for mutual TLS (with client_key).",
        type="path",
        env=("VAULT_CLIENT_CERT",),
    ),
    Option(
        "client_key",
        "PEM private key of client_cert, for mutual TLS.",
        type="path",
        env=("VAULT_CLIENT_KEY",),
    ),
    Option(
        "tls_server_name",
        "Server name used for SNI and certificate verification instead of the address host.",
        env=("VAULT_TLS_SERVER_NAME",),
        validator=_check_name,
    ),
    Option(
        "tls_skip_verify",
        "Do not verify the server certificate (dangerous; warns on stderr). Only by this "
        "option: VAULT_SKIP_VERIFY is not read.",
        type="bool",
        default=False,
    ),
    Option(
        "timeout",
        "Overall deadline in seconds for one load or store, retries and backoff included.",
        type="float",
        default=DEFAULT_TIMEOUT,
        validator=_check_timeout,
    ),
    Option(
        "attempt_timeout",
        "Seconds one request to one node may take (never more than what is left of "
        "timeout): a hung node costs at most that, then the next node is tried.",
        type="float",
        default=DEFAULT_ATTEMPT_TIMEOUT,
        validator=_check_timeout,
    ),
    Option(
        "retries",
        "Retries (exponential backoff with jitter) on connection errors, 429, 5xx and a "
        "sealed server; never on other 4xx.",
        type="int",
        default=DEFAULT_RETRIES,
        validator=_check_retries,
    ),
)


def split_path(path: str) -> list[str]:
    """The non-empty ``/``-separated segments of a Vault path."""
    return [segment for segment in path.split("/") if segment]


def display_address(address: str) -> str:
    """The address (one node's) without user info, for messages."""
    parts = urlsplit(address)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def check_given(given: Mapping[str, Any]) -> None:
    """Cross-option checks on the options that were given (the provider's ``validate``)."""
    kv_version = given.get("kv_version", "auto")
    secrets_path = str(given.get("secrets_path", DEFAULT_SECRETS_PATH))
    mount = given.get("mount")
    if mount is not None:
        if kv_version == "auto":
            raise ConfigError(
                "option 'mount' of provider 'vault' applies only when kv_version is 1 or 2 "
                "(with auto, Vault tells the mount): set kv_version, or drop mount"
            )
        mount_segments = split_path(str(mount))
        if split_path(secrets_path)[: len(mount_segments)] != mount_segments:
            raise ConfigError(
                f"option 'mount' of provider 'vault' is {mount!r} but secrets_path "
                f"{secrets_path!r} is not under it: secrets_path is <mount>/<path>"
            )
    if given.get("secret_version") is not None and kv_version == "1":
        raise ConfigError(
            "option 'secret_version' of provider 'vault' needs a KV v2 engine but kv_version "
            "is 1: drop secret_version, or set kv_version to 2 or auto"
        )
    has_cert = given.get("client_cert") is not None
    has_key = given.get("client_key") is not None
    if has_cert != has_key:
        missing = "client_key (VAULT_CLIENT_KEY)" if has_cert else "client_cert (VAULT_CLIENT_CERT)"
        raise ConfigError(
            f"mutual TLS for provider 'vault' needs both client_cert and client_key: set "
            f"{missing} too"
        )
    method = given.get("auth_method", "auto")
    if method in ("jwt", "kubernetes") and not given.get("role"):
        raise ConfigError(
            f"{method} login for provider 'vault' needs option 'role' (the role to log in as)"
        )
    if method == "jwt" and given.get("jwt_file") is None:
        raise ConfigError(
            "jwt login for provider 'vault' needs option 'jwt_file' (the file holding the JWT)"
        )
    if method == "cert" and (not has_cert or not has_key):
        raise ConfigError(
            "cert login for provider 'vault' logs in with the TLS client certificate: set "
            "client_cert and client_key (VAULT_CLIENT_CERT, VAULT_CLIENT_KEY)"
        )
    if method not in ("auto", "approle"):
        return
    has_role = bool(given.get("role_id"))
    has_secret_id = (
        bool(given.get("secret_id"))
        or bool(given.get("secret_id_wrapped"))
        or given.get("secret_id_file") is not None
    )
    if method == "approle" and not has_role:
        raise ConfigError(
            "auth_method approle of provider 'vault' needs option 'role_id' and a secret id"
        )
    if has_secret_id and not has_role:
        raise ConfigError(
            "AppRole login for provider 'vault' needs option 'role_id' with the secret id: "
            "set role_id (KEYLOADER_VAULT_ROLE_ID)"
        )
    if has_role and not has_secret_id:
        raise ConfigError(
            "AppRole login for provider 'vault' needs a secret id: set option "
            "'secret_id_file', or KEYLOADER_VAULT_SECRET_ID (or KEYLOADER_VAULT_SECRET_ID_WRAPPED) "
            "in the environment"
        )
