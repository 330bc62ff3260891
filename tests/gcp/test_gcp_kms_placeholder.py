"""keyloader-gcp: the ``gcp-kms`` placeholder, its key name and credentials checks."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, NoReturn

import pytest

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
from keyloader_gcp import GcpKmsPlaceholder, check_credentials_file, check_key_name
from keyloader_gcp import plugin as gcp_plugin

KEY_NAME = "projects/acme-prod/locations/europe-west1/keyRings/acra/cryptoKeys/master"
PRIVATE_KEY = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n"
SERVICE_ACCOUNT = {
    "type": "service_account",
    "project_id": "acme-prod",
    "client_email": "acra@acme-prod.iam.gserviceaccount.com",
    "private_key": PRIVATE_KEY,
}


class GcpKmsForTests(GcpKmsPlaceholder):
    placeholder: ClassVar[bool] = False

    def load(self) -> NoReturn:
        raise ProviderUnavailableError("gcp-kms test implementation: no Google Cloud here")


STATE_ERRORS = {
    "locked": EnterpriseFeatureError,
    "unavailable": ProviderNotImplementedError,
    "available": ProviderUnavailableError,
}


def load(state: str, options: dict[str, object]) -> Any:
    plugins: list[ModuleType] = [gcp_plugin]
    if state == "available":
        module = ModuleType("gcp_kms_for_tests")
        module.keyloader_master_key_providers = keyloader.hookimpl(lambda: [GcpKmsForTests])  # type: ignore[attr-defined]
        plugins.append(module)
    pm = make_plugin_manager(autoload=False, env={}, plugins=plugins)
    return load_master_key(
        plugin_manager=pm,
        provider="gcp-kms",
        provider_options=options,
        enterprise=state != "locked",
    )


@pytest.fixture(autouse=True)
def no_google_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)


def write(path: Path, content: object) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_the_placeholder_declares_what_it_is() -> None:
    assert GcpKmsPlaceholder.name == "gcp-kms"
    assert (GcpKmsPlaceholder.enterprise, GcpKmsPlaceholder.placeholder) == (True, True)
    assert "Google Cloud KMS" in GcpKmsPlaceholder.description
    options = {o.name: o for o in GcpKmsPlaceholder.options}
    assert list(options) == ["key_name", "credentials_path", "encrypted_key_variable"]
    assert [name for name, o in options.items() if o.required] == ["key_name"]
    assert options["credentials_path"].env == ("GOOGLE_APPLICATION_CREDENTIALS",)
    assert options["encrypted_key_variable"].default == "ACRA_MASTER_KEY"
    pm = make_plugin_manager(autoload=False, env={}, plugins=[gcp_plugin])
    [row] = pm.provider_infos(enterprise=True)
    assert (row.name, row.status, row.aliases) == ("gcp-kms", ProviderStatus.UNAVAILABLE, ())


@pytest.mark.parametrize(
    "name",
    [
        KEY_NAME,
        "projects/123456789012/locations/global/keyRings/r/cryptoKeys/k",
        "projects/example.com:acme/locations/us/keyRings/ring_1/cryptoKeys/key-2",
        "projects/acme/locations/nam-eur-asia1/keyRings/" + "r" * 63 + "/cryptoKeys/k",
    ],
)
def test_key_names_accepted(name: str) -> None:
    check_key_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "acra",
        "projects/acme/keyRings/acra/cryptoKeys/master",
        "projects/acme/locations/global/keyRings/acra",
        "projects/acme/locations/global/keyRings/acra/cryptoKeys/master/",
        "/projects/acme/locations/global/keyRings/acra/cryptoKeys/master",
        "projects/acme/locations/global/cryptoKeys/master/keyRings/acra",
        "projects/acme/locations/global/keyRings/acra ring/cryptoKeys/master",
        "projects/acme/locations/global/keyRings/" + "r" * 64 + "/cryptoKeys/k",
        "projects//locations/global/keyRings/acra/cryptoKeys/master",
    ],
)
def test_key_names_refused(name: str) -> None:
    with pytest.raises(ValueError, match=r"not a Cloud KMS crypto key name: use projects/PROJECT"):
        check_key_name(name)


def test_a_key_version_gets_a_hint() -> None:
    with pytest.raises(ValueError, match="without /cryptoKeyVersions/N"):
        check_key_name(KEY_NAME + "/cryptoKeyVersions/3")


@pytest.mark.parametrize("state", sorted(STATE_ERRORS))
def test_a_malformed_key_name_is_a_config_error_in_every_state(state: str) -> None:
    with pytest.raises(ConfigError, match=r"^option 'key_name' of provider 'gcp-kms'"):
        load(state, {"key_name": "projects/acme/cryptoKeys/master"})


@pytest.mark.parametrize("state", sorted(STATE_ERRORS))
def test_valid_options_reach_the_gate_then_the_implementation(state: str, tmp_path: Path) -> None:
    credentials = write(tmp_path / "sa.json", SERVICE_ACCOUNT)
    with pytest.raises(STATE_ERRORS[state]):
        load(state, {"key_name": KEY_NAME, "credentials_path": credentials})


def test_missing_key_name_is_reported_only_after_the_gate() -> None:
    with pytest.raises(EnterpriseFeatureError):
        load("locked", {})
    with pytest.raises(ProviderNotImplementedError):
        load("unavailable", {})
    with pytest.raises(ConfigError, match="needs option 'key_name'"):
        load("available", {})


# -- credentials files ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (SERVICE_ACCOUNT, "service_account"),
        (
            {
                "type": "authorized_user",
                "client_id": "a",
                "client_secret": "b",
                "refresh_token": "c",
            },
            "authorized_user",
        ),
        ({"type": "external_account", "audience": "//iam.googleapis.com/x"}, "external_account"),
    ],
)
def test_credentials_files_accepted(content: object, kind: str, tmp_path: Path) -> None:
    assert check_credentials_file(write(tmp_path / "c.json", content)) == kind


BAD_FILES: list[tuple[str, object, str]] = [
    ("not-json", "type: service_account", "is not valid JSON"),
    ("array", [SERVICE_ACCOUNT], "does not hold a JSON object"),
    ("no-type", {"private_key": PRIVATE_KEY}, "field 'type' is missing"),
    ("bad-type", {**SERVICE_ACCOUNT, "type": "api_key"}, "not a known credentials type"),
    ("no-key", {**SERVICE_ACCOUNT, "private_key": ""}, "field 'private_key' is missing or empty"),
    ("no-email", {"type": "service_account", "private_key": PRIVATE_KEY}, "'client_email'"),
    (
        "user-no-token",
        {"type": "authorized_user", "client_id": "a", "client_secret": PRIVATE_KEY},
        "'refresh_token'",
    ),
]


@pytest.mark.parametrize(("label", "content", "expected"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_credentials_files_never_show_a_value(
    label: str, content: object, expected: str, tmp_path: Path
) -> None:
    path = write(tmp_path / f"{label}.json", content)
    with pytest.raises(ConfigError) as excinfo:
        check_credentials_file(path)
    message = str(excinfo.value)
    assert str(path) in message
    assert expected in message
    assert "MIIEvQ" not in message


def test_missing_and_directory_credentials(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        check_credentials_file(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="is not a regular file"):
        check_credentials_file(tmp_path)


@pytest.mark.parametrize("state", sorted(STATE_ERRORS))
def test_google_application_credentials_is_read_and_checked_in_every_state(
    state: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "gone.json"))
    with pytest.raises(ConfigError) as excinfo:
        load(state, {"key_name": KEY_NAME})
    message = str(excinfo.value)
    where = "option 'credentials_path' of provider 'gcp-kms' (from GOOGLE_APPLICATION_CREDENTIALS)"
    assert message.startswith(where)
    assert "gone.json does not exist" in message


@pytest.mark.parametrize("state", sorted(STATE_ERRORS))
def test_bad_credentials_json_is_a_config_error_in_every_state(state: str, tmp_path: Path) -> None:
    path = write(tmp_path / "sa.json", {**SERVICE_ACCOUNT, "type": "nope"})
    with pytest.raises(ConfigError, match=r"^option 'credentials_path' of provider 'gcp-kms'"):
        load(state, {"key_name": KEY_NAME, "credentials_path": str(path)})
