"""keyloader-keywhiz: the ``keywhiz`` placeholder, its URL, PEM file and secret name checks."""

from __future__ import annotations

import datetime
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, NoReturn

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import keyloader
from keyloader.api import load_master_key
from keyloader.errors import (
    ConfigError,
    EnterpriseFeatureError,
    ProviderNotImplementedError,
    ProviderUnavailableError,
)
from keyloader.plugins import make_plugin_manager
from keyloader.providers import ProviderStatus
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


class KeywhizForTests(KeywhizPlaceholder):
    placeholder: ClassVar[bool] = False

    def load(self) -> NoReturn:
        raise ProviderUnavailableError("keywhiz test implementation: no server here")


STATE_ERRORS = {
    "locked": EnterpriseFeatureError,
    "unavailable": ProviderNotImplementedError,
    "available": ProviderUnavailableError,
}


def load(state: str, options: dict[str, object]) -> Any:
    plugins: list[ModuleType] = [keywhiz_plugin]
    if state == "available":
        module = ModuleType("keywhiz_for_tests")
        module.keyloader_master_key_providers = keyloader.hookimpl(lambda: [KeywhizForTests])  # type: ignore[attr-defined]
        plugins.append(module)
    pm = make_plugin_manager(autoload=False, env={}, plugins=plugins)
    return load_master_key(
        plugin_manager=pm,
        provider="keywhiz",
        provider_options=options,
        enterprise=state != "locked",
    )


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real PEM files: a client certificate, its PKCS#8 key, the key encrypted (SEC1 format)."""
    directory = tmp_path_factory.mktemp("pem")
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
    paths = {}
    for label, content in contents.items():
        paths[label] = directory / f"{label}.pem"
        paths[label].write_bytes(content)
    paths["combined"] = directory / "combined.pem"
    paths["combined"].write_bytes(contents["cert"] + contents["key"])
    return paths


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
    assert (KeywhizPlaceholder.enterprise, KeywhizPlaceholder.placeholder) == (True, True)
    assert "Keywhiz" in KeywhizPlaceholder.description
    options = {o.name: o for o in KeywhizPlaceholder.options}
    assert list(options) == ["server_url", "client_cert", "client_key", "ca_cert", "secret_name"]
    assert [name for name, o in options.items() if o.required] == REQUIRED
    pm = make_plugin_manager(autoload=False, env={}, plugins=[keywhiz_plugin])
    [row] = pm.provider_infos(enterprise=False)
    assert (row.name, row.status) == ("keywhiz", ProviderStatus.LOCKED)


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


@pytest.mark.parametrize("state", sorted(STATE_ERRORS))
def test_an_http_url_is_a_config_error_in_every_state(state: str, pem: dict[str, Path]) -> None:
    options = {**valid(pem), "server_url": "http://keywhiz.example.invalid"}
    with pytest.raises(ConfigError, match=r"^option 'server_url' of provider 'keywhiz'.*https://"):
        load(state, options)


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


@pytest.mark.parametrize("state", sorted(STATE_ERRORS))
@pytest.mark.parametrize(
    ("option", "label"), [("client_cert", "missing"), ("client_key", "cert"), ("ca_cert", "text")]
)
def test_bad_pem_options_are_config_errors_in_every_state(
    option: str, label: str, state: str, pem: dict[str, Path], tmp_path: Path
) -> None:
    path = tmp_path / "missing.pem" if label == "missing" else pem[label]
    with pytest.raises(ConfigError, match=rf"^option '{option}' of provider 'keywhiz'"):
        load(state, {**valid(pem), option: str(path)})


# -- secret_name and the gate ------------------------------------------------------------


@pytest.mark.parametrize("name", ["acra_master_key", "ACRA-MASTER-KEY.v2", "team:acra"])
def test_secret_names_accepted(name: str) -> None:
    check_secret_name(name)


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "acra key", "tab\tname", "nul\0"])
def test_secret_names_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not a Keywhiz secret name"):
        check_secret_name(name)


@pytest.mark.parametrize("state", sorted(STATE_ERRORS))
def test_valid_options_reach_the_gate_then_the_implementation(
    state: str, pem: dict[str, Path]
) -> None:
    with pytest.raises(STATE_ERRORS[state]):
        load(state, valid(pem))


def test_missing_required_options_are_reported_only_after_the_gate() -> None:
    with pytest.raises(EnterpriseFeatureError):
        load("locked", {})
    with pytest.raises(ProviderNotImplementedError):
        load("unavailable", {})
    with pytest.raises(ConfigError) as excinfo:
        load("available", {"server_url": URL})
    message = str(excinfo.value)
    for option in REQUIRED[1:]:
        assert f"option '{option}'" in message
    assert "option 'server_url'" not in message
    assert "option 'ca_cert'" not in message
