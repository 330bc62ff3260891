"""``PlaceholderProviderContract`` run against a toy placeholder, and shown to catch bad ones."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import os
import socket
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pytest

import keyloader
from keyloader.errors import ConfigError, EnterpriseFeatureError
from keyloader.masterkey import MasterKey
from keyloader.providers import MasterKeyProvider, Option, PlaceholderProvider
from keyloader.testing import PlaceholderProviderContract
from keyloader.testing.placeholders import _as_param

SECRET_TOKEN = "tok-3f9a1c77e0b2"


def check_key_name(name: str) -> None:
    if not name.startswith("keys/"):
        raise ValueError(f"{name!r} is not a key name: use keys/NAME")


def check_token_file(path: Path) -> None:
    if not path.is_file():
        raise ValueError(f"token file {path} does not exist: fix the path")
    if not path.read_text().startswith("token="):
        raise ValueError(f"token file {path} holds no token= line")


def check_password(password: str) -> None:
    if len(password) < 8:
        raise ValueError("is shorter than 8 characters")


class ToyKmsPlaceholder(PlaceholderProvider):
    """A placeholder as the aws/gcp/keywhiz distributions write one."""

    name: ClassVar[str] = "toy-kms"
    aliases: ClassVar[tuple[str, ...]] = ("toy_kms",)
    description: ClassVar[str] = "Master key decrypted by a toy KMS (tests only)"
    options: ClassVar[tuple[Option, ...]] = (
        Option(
            "key_name", "Key that decrypts the master key.", required=True, validator=check_key_name
        ),
        Option(
            "token_file",
            "File holding the access token.",
            type="path",
            required=True,
            validator=check_token_file,
        ),
        Option("password", "Password of the token.", secret=True, validator=check_password),
        Option("region", "Region.", default="north", env=("TOY_REGION",)),
    )


def plugin_of(*classes: type[MasterKeyProvider]) -> ModuleType:
    module = ModuleType(f"toy_plugin_{classes[0].__name__}")
    hook = keyloader.hookimpl(lambda: list(classes))
    module.keyloader_master_key_providers = hook  # type: ignore[attr-defined]
    return module


def write_token(directory: Path, text: str = f"token={SECRET_TOKEN}\n") -> Path:
    path = directory / "token.txt"
    path.write_text(text)
    return path


def valid(tmp_path: Path) -> dict[str, object]:
    return {"key_name": "keys/acra", "token_file": write_token(tmp_path), "password": "p" * 9}


class ToyContract(PlaceholderProviderContract):
    plugin = plugin_of(ToyKmsPlaceholder)
    provider_name = "toy-kms"
    invalid_options: ClassVar[list[Any]] = [
        ({"key_name": "nope"}, "is not a key name"),
        pytest.param({"token_file": lambda d: d / "none.txt"}, "does not exist", id="missing"),
        pytest.param(
            {"token_file": lambda d: write_token(d, SECRET_TOKEN)}, "holds no token=", id="bare"
        ),
        pytest.param({"password": "q7#z"}, "shorter than 8", id="password"),
    ]
    secret_values = (SECRET_TOKEN,)
    environment_variables = ("TOY_EXTRA",)

    @pytest.fixture
    def valid_options(self, tmp_path: Path) -> dict[str, object]:
        return valid(tmp_path)


class TestToyKmsPlaceholder(ToyContract):
    # The toy plugin is built in memory, so a fresh interpreter cannot import it: that check
    # runs on a plugin module written to disk, in test_catches_an_sdk_imported_by_the_plugin_module.
    test_importing_the_plugin_imports_no_sdk = None  # type: ignore[assignment]

    def test_a_subclass_test_with_state_runs_in_every_state(
        self, state: str, request: pytest.FixtureRequest
    ) -> None:
        assert request.node.callspec.id == state

    def test_the_environment_is_cleared(self) -> None:
        assert "TOY_REGION" not in os.environ
        assert "KEYLOADER_TOY_KMS_KEY_NAME" not in os.environ
        assert "TOY_EXTRA" not in os.environ


@pytest.fixture(autouse=True)
def polluted_environment(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """Set, for the suite's tests, what it must clear (its class fixture runs after this one)."""
    if request.cls is not TestToyKmsPlaceholder:
        return
    monkeypatch.setenv("TOY_REGION", "south")
    monkeypatch.setenv("KEYLOADER_TOY_KMS_KEY_NAME", "nope")
    monkeypatch.setenv("TOY_EXTRA", "1")


def test_the_suite_has_its_tests() -> None:
    names = {name for name in dir(PlaceholderProviderContract) if name.startswith("test_")}
    assert len(names) >= 10
    assert "test_no_sdk_is_imported_and_nothing_is_contacted" in names


def test_invalid_cases_are_named_by_their_id_or_options() -> None:
    ids = [_as_param(case, i).id for i, case in enumerate(ToyContract.invalid_options)]
    assert ids == ["0-key_name", "missing", "bare", "password"]


# -- the suite catches bad placeholders ------------------------------------------------------


def contract_for(cls: type[MasterKeyProvider], **attributes: Any) -> ToyContract:
    """An instance of the toy suite pointed at a plugin registering ``cls``."""
    suite = type("BadToy", (ToyContract,), {"plugin": plugin_of(cls), **attributes})
    instance: ToyContract = suite()
    return instance


def with_validator(name: str, validator: Callable[[Any], None]) -> tuple[Option, ...]:
    """The toy's options, with ``validator`` checking option ``name``."""
    return tuple(
        dataclasses.replace(o, validator=validator) if o.name == name else o
        for o in ToyKmsPlaceholder.options
    )


def test_the_toy_passes_when_called_directly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control for the checks below: the same calls pass on the good toy."""
    suite = contract_for(ToyKmsPlaceholder)
    suite.test_the_plugin_registers_a_placeholder()
    for state in ("locked", "unavailable", "available"):
        suite.test_listed_status_in_each_state(state)
        suite.test_valid_options_reach_the_gate_in_each_state(state, valid(tmp_path))
        suite.test_error_messages_hide_secret_values(state, valid(tmp_path), tmp_path / state)
        suite.test_no_sdk_is_imported_and_nothing_is_contacted(
            state, valid(tmp_path), tmp_path / f"sdk-{state}", monkeypatch
        )


def test_catches_a_class_that_is_not_a_placeholder(tmp_path: Path) -> None:
    class NotAPlaceholder(ToyKmsPlaceholder):
        placeholder: ClassVar[bool] = False

        def load(self) -> MasterKey:
            raise ConfigError("never")

    suite = contract_for(NotAPlaceholder)
    with pytest.raises(AssertionError, match="placeholder = True"):
        suite.test_the_plugin_registers_a_placeholder()
    with pytest.raises(AssertionError):
        suite.test_listed_status_in_each_state("unavailable")


def test_catches_a_placeholder_that_is_not_enterprise() -> None:
    class OpenSource(ToyKmsPlaceholder):
        enterprise: ClassVar[bool] = False

    with pytest.raises(AssertionError, match="Enterprise Edition"):
        contract_for(OpenSource).test_the_plugin_registers_a_placeholder()
    with pytest.raises(AssertionError):  # listed as unavailable, not locked, with the flag off
        contract_for(OpenSource).test_listed_status_in_each_state("locked")


@pytest.mark.parametrize(
    ("module", "state"),
    [
        ("kltest_fake_sdk.client", "locked"),  # not installed: the failed import is still seen
        ("json", "unavailable"),  # imported long ago: hidden meanwhile, so the import is seen
    ],
)
def test_catches_an_sdk_import_during_validation(
    module: str, state: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def imports_an_sdk(name: str) -> None:
        with contextlib.suppress(ImportError):  # a placeholder hiding the failure is still caught
            importlib.import_module(module)

    class Heavy(ToyKmsPlaceholder):
        options = with_validator("key_name", imports_an_sdk)

    top = module.split(".")[0]
    json_module = sys.modules["json"]
    suite = contract_for(Heavy, forbidden_modules=(top,))
    with pytest.raises(AssertionError, match=rf"imported \['{top}"):
        suite.test_no_sdk_is_imported_and_nothing_is_contacted(
            state, valid(tmp_path), tmp_path / "cases", monkeypatch
        )
    assert sys.modules["json"] is json_module  # restored after the watch


def test_catches_network_use_during_validation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def resolves_a_host(name: str) -> None:
        with contextlib.suppress(OSError):
            socket.getaddrinfo("localhost", 443)

    class Chatty(ToyKmsPlaceholder):
        options = with_validator("key_name", resolves_a_host)

    with pytest.raises(AssertionError, match=r"socket\.getaddrinfo"):
        contract_for(Chatty).test_no_sdk_is_imported_and_nothing_is_contacted(
            "available", valid(tmp_path), tmp_path / "cases", monkeypatch
        )


def test_catches_a_secret_in_an_error_message(tmp_path: Path) -> None:
    def shows_the_file(path: Path) -> None:
        raise ValueError(f"token file {path} is bad: {path.read_text()!r}")

    class Leaky(ToyKmsPlaceholder):
        options = with_validator("token_file", shows_the_file)

    suite = contract_for(Leaky, invalid_options=[])
    with pytest.raises(AssertionError, match="shows a secret value"):
        suite.test_error_messages_hide_secret_values("locked", valid(tmp_path), tmp_path)


def test_catches_a_secret_option_value_in_an_error_message(tmp_path: Path) -> None:
    def shows_the_password(password: str) -> None:
        raise ValueError(f"{password!r} is not accepted")

    class Leaky(ToyKmsPlaceholder):
        options = with_validator("password", shows_the_password)

    suite = contract_for(Leaky, secret_values=())
    with pytest.raises(AssertionError, match="shows a secret value"):
        suite.test_invalid_options_are_config_errors_in_every_state(
            "unavailable",
            ({"password": "zz9-leaky-pass"}, "is not accepted"),
            valid(tmp_path),
            tmp_path,
        )


def test_catches_validation_that_waits_for_the_gate(tmp_path: Path) -> None:
    """Checking options in ``load()`` instead of their validators is too late."""

    class Lazy(ToyKmsPlaceholder):
        options = with_validator("key_name", lambda name: None)

    case = ({"key_name": "nope"}, "is not a key name")
    suite = contract_for(Lazy)
    with pytest.raises(EnterpriseFeatureError):  # the gate answered first
        suite.test_invalid_options_are_config_errors_in_every_state(
            "locked", case, valid(tmp_path), tmp_path
        )


def test_catches_an_error_that_does_not_name_the_option(tmp_path: Path) -> None:
    class Vague(ToyKmsPlaceholder):
        @classmethod
        def validate(cls, given: Mapping[str, Any]) -> None:
            if str(given.get("key_name", "")).endswith("/bad"):
                raise ConfigError("something is not a key name")

    case = ({"key_name": "keys/bad"}, "is not a key name")
    with pytest.raises(AssertionError, match="does not start by naming"):
        contract_for(Vague).test_invalid_options_are_config_errors_in_every_state(
            "locked", case, valid(tmp_path), tmp_path
        )


def test_catches_a_required_option_checked_before_the_gate(tmp_path: Path) -> None:
    class Eager(ToyKmsPlaceholder):
        @classmethod
        def validate(cls, given: Mapping[str, Any]) -> None:
            if "key_name" not in given:
                raise ConfigError("option 'key_name' of provider 'toy-kms' is required")

    with pytest.raises(ConfigError, match="is required"):  # not the EnterpriseFeatureError
        contract_for(Eager).test_missing_required_options_are_reported_only_after_the_gate(
            "locked", valid(tmp_path)
        )


PLUGIN_MODULE = """
{sdk_import}
import keyloader
from keyloader.providers import PlaceholderProvider


class FileToyPlaceholder(PlaceholderProvider):
    name = "file-toy-kms"
    description = "A toy placeholder in a module file (tests only)"


@keyloader.hookimpl
def keyloader_master_key_providers():
    return [FileToyPlaceholder]
"""


@pytest.mark.parametrize("heavy", [False, True])
def test_catches_an_sdk_imported_by_the_plugin_module(
    heavy: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The import of the plugin module itself is checked in a fresh interpreter."""
    (tmp_path / "kltest_fake_sdk.py").write_text("CLIENT = object()\n")
    name = f"kltest_file_toy_{'heavy' if heavy else 'light'}"
    sdk_import = "import kltest_fake_sdk" if heavy else ""
    (tmp_path / f"{name}.py").write_text(PLUGIN_MODULE.format(sdk_import=sdk_import))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    module = importlib.import_module(name)
    attributes = {"plugin": module, "provider_name": "file-toy-kms"}
    suite = type(
        "FileToy", (ToyContract,), {**attributes, "forbidden_modules": ("kltest_fake_sdk",)}
    )
    check = suite().test_importing_the_plugin_imports_no_sdk
    if heavy:
        with pytest.raises(AssertionError, match="kltest_fake_sdk"):
            check()
    else:
        check()
