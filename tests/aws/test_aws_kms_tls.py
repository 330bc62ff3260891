"""aws-kms over TLS to a real moto server with a test CA: ca_bundle (AWS_CA_BUNDLE) decides."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keyloader.api import load_master_key
from keyloader.errors import ConfigError, ProviderUnavailableError
from keyloader.masterkey import generate_master_key

from ..pki import make_pki
from .conftest import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    MotoServer,
    encrypted_key,
    make_alias,
    start_moto,
)


@pytest.fixture(scope="module")
def tls_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    directory = tmp_path_factory.mktemp("moto-tls")
    pki = make_pki(directory)
    server = start_moto(
        directory, cert=pki["server_cert"], key=pki["server_key"], ca_cert=pki["mtls_ca"]
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def options(tls_moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    tls_moto.reset()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    return {"region": REGION, "endpoint": tls_moto.url}


def load(options: dict[str, object]) -> Any:
    return load_master_key(provider="aws-kms", provider_options=options, enterprise=True)


def test_the_test_ca_verifies_the_endpoint(
    tls_moto: MotoServer, options: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert tls_moto.url.startswith("https://")
    admin = tls_moto.admin()
    make_alias(admin)
    with generate_master_key() as key:
        monkeypatch.setenv("ACRA_MASTER_KEY", encrypted_key(admin, key))
        with load({**options, "ca_bundle": str(tls_moto.ca_cert)}) as loaded:
            assert loaded == key
        monkeypatch.setenv("AWS_CA_BUNDLE", str(tls_moto.ca_cert))
        with load(options) as loaded:
            assert loaded == key


def test_an_unknown_ca_is_a_tls_failure_not_retried(
    tls_moto: MotoServer, options: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = tls_moto.admin()
    make_alias(admin)
    with generate_master_key() as key:
        monkeypatch.setenv("ACRA_MASTER_KEY", encrypted_key(admin, key))
    with pytest.raises(ProviderUnavailableError) as caught:
        load({**options, "retries": 5})
    message = str(caught.value)
    assert "TLS failed: certificate verification failed" in message
    assert "attempts" not in message, "a certificate problem was retried"


def test_a_missing_ca_bundle_file(
    options: dict[str, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACRA_MASTER_KEY", "Y" * 88)
    with pytest.raises(ConfigError, match=r"option 'ca_bundle' .* does not exist"):
        load({**options, "ca_bundle": str(tmp_path / "absent.pem")})
