"""Throw-away certificates for the TLS tests: a CA, a server and a client certificate.

Shared by ``tests/vault`` and ``tests/redis``. pytest runs with
``--import-mode=importlib`` and ``tests/`` has no ``__init__.py``: test modules
are named ``tests.<dir>.<module>`` below the namespace package ``tests``, so
they import this module as ``from ..pki import make_pki``.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["SERVER_NAMES", "make_pki"]

SERVER_NAMES = ("127.0.0.1", "localhost")
"""The names the server certificate is valid for, unless told otherwise."""


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_pem(directory: Path, stem: str, key: ec.EllipticCurvePrivateKey, cert: Any) -> None:
    (directory / f"{stem}-key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (directory / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _alt_name(name: str) -> x509.GeneralName:
    """An IP address entry for an address, else a DNS name entry."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def make_pki(directory: Path, *, server_names: Sequence[str] = SERVER_NAMES) -> dict[str, Path]:
    """A CA, a server certificate for ``server_names`` and a client certificate.

    Keys of the answer: ``mtls_ca`` (the CA certificate), ``server_cert``,
    ``server_key``, ``client_cert``, ``client_key``; all PEM files in ``directory``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    later = now + datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("keyloader test CA"))
        .issuer_name(_name("keyloader test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(later)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    _write_pem(directory, "ca", ca_key, ca)
    leaves = (
        ("server", ExtendedKeyUsageOID.SERVER_AUTH, [_alt_name(n) for n in server_names]),
        ("client", ExtendedKeyUsageOID.CLIENT_AUTH, [x509.DNSName("keyloader-client")]),
    )
    for stem, usage, names in leaves:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(stem))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(later)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        _write_pem(directory, stem, key, cert)
    return {
        "mtls_ca": directory / "ca.pem",
        "server_cert": directory / "server.pem",
        "server_key": directory / "server-key.pem",
        "client_cert": directory / "client.pem",
        "client_key": directory / "client-key.pem",
    }
