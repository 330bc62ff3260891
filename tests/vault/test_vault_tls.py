"""TLS against a real ``bao server -dev-tls``, and mutual TLS on a listener that requires it."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from keyloader.api import load_master_key
from keyloader.errors import ConfigError, ProviderUnavailableError
from keyloader.masterkey import MasterKey
from keyloader_vault import VaultProvider

from ..keytext import text_of


def load(**options: Any) -> MasterKey:
    provider = VaultProvider(options)
    try:
        return provider.load()
    finally:
        provider.close()


@pytest.fixture
def tls_secret(bao_tls: Any, key: MasterKey) -> dict[str, Any]:
    """Options reaching a secret holding ``key`` on the TLS server (no CA given yet)."""
    name = f"acra-{uuid.uuid4().hex[:12]}"
    bao_tls.admin().secrets.kv.v2.create_or_update_secret(
        path=name, secret={"acra_master_key": text_of(key)}, mount_point="secret"
    )
    return {"address": bao_tls.address, "token": bao_tls.token, "secrets_path": f"secret/{name}"}


def test_tls_with_the_dev_ca(bao_tls: Any, key: MasterKey, tls_secret: dict[str, Any]) -> None:
    with load(**tls_secret, ca_cert=bao_tls.ca_cert) as loaded:
        assert loaded == key


def test_vault_cacert_from_the_environment(
    bao_tls: Any, key: MasterKey, tls_secret: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_CACERT", str(bao_tls.ca_cert))
    monkeypatch.setenv("VAULT_ADDR", tls_secret["address"])
    monkeypatch.setenv("VAULT_TOKEN", tls_secret["token"])
    options = {"secrets_path": tls_secret["secrets_path"]}
    with load_master_key(provider="vault", provider_options=options) as loaded:
        assert loaded == key


def test_tls_fails_without_the_ca(
    bao_tls: Any, tls_secret: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests' own REQUESTS_CA_BUNDLE is not consulted: keyloader's ca_cert decides."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bao_tls.ca_cert))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(bao_tls.ca_cert))
    provider = VaultProvider({**tls_secret, "retries": 20})
    responses: list[int] = []
    provider.http_session().hooks["response"].append(lambda r, *a, **k: responses.append(1))
    started = time.monotonic()
    try:
        with pytest.raises(ProviderUnavailableError) as caught:
            provider.load()
    finally:
        provider.close()
    assert time.monotonic() - started < 1.0  # not retried: 20 backoffs would take much longer
    message = str(caught.value)
    assert "certificate verify failed" in message
    assert "ca_cert" in message
    assert bao_tls.address in message
    assert tls_secret["token"] not in message
    assert responses == []


def test_missing_ca_file_is_a_config_error(tls_secret: dict[str, Any], tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="ca_cert"):
        load(**tls_secret, ca_cert=tmp_path / "missing.pem")


def test_tls_server_name(bao_tls: Any, key: MasterKey, tls_secret: dict[str, Any]) -> None:
    """The dev certificate names localhost: SNI and verification use tls_server_name."""
    with load(**tls_secret, ca_cert=bao_tls.ca_cert, tls_server_name="localhost") as loaded:
        assert loaded == key
    with pytest.raises(ProviderUnavailableError, match="certificate verify failed"):
        load(**tls_secret, ca_cert=bao_tls.ca_cert, tls_server_name="wrong.example")


def test_tls_skip_verify_warns(
    key: MasterKey, tls_secret: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    with load(**tls_secret, tls_skip_verify=True) as loaded:
        assert loaded == key
    captured = capsys.readouterr()
    assert "tls_skip_verify" in captured.err
    assert "NOT verified" in captured.err
    assert captured.out == ""


def test_vault_skip_verify_is_not_read(
    tls_secret: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_SKIP_VERIFY", "1")
    with pytest.raises(ProviderUnavailableError, match="certificate verify failed"):
        load(**tls_secret)


# -- mutual TLS ---------------------------------------------------------------------------------


@pytest.fixture
def mtls_secret(bao_tls: Any, tls_secret: dict[str, Any]) -> dict[str, Any]:
    """The same secret through the listener that requires a client certificate."""
    return {**tls_secret, "address": bao_tls.mtls_address, "ca_cert": bao_tls.extra["mtls_ca"]}


def test_mutual_tls(bao_tls: Any, key: MasterKey, mtls_secret: dict[str, Any]) -> None:
    pki = bao_tls.extra
    with load(
        **mtls_secret, client_cert=pki["client_cert"], client_key=pki["client_key"]
    ) as loaded:
        assert loaded == key


def test_mutual_tls_from_the_environment(
    bao_tls: Any, key: MasterKey, mtls_secret: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    pki = bao_tls.extra
    monkeypatch.setenv("VAULT_CLIENT_CERT", str(pki["client_cert"]))
    monkeypatch.setenv("VAULT_CLIENT_KEY", str(pki["client_key"]))
    monkeypatch.setenv("VAULT_CACERT", str(pki["mtls_ca"]))
    monkeypatch.setenv("VAULT_ADDR", mtls_secret["address"])
    monkeypatch.setenv("VAULT_TOKEN", mtls_secret["token"])
    options = {"secrets_path": mtls_secret["secrets_path"]}
    with load_master_key(provider="vault", provider_options=options) as loaded:
        assert loaded == key


def test_mutual_tls_without_a_client_certificate(mtls_secret: dict[str, Any]) -> None:
    provider = VaultProvider({**mtls_secret, "retries": 3})
    try:
        with pytest.raises(ProviderUnavailableError) as caught:
            provider.load()
    finally:
        provider.close()
    message = str(caught.value)
    assert "CERTIFICATE_REQUIRED" in message
    assert "client_cert" in message
    assert mtls_secret["token"] not in message


def test_half_mutual_tls_is_a_config_error(bao_tls: Any, mtls_secret: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="client_key"):
        load(**mtls_secret, client_cert=bao_tls.extra["client_cert"])
