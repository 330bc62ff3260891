"""Checks of the Keywhiz options: the server URL, the PEM files, the secret name.

Each raises ``ValueError`` with a message that says what is wrong and how to
fix it; :meth:`keyloader.providers.Option.convert` prefixes the option's name
and origin. Messages never contain a URL (it may carry credentials) or file content.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

__all__ = [
    "check_ca_cert",
    "check_client_cert",
    "check_client_key",
    "check_secret_name",
    "check_server_url",
    "pem_labels",
]

MAX_PEM_SIZE = 1024 * 1024
"""A PEM file larger than this is not a certificate or key file."""

_PEM_BEGIN = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")


def check_server_url(url: str) -> None:
    """Accept only ``https://host[:port][/path]``: Keywhiz authenticates clients over TLS."""
    try:
        parts = urlsplit(url.strip())
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        raise ValueError(
            "is not a URL: use https://HOST[:PORT], such as https://keywhiz.example.com:4444"
        ) from None
    if parts.scheme.lower() != "https":
        raise ValueError(
            "must be an https:// URL: Keywhiz authenticates clients with TLS certificates, "
            "so plain http and other schemes are refused"
        )
    if not parts.hostname or not port_ok:
        raise ValueError("has no host or a bad port: use https://HOST[:PORT]")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "must not carry a user name or password: Keywhiz authenticates with the "
            "client_cert and client_key options"
        )
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment: use https://HOST[:PORT][/PATH]")


def check_client_cert(path: Path) -> None:
    """The client certificate: an existing PEM file with a CERTIFICATE block."""
    if "CERTIFICATE" not in pem_labels(path, "client certificate"):
        raise ValueError(f"{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")


def check_client_key(path: Path) -> None:
    """The client private key: an existing PEM file with a ``... PRIVATE KEY`` block."""
    if not any(label.endswith("PRIVATE KEY") for label in pem_labels(path, "client key")):
        raise ValueError(
            f"{path} holds no PEM private key (-----BEGIN PRIVATE KEY----- or a "
            f"-----BEGIN RSA/EC PRIVATE KEY----- block)"
        )


def check_ca_cert(path: Path) -> None:
    """The CA bundle that signs the server's certificate: a PEM file of certificates."""
    if "CERTIFICATE" not in pem_labels(path, "CA certificate"):
        raise ValueError(f"{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")


def check_secret_name(name: str) -> None:
    """A secret name fits in one URL path segment: not empty, no '/', no blanks or controls."""
    if not name or name in (".", "..") or "/" in name:
        raise ValueError(f"{name!r} is not a Keywhiz secret name: give a name without '/'")
    if any(char.isspace() or not char.isprintable() for char in name):
        raise ValueError(
            f"{name!r} is not a Keywhiz secret name: spaces and control characters are refused"
        )


def pem_labels(path: Path, what: str) -> set[str]:
    """The labels of the PEM blocks in ``path`` (``CERTIFICATE``, ``PRIVATE KEY``...).

    The content is read into a buffer that is zeroed before returning. Raises
    ``ValueError`` if the file is missing, not a regular file or unreadable.
    """
    if not path.exists():
        raise ValueError(f"{what} file {path} does not exist: fix the path")
    if not path.is_file():
        raise ValueError(f"{what} file {path} is not a regular file: give a PEM file")
    buffer = bytearray(MAX_PEM_SIZE)
    try:
        size = 0
        with path.open("rb", buffering=0) as stream, memoryview(buffer) as view:
            while size < MAX_PEM_SIZE and (count := stream.readinto(view[size:])):
                size += count
        return {match.group(1).decode("ascii") for match in _PEM_BEGIN.finditer(buffer, 0, size)}
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ValueError(f"cannot read {what} file {path}: {reason}") from None
    finally:
        buffer[:] = bytes(len(buffer))
