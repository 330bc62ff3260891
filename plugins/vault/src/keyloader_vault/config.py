"""The resolved, checked configuration of one ``vault`` provider (built on first use)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from keyloader.errors import ConfigError

from .options import (
    DEFAULT_ATTEMPT_TIMEOUT,
    DEFAULT_FIELD,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    OPTIONS,
    check_given,
    display_address,
    split_addresses,
    split_path,
)

__all__ = ["VaultConfig"]


@dataclass(frozen=True)
class VaultConfig:
    """The resolved options of one ``vault`` provider; secrets are left out of the ``repr``."""

    address: str
    secrets_path: str
    field: str = DEFAULT_FIELD
    kv_version: str = "auto"
    mount: str | None = None
    secret_version: int | None = None
    namespace: str | None = None
    token: str | None = dataclasses.field(default=None, repr=False)
    api_token: str | None = dataclasses.field(default=None, repr=False)
    token_file: Path | None = None
    role_id: str | None = None
    secret_id: str | None = dataclasses.field(default=None, repr=False)
    secret_id_file: Path | None = None
    secret_id_wrapped: str | None = dataclasses.field(default=None, repr=False)
    approle_mount: str = "approle"
    auth_method: str = "auto"
    auth_mount: str | None = None
    role: str | None = None
    jwt_file: Path | None = None
    ca_cert: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    tls_server_name: str | None = None
    tls_skip_verify: bool = False
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    attempt_timeout: float = DEFAULT_ATTEMPT_TIMEOUT
    nodes: tuple[str, ...] = ()
    """Every node of ``address`` (one, or a cluster's, comma-separated); ``address`` is the
    first."""

    @classmethod
    def from_options(cls, config: Mapping[str, Any]) -> VaultConfig:
        """Build from the option values the core resolved; refuses inconsistent combinations."""
        address = config.get("address")
        if not address:
            raise ConfigError(
                "provider 'vault' needs option 'address' (set -o address=..., "
                "[providers.vault] address, or KEYLOADER_VAULT_ADDRESS or VAULT_ADDR)"
            )
        values: dict[str, Any] = {}
        for option in OPTIONS:
            value = config.get(option.name)
            if value is None or value == "":
                values[option.name] = option.default
            else:
                origin = f"option {option.name!r} of provider 'vault'"
                values[option.name] = option.convert(value, origin=origin)
        given = {name: value for name, value in values.items() if value is not None}
        check_given(given)
        nodes = tuple(entry.rstrip("/") for entry in split_addresses(str(values["address"])))
        return cls(
            address=nodes[0],
            nodes=nodes,
            attempt_timeout=float(values["attempt_timeout"]),
            secrets_path="/".join(split_path(str(values["secrets_path"]))),
            field=str(values["field"]),
            kv_version=str(values["kv_version"]),
            mount="/".join(split_path(values["mount"])) if values["mount"] else None,
            secret_version=values["secret_version"],
            namespace=values["namespace"] or None,
            token=values["token"] or None,
            api_token=values["api_token"] or None,
            token_file=values["token_file"],
            role_id=values["role_id"] or None,
            secret_id=values["secret_id"] or None,
            secret_id_file=values["secret_id_file"],
            secret_id_wrapped=values["secret_id_wrapped"] or None,
            approle_mount="/".join(split_path(str(values["approle_mount"]))),
            auth_method=str(values["auth_method"]),
            auth_mount="/".join(split_path(values["auth_mount"])) if values["auth_mount"] else None,
            role=values["role"] or None,
            jwt_file=values["jwt_file"],
            ca_cert=values["ca_cert"],
            client_cert=values["client_cert"],
            client_key=values["client_key"],
            tls_server_name=values["tls_server_name"] or None,
            tls_skip_verify=bool(values["tls_skip_verify"]),
            timeout=float(values["timeout"]),
            retries=int(values["retries"]),
        )

    @functools.cached_property
    def method(self) -> str:
        """How the token is got: ``token`` (given), or a login method (``approle``, ``jwt``,
        ``kubernetes``, ``cert``); ``auto`` follows the auth order of docs/vault.md."""
        if self.auth_method != "auto":
            return self.auth_method
        return "approle" if self.token_file is None and self.role_id else "token"

    @functools.cached_property
    def login_mount(self) -> str:
        """The mount of the login method (``auth_mount``; AppRole: ``approle_mount``)."""
        if self.auth_mount:
            return self.auth_mount
        return self.approle_mount if self.method == "approle" else self.method

    @functools.cached_property
    def shown_address(self) -> str:
        """The address as messages show it (no user info)."""
        return display_address(self.address)

    @functools.cached_property
    def https(self) -> bool:
        return urlsplit(self.address).scheme == "https"

    @functools.cached_property
    def where(self) -> str:
        """``Vault at <address>`` (every node) plus the namespace, for messages."""
        namespace = f" (namespace {self.namespace!r})" if self.namespace else ""
        shown = ", ".join(display_address(node) for node in self.nodes or (self.address,))
        return f"Vault at {shown}{namespace}"

    def at(self, node: str) -> str:
        """``Vault at <node>`` plus the namespace: where one attempt went."""
        namespace = f" (namespace {self.namespace!r})" if self.namespace else ""
        return f"Vault at {display_address(node)}{namespace}"

    @functools.cached_property
    def key_source(self) -> str:
        """Where the key text comes from, as master-key errors name it."""
        return f"field {self.field!r} of secret {self.secrets_path!r} in {self.where}"
