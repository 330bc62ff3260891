"""keyloader-gcp: the ``gcp-kms`` placeholder, its key name and credentials checks."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest

from keyloader.errors import ConfigError
from keyloader.testing import PlaceholderProviderContract
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


def write(path: Path, content: object) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def file_with(content: object) -> Callable[[Path], Path]:
    """An option value for ``invalid_options``: a credentials file holding ``content``."""
    return lambda directory: write(directory / "sa.json", content)


def test_the_placeholder_declares_what_it_is() -> None:
    assert GcpKmsPlaceholder.name == "gcp-kms"
    assert GcpKmsPlaceholder.aliases == ()
    assert "Google Cloud KMS" in GcpKmsPlaceholder.description
    options = {o.name: o for o in GcpKmsPlaceholder.options}
    assert list(options) == ["key_name", "credentials_path", "encrypted_key_variable"]
    assert [name for name, o in options.items() if o.required] == ["key_name"]
    assert options["credentials_path"].env == ("GOOGLE_APPLICATION_CREDENTIALS",)
    assert options["encrypted_key_variable"].default == "ACRA_MASTER_KEY"


class TestGcpKmsPlaceholderContract(PlaceholderProviderContract):
    plugin: ClassVar[object] = gcp_plugin
    provider_name = "gcp-kms"
    invalid_options: ClassVar[list[Any]] = [
        pytest.param(
            {"key_name": "projects/acme/cryptoKeys/master"},
            "is not a Cloud KMS crypto key name",
            id="key-name",
        ),
        pytest.param(
            {"key_name": KEY_NAME + "/cryptoKeyVersions/3"},
            "without /cryptoKeyVersions/N",
            id="key-version",
        ),
        pytest.param(
            {"credentials_path": file_with({**SERVICE_ACCOUNT, "type": "nope"})},
            "not a known credentials type",
            id="bad-type",
        ),
        pytest.param(
            {"credentials_path": file_with({**SERVICE_ACCOUNT, "client_email": ""})},
            "field 'client_email' is missing or empty",
            id="no-email",
        ),
        pytest.param(
            {"credentials_path": lambda d: d / "gone.json"}, "does not exist", id="missing"
        ),
        pytest.param({"encrypted_key_variable": ""}, "environment variable name", id="variable"),
    ]
    secret_values = ("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",)

    @pytest.fixture
    def valid_options(self, tmp_path: Path) -> dict[str, object]:
        return {
            "key_name": KEY_NAME,
            "credentials_path": write(tmp_path / "sa.json", SERVICE_ACCOUNT),
        }

    def test_google_application_credentials_is_read_and_checked_in_every_state(
        self, state: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "gone.json"))
        with pytest.raises(ConfigError) as excinfo:
            self.load_in_state(state, {"key_name": KEY_NAME})
        message = str(excinfo.value)
        where = (
            "option 'credentials_path' of provider 'gcp-kms' (from GOOGLE_APPLICATION_CREDENTIALS)"
        )
        assert message.startswith(where)
        assert "gone.json does not exist" in message


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
