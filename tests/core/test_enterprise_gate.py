"""The enterprise gate and provider statuses (docs/enterprise.md), on a real plugin manager."""

from __future__ import annotations

from types import ModuleType
from typing import Any, ClassVar, NoReturn

import pytest

import keyloader
from keyloader.errors import EnterpriseFeatureError, KeyloaderError, ProviderNotImplementedError
from keyloader.plugins import ENTERPRISE_NAMES, KeyloaderPluginManager, make_plugin_manager
from keyloader.providers import MasterKeyProvider, PlaceholderProvider, ProviderStatus

ENABLE_HINTS = ("KEYLOADER_ENTERPRISE=1", "enterprise = true", "keyloader.toml", "--enterprise")


class Unloadable(MasterKeyProvider):
    """A provider the gate tests never load."""

    name: ClassVar[str] = "unloadable"

    def load(self) -> NoReturn:
        raise AssertionError("the gate never loads a provider")


class AwsKmsPlaceholder(PlaceholderProvider):
    name: ClassVar[str] = "aws-kms"
    description: ClassVar[str] = "Master key decrypted by AWS KMS"


class AcmeHsm(Unloadable):
    """A third-party enterprise provider: not a placeholder, not one of the fixed names."""

    name: ClassVar[str] = "acme-hsm"
    description: ClassVar[str] = "Master key held in an ACME HSM"
    enterprise: ClassVar[bool] = True


class AcmeHsmPlaceholder(PlaceholderProvider):
    name: ClassVar[str] = "acme-hsm"
    description: ClassVar[str] = "Master key held in an ACME HSM (placeholder)"


class Community(Unloadable):
    name: ClassVar[str] = "community"
    description: ClassVar[str] = "An open-source provider"


def plugin(name: str, *classes: type[MasterKeyProvider]) -> ModuleType:
    module = ModuleType(name)
    module.keyloader_master_key_providers = keyloader.hookimpl(lambda: list(classes))  # type: ignore[attr-defined]
    return module


def manager(*plugins: ModuleType) -> KeyloaderPluginManager:
    return make_plugin_manager(autoload=False, env={}, plugins=plugins)


def named(name: str, *, enterprise: bool = False) -> type[MasterKeyProvider]:
    """A non-placeholder provider class called ``name``."""
    attrs: dict[str, Any] = {
        "name": name,
        "description": f"{name} provider",
        "enterprise": enterprise,
    }
    return type(f"Provider_{name.replace('-', '_')}", (Unloadable,), attrs)


# -- the four states -----------------------------------------------------------------


@pytest.mark.parametrize("cls", [AwsKmsPlaceholder, AcmeHsmPlaceholder, AcmeHsm, named("aws-kms")])
def test_flag_off_is_an_enterprise_feature_error(cls: type[MasterKeyProvider]) -> None:
    pm = manager(plugin("p", cls))
    found = pm.find_provider(cls.name)
    with pytest.raises(EnterpriseFeatureError) as excinfo:
        pm.check_enterprise(found, enterprise=False)
    message = str(excinfo.value)
    assert f"'{cls.name}'" in message
    assert cls.description.rstrip(".") in message
    assert "Enterprise Edition feature" in message
    for hint in (*ENABLE_HINTS, "enterprise=True"):
        assert hint in message
    assert pm.status(found, enterprise=False) is ProviderStatus.LOCKED


@pytest.mark.parametrize("cls", [AwsKmsPlaceholder, AcmeHsmPlaceholder])
def test_flag_on_with_a_placeholder_is_not_implemented(cls: type[MasterKeyProvider]) -> None:
    pm = manager(plugin("placeholders", cls))
    with pytest.raises(ProviderNotImplementedError) as excinfo:
        pm.check_enterprise(pm.find_provider(cls.name), enterprise=True)
    message = str(excinfo.value)
    assert "placeholder" in message
    assert "open-source" in message
    assert f"registers a non-placeholder provider named '{cls.name}'" in message
    assert "'placeholders'" in message  # the plugin that shipped the placeholder
    assert pm.status(cls, enterprise=True) is ProviderStatus.UNAVAILABLE


@pytest.mark.parametrize("cls", [AcmeHsm, named("aws-kms"), named("keywhiz", enterprise=True)])
def test_flag_on_with_an_implementation_passes(cls: type[MasterKeyProvider]) -> None:
    pm = manager(plugin("impl", cls))
    pm.check_enterprise(pm.find_provider(cls.name), enterprise=True)
    assert pm.status(cls, enterprise=True) is ProviderStatus.AVAILABLE


@pytest.mark.parametrize("enterprise", [False, True])
def test_an_open_source_provider_is_never_gated(enterprise: bool) -> None:
    pm = manager(plugin("community", Community))
    pm.check_enterprise(Community, enterprise=enterprise)
    assert pm.status(Community, enterprise=enterprise) is ProviderStatus.AVAILABLE


@pytest.mark.parametrize("name", sorted(ENTERPRISE_NAMES))
def test_the_enterprise_names_are_gated_whatever_the_class_says(name: str) -> None:
    cls = named(name, enterprise=False)
    pm = manager(plugin("sneaky", cls))
    with pytest.raises(EnterpriseFeatureError, match=f"'{name}'"):
        pm.check_enterprise(cls, enterprise=False)
    [row] = pm.provider_infos(enterprise=False)
    assert (row.enterprise, row.status) == (True, ProviderStatus.LOCKED)


def test_the_enterprise_names() -> None:
    assert frozenset({"aws-kms", "gcp-kms", "keywhiz"}) == ENTERPRISE_NAMES


def test_a_non_enterprise_placeholder_still_cannot_load() -> None:
    class Someday(PlaceholderProvider):
        name: ClassVar[str] = "someday"
        enterprise: ClassVar[bool] = False

    pm = manager(plugin("p", Someday))
    with pytest.raises(ProviderNotImplementedError, match="'someday'"):
        pm.check_enterprise(Someday, enterprise=False)
    assert pm.status(Someday, enterprise=False) is ProviderStatus.UNAVAILABLE


def test_an_implementation_replaces_the_placeholder_behind_the_gate() -> None:
    implementation = named("aws-kms")
    pm = manager(plugin("oss", AwsKmsPlaceholder), plugin("ee", implementation))
    found = pm.find_provider("kms_encrypted_master_key")
    assert found is implementation
    with pytest.raises(EnterpriseFeatureError):
        pm.check_enterprise(found, enterprise=False)
    pm.check_enterprise(found, enterprise=True)


def test_gate_errors_are_keyloader_errors_without_the_class_repr() -> None:
    pm = manager(plugin("p", AwsKmsPlaceholder))
    for enterprise, error in ((False, EnterpriseFeatureError), (True, ProviderNotImplementedError)):
        with pytest.raises(KeyloaderError) as excinfo:
            pm.check_enterprise(AwsKmsPlaceholder, enterprise=enterprise)
        assert type(excinfo.value) is error
        assert "<class" not in str(excinfo.value)


# -- statuses in the listing ---------------------------------------------------------


def test_provider_infos_show_every_status() -> None:
    def broken() -> list[type[MasterKeyProvider]]:
        raise ImportError("the SDK of this plugin is missing")

    failing = ModuleType("failing")
    failing.keyloader_master_key_providers = keyloader.hookimpl(broken)  # type: ignore[attr-defined]
    pm = manager(plugin("oss", AwsKmsPlaceholder, Community), plugin("acme", AcmeHsm), failing)

    def statuses(enterprise: bool) -> dict[str, tuple[ProviderStatus, str]]:
        rows = pm.provider_infos(enterprise=enterprise)
        assert [row.name for row in rows] == sorted(row.name for row in rows)
        return {row.name: (row.status, row.plugin) for row in rows}

    assert statuses(False) == {
        "acme-hsm": (ProviderStatus.LOCKED, "acme"),
        "aws-kms": (ProviderStatus.LOCKED, "oss"),
        "community": (ProviderStatus.AVAILABLE, "oss"),
        "failing": (ProviderStatus.ERROR, "failing"),
    }
    assert statuses(True) == {
        "acme-hsm": (ProviderStatus.AVAILABLE, "acme"),
        "aws-kms": (ProviderStatus.UNAVAILABLE, "oss"),
        "community": (ProviderStatus.AVAILABLE, "oss"),
        "failing": (ProviderStatus.ERROR, "failing"),
    }
    rows = {row.name: row for row in pm.provider_infos(enterprise=True)}
    assert rows["failing"].error == "ImportError: the SDK of this plugin is missing"
    assert rows["failing"].cls is None
    assert (rows["aws-kms"].enterprise, rows["aws-kms"].placeholder) == (True, True)
    assert (rows["acme-hsm"].enterprise, rows["acme-hsm"].placeholder) == (True, False)
    assert (rows["community"].enterprise, rows["community"].cls) == (False, Community)
    assert rows["aws-kms"].description == AwsKmsPlaceholder.description
    assert rows["aws-kms"].aliases == ("kms_encrypted_master_key",)
