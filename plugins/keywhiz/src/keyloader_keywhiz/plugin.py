"""The ``keywhiz`` provider placeholder: name, description and option schema, no client code.

Keywhiz (Square's secret manager) is an Enterprise Edition provider. This
open-source package registers it so it is listed, documented and its options
validated; the core's enterprise gate decides what selecting it does (docs/enterprise.md).
An implementation registers a non-placeholder provider named ``keywhiz`` that
takes these options, most simply by subclassing :class:`KeywhizPlaceholder`
with ``placeholder = False``.

The secret named ``secret_name`` holds the master key's base64 text form (v1
or a v2 pair), the same text as ``ACRA_MASTER_KEY``; the client authenticates
with a TLS client certificate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from keyloader import hookimpl
from keyloader.providers import Option, PlaceholderProvider

from .checks import (
    check_ca_cert,
    check_client_cert,
    check_client_key,
    check_secret_name,
    check_server_url,
)

if TYPE_CHECKING:
    from keyloader.providers import MasterKeyProvider

__all__ = ["PROVIDER_NAME", "KeywhizPlaceholder", "keyloader_master_key_providers"]

PROVIDER_NAME = "keywhiz"


class KeywhizPlaceholder(PlaceholderProvider):
    """Open-source placeholder of the Enterprise Edition ``keywhiz`` provider."""

    name: ClassVar[str] = PROVIDER_NAME
    description: ClassVar[str] = (
        "Master key read over mutual TLS from Keywhiz, Square's secret manager: a Keywhiz "
        "secret holds its base64 text form"
    )
    options: ClassVar[tuple[Option, ...]] = (
        Option(
            "server_url",
            "Keywhiz server, https only: https://HOST[:PORT].",
            required=True,
            validator=check_server_url,
        ),
        Option(
            "client_cert",
            "PEM client certificate the server authenticates this client with.",
            type="path",
            required=True,
            validator=check_client_cert,
        ),
        Option(
            "client_key",
            "PEM private key of client_cert; keep it private (mode 0600).",
            type="path",
            required=True,
            validator=check_client_key,
        ),
        Option(
            "ca_cert",
            "PEM CA bundle that signs the server's certificate (default: the system trust store).",
            type="path",
            validator=check_ca_cert,
        ),
        Option(
            "secret_name",
            "Name of the Keywhiz secret holding the base64 master key (v1, or a v2 pair).",
            required=True,
            validator=check_secret_name,
        ),
    )


@hookimpl
def keyloader_master_key_providers() -> list[type[MasterKeyProvider]]:
    """The ``keywhiz`` placeholder."""
    return [KeywhizPlaceholder]
