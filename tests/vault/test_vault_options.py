"""The vault provider's schema, validation, credentials and plugin registration (no server)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from keyloader.api import load_master_key, resolve
from keyloader.config import Layer, provider_option_env_names
from keyloader.errors import ConfigError
from keyloader.plugins import make_plugin_manager
from keyloader_vault import VaultProvider
from keyloader_vault.config import VaultConfig
from keyloader_vault.options import OPTIONS

ADDRESS = "http://127.0.0.1:1"  # never contacted by these tests


def option(name: str) -> Any:
    return next(item for item in OPTIONS if item.name == name)


def test_registered_under_its_name_and_acra_alias() -> None:
    pm = make_plugin_manager()
    assert pm.find_provider("vault") is VaultProvider
    assert pm.find_provider("vault_master_key") is VaultProvider
    assert VaultProvider.aliases == ("vault_master_key",)
    assert VaultProvider.enterprise is False


@pytest.mark.parametrize(
    ("name", "natives"),
    [
        ("address", ("VAULT_ADDR",)),
        ("token", ("VAULT_TOKEN",)),
        ("api_token", ("VAULT_API_TOKEN",)),
        ("namespace", ("VAULT_NAMESPACE",)),
        ("ca_cert", ("VAULT_CACERT",)),
        ("client_cert", ("VAULT_CLIENT_CERT",)),
        ("client_key", ("VAULT_CLIENT_KEY",)),
        ("tls_server_name", ("VAULT_TLS_SERVER_NAME",)),
        ("tls_skip_verify", ()),  # VAULT_SKIP_VERIFY is deliberately not read
        ("secrets_path", ()),  # Acra has only the flag vault_secrets_path
    ],
)
def test_environment_names(name: str, natives: tuple[str, ...]) -> None:
    expected = (f"KEYLOADER_VAULT_{name.upper()}", *natives)
    assert provider_option_env_names("vault", option(name)) == expected


def test_acra_defaults() -> None:
    assert option("secrets_path").default == "secret/"
    assert option("field").default == "acra_master_key"
    assert option("kv_version").default == "auto"
    assert option("address").required is True
    assert {o.name for o in OPTIONS if o.secret} == {
        "token",
        "api_token",
        "secret_id",
        "secret_id_wrapped",
    }


@pytest.mark.parametrize("name", ["token", "api_token", "secret_id", "secret_id_wrapped"])
def test_secret_options_are_refused_on_the_command_line(name: str) -> None:
    settings = resolve(cli=Layer(provider="vault", provider_options={name: "s.value-123"}))
    with pytest.raises(ConfigError, match="refused on the command line") as caught:
        load_master_key(settings)
    assert "s.value-123" not in str(caught.value)


@pytest.mark.parametrize(
    ("given", "match"),
    [
        ({"address": "vault.example.com:8200"}, "http:// or https://"),
        ({"address": "ftp://vault"}, "http:// or https://"),
        ({"address": "https://vault?x=1"}, "query"),
        ({"address": "http://127.0.0.1:99999"}, "bad port"),
        ({"address": "http://a:8200,,http://b:8200"}, "entry 2 is empty"),
        ({"address": "http://a:8200, b:8200"}, "entry 2 must be an http"),
        ({"address": "http://a:8200,https://b:8200"}, "mixes http:// and https://"),
        ({"attempt_timeout": "0"}, "> 0"),
        ({"secrets_path": "//"}, "<mount>/<path>"),
        ({"secrets_path": "secret/../sys"}, r"'\.\.'"),
        ({"field": ""}, "empty"),
        ({"kv_version": "3"}, "auto, 1, 2"),
        ({"secret_version": "0"}, ">= 1"),
        ({"timeout": "0"}, "> 0"),
        ({"timeout": "inf"}, "> 0"),
        ({"retries": "-1"}, "0 to 20"),
        ({"mount": "team/kv", "secrets_path": "team/kv/x"}, "kv_version is 1 or 2"),
        ({"mount": "team/kv", "kv_version": "2", "secrets_path": "other/x"}, "not under it"),
        ({"secret_version": "3", "kv_version": "1"}, "KV v2"),
        ({"client_cert": "c.pem"}, "client_key"),
        ({"client_key": "k.pem"}, "client_cert"),
        ({"role_id": "r"}, "secret id"),
        ({"secret_id_file": "s"}, "role_id"),
    ],
)
def test_invalid_options_are_config_errors(given: dict[str, str], match: str) -> None:
    options = {"address": ADDRESS, **given}
    with pytest.raises(ConfigError, match=match):
        load_master_key(provider="vault", provider_options=options)


def test_options_are_checked_before_any_request(tmp_path: Path) -> None:
    provider = VaultProvider({"address": ADDRESS, "mount": "x", "token": "t"})
    with pytest.raises(ConfigError, match="mount"):
        provider.load()


# -- credentials (checked before any request) ------------------------------------------------


def load_with(**options: Any) -> None:
    provider = VaultProvider({"address": ADDRESS, "secrets_path": "secret/acra", **options})
    try:
        provider.load()
    finally:
        provider.close()


def test_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    (Path.home() / ".vault-token").write_text("s.home-token")
    with pytest.raises(ConfigError, match="no Vault credentials") as caught:
        load_with()
    assert "VAULT_TOKEN" in str(caught.value)
    assert "s.home-token" not in str(caught.value)


@pytest.mark.parametrize("bad", ["not base64!", "YWJ", "YW=j"])
def test_bad_vault_api_token(bad: str) -> None:
    with pytest.raises(ConfigError, match="VAULT_API_TOKEN") as caught:
        load_with(api_token=bad)
    assert bad not in str(caught.value)


def test_token_with_a_newline_inside_is_refused() -> None:
    token = "s.abc\ndef"
    with pytest.raises(ConfigError, match="position 6") as caught:
        load_with(token=token)
    assert "s.abc" not in str(caught.value)
    api = base64.b64encode(b"s.abc def\n").decode()
    with pytest.raises(ConfigError, match="VAULT_API_TOKEN"):
        load_with(api_token=api)


def test_missing_and_empty_token_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(ConfigError, match=f"{missing} .*does not exist"):
        load_with(token_file=missing)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        load_with(token_file=empty)
    with pytest.raises(ConfigError, match="secret_id_file"):
        load_with(role_id="r", secret_id_file=missing)


def test_repr_hides_credentials() -> None:
    provider = VaultProvider({"address": ADDRESS, "token": "s.visible-token", "secret_id": "sid"})
    config = VaultConfig.from_options({"address": ADDRESS, "token": "s.visible-token"})
    for text in (repr(provider), str(provider), repr(config)):
        assert "s.visible-token" not in text
    assert ADDRESS in repr(provider)


def test_hvac_and_requests_load_only_when_used() -> None:
    probe = (
        "import json, sys\n"
        "from keyloader.plugins import make_plugin_manager\n"
        "pm = make_plugin_manager()\n"
        "cls = pm.find_provider('vault')\n"
        "provider = cls({'address': 'http://127.0.0.1:1', 'token': 't'})\n"
        "cls.validate({'address': 'http://127.0.0.1:1'})\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    loaded = set(json.loads(output))
    assert "keyloader_vault" in loaded
    assert not loaded & {"hvac", "requests", "urllib3"}
