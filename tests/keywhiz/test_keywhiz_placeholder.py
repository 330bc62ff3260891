"""keyloader-keywhiz: the ``keywhiz`` placeholder, its URL, PEM file and secret name checks."""

from __future__ import annotations

import datetime
import functools
from pathlib import Path
from typing import Any, ClassVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from keyloader.testing import PlaceholderProviderContract
from keyloader_keywhiz import KeywhizPlaceholder
from keyloader_keywhiz import plugin as keywhiz_plugin
from keyloader_keywhiz.checks import (
    check_ca_cert,
    check_client_cert,
    check_client_key,
    check_secret_name,
    check_server_url,
    pem_labels,
)

URL = "https://keywhiz.example.invalid:4444"
REQUIRED = ["server_url", "client_cert", "client_key", "secret_name"]


@functools.cache
def pem_contents() -> dict[str, bytes]:
    """Real PEM texts: a client certificate, its PKCS#8 key, the key encrypted (SEC1 format)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "acra-client")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    contents = {
        "cert": cert.public_bytes(serialization.Encoding.PEM),
        "key": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        "ec-key": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.BestAvailableEncryption(b"passphrase"),
        ),
        "text": b"not a PEM file\n",
    }
    contents["combined"] = contents["cert"] + contents["key"]
    return contents


def write_pem(directory: Path, label: str) -> Path:
    path = directory / f"{label}.pem"
    path.write_bytes(pem_contents()[label])
    return path


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("pem")
    return {label: write_pem(directory, label) for label in pem_contents()}


def valid(pem: dict[str, Path]) -> dict[str, object]:
    return {
        "server_url": URL,
        "client_cert": pem["cert"],
        "client_key": pem["key"],
        "ca_cert": str(pem["cert"]),
        "secret_name": "acra_master_key",
    }


def test_the_placeholder_declares_what_it_is() -> None:
    assert KeywhizPlaceholder.name == "keywhiz"
    assert KeywhizPlaceholder.aliases == ()
    assert "Keywhiz" in KeywhizPlaceholder.description
    options = {o.name: o for o in KeywhizPlaceholder.options}
    assert list(options) == ["server_url", "client_cert", "client_key", "ca_cert", "secret_name"]
    assert [name for name, o in options.items() if o.required] == REQUIRED


class TestKeywhizPlaceholderContract(PlaceholderProviderContract):
    plugin: ClassVar[object] = keywhiz_plugin
    provider_name = "keywhiz"
    invalid_options: ClassVar[list[Any]] = [
        pytest.param(
            {"server_url": "http://keywhiz.example.invalid"}, "must be an https:// URL", id="http"
        ),
        pytest.param(
            {"server_url": "https://admin:hunter2@keywhiz"}, "user name or password", id="password"
        ),
        pytest.param({"server_url": "https://keywhiz/?token=hunter2"}, "query", id="query"),
        pytest.param(
            {"client_cert": lambda d: d / "missing.pem"}, "does not exist", id="cert-missing"
        ),
        pytest.param(
            {"client_key": lambda d: write_pem(d, "cert")},
            "holds no PEM private key",
            id="key-is-cert",
        ),
        pytest.param(
            {"ca_cert": lambda d: write_pem(d, "text")}, "holds no PEM certificate", id="ca-is-text"
        ),
        pytest.param({"secret_name": "a/b"}, "not a Keywhiz secret name", id="secret-name"),
    ]
    secret_values = ("hunter2",)

    @pytest.fixture
    def valid_options(self, pem: dict[str, Path]) -> dict[str, object]:
        return valid(pem)


# -- server_url ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", [URL, "https://keywhiz", "HTTPS://KEYWHIZ.EXAMPLE/", "https://[::1]:4444/base"]
)
def test_https_urls_accepted(url: str) -> None:
    check_server_url(url)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://keywhiz.example.invalid", "must be an https:// URL"),
        ("ftp://keywhiz.example.invalid", "must be an https:// URL"),
        ("keywhiz.example.invalid:4444", "must be an https:// URL"),
        ("", "must be an https:// URL"),
        ("https://", "has no host"),
        ("https://keywhiz:0", "has no host or a bad port"),
        ("https://keywhiz:99999", "is not a URL"),
        ("https://[::1", "is not a URL"),
        ("https://admin:hunter2@keywhiz", "must not carry a user name or password"),
        ("https://keywhiz/?token=hunter2", "must not have a query"),
        ("https://keywhiz/#frag", "must not have a query or fragment"),
    ],
)
def test_other_urls_refused_without_echoing_them(url: str, expected: str) -> None:
    with pytest.raises(ValueError, match=expected) as excinfo:
        check_server_url(url)
    assert "hunter2" not in str(excinfo.value)


# -- PEM files -------------------------------------------------------------------------


def test_pem_labels(pem: dict[str, Path]) -> None:
    assert pem_labels(pem["cert"], "certificate") == {"CERTIFICATE"}
    assert pem_labels(pem["key"], "key") == {"PRIVATE KEY"}
    assert pem_labels(pem["ec-key"], "key") == {"EC PRIVATE KEY"}
    assert pem_labels(pem["combined"], "bundle") == {"CERTIFICATE", "PRIVATE KEY"}
    assert pem_labels(pem["text"], "text") == set()


def test_pem_files_accepted(pem: dict[str, Path]) -> None:
    check_client_cert(pem["cert"])
    check_client_cert(pem["combined"])
    check_client_key(pem["key"])
    check_client_key(pem["ec-key"])
    check_client_key(pem["combined"])
    check_ca_cert(pem["cert"])


@pytest.mark.parametrize(
    ("check", "label", "expected"),
    [
        (check_client_cert, "key", "holds no PEM certificate"),
        (check_client_cert, "text", "holds no PEM certificate"),
        (check_client_key, "cert", "holds no PEM private key"),
        (check_client_key, "text", "holds no PEM private key"),
        (check_ca_cert, "key", "holds no PEM certificate"),
    ],
)
def test_pem_files_of_the_wrong_kind(
    check: Any, label: str, expected: str, pem: dict[str, Path]
) -> None:
    with pytest.raises(ValueError, match=expected) as excinfo:
        check(pem[label])
    assert str(pem[label]) in str(excinfo.value)
    assert "MI" not in str(excinfo.value)  # no base64 body of the file


@pytest.mark.parametrize("check", [check_client_cert, check_client_key, check_ca_cert])
def test_missing_and_directory_pem_paths(check: Any, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist: fix the path"):
        check(tmp_path / "missing.pem")
    with pytest.raises(ValueError, match="is not a regular file"):
        check(tmp_path)


# -- secret_name ------------------------------------------------------------


@pytest.mark.parametrize("name", ["acra_master_key", "ACRA-MASTER-KEY.v2", "team:acra"])
def test_secret_names_accepted(name: str) -> None:
    check_secret_name(name)


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "acra key", "tab\tname", "nul\0"])
def test_secret_names_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not a Keywhiz secret name"):
        check_secret_name(name)
