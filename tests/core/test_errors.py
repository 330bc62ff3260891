"""The error tree (docs/architecture.md, "Errors")."""

from __future__ import annotations

import pytest

from keyloader import errors

TREE = {
    "ConfigError": ("KeyloaderError", ValueError),
    "PluginLoadError": ("KeyloaderError",),
    "NotRegisteredError": ("KeyloaderError", LookupError),
    "ProviderNotFoundError": ("NotRegisteredError", LookupError),
    "KeyStoreNotFoundError": ("NotRegisteredError", LookupError),
    "DuplicateProviderError": ("KeyloaderError",),
    "DuplicateKeyStoreError": ("KeyloaderError",),
    "EnterpriseFeatureError": ("KeyloaderError",),
    "ProviderNotImplementedError": ("KeyloaderError",),
    "ProviderUnavailableError": ("KeyloaderError",),
    "AuthenticationError": ("KeyloaderError",),
    "MasterKeyError": ("KeyloaderError",),
    "MasterKeyNotFoundError": ("MasterKeyError",),
    "InvalidMasterKeyError": ("MasterKeyError",),
    "KeyNotFoundError": ("KeyloaderError",),
    "KeyExistsError": ("KeyloaderError",),
    "IntegrityError": ("KeyloaderError",),
    "KeyFormatError": ("IntegrityError",),
    "RingFormatError": ("IntegrityError",),
    "DecryptionError": ("IntegrityError",),
    "KeyStoreError": ("KeyloaderError",),
    "InsecurePermissionsError": ("KeyStoreError",),
}


@pytest.mark.parametrize(("name", "parents"), TREE.items())
def test_error_tree(name: str, parents: tuple[object, ...]) -> None:
    cls = getattr(errors, name)
    assert issubclass(cls, errors.KeyloaderError)
    for parent in parents:
        expected = getattr(errors, parent) if isinstance(parent, str) else parent
        assert issubclass(cls, expected)  # type: ignore[arg-type]
    assert cls.__doc__


def test_every_error_is_listed_and_exported() -> None:
    import keyloader

    defined = {n for n in dir(errors) if n.endswith("Error") and n != "KeyloaderError"}
    assert defined == set(TREE)
    warnings = {n for n in dir(errors) if n.endswith("Warning")}
    assert warnings == {"KeyloaderDeprecationWarning"}
    assert issubclass(errors.KeyloaderDeprecationWarning, DeprecationWarning)
    assert set(errors.__all__) == defined | warnings | {"KeyloaderError"}
    for name in errors.__all__:
        assert getattr(keyloader, name) is getattr(errors, name)


def test_a_missing_store_and_a_missing_provider_are_distinct_but_share_a_base() -> None:
    assert not issubclass(errors.KeyStoreNotFoundError, errors.ProviderNotFoundError)
    assert not issubclass(errors.ProviderNotFoundError, errors.KeyStoreNotFoundError)
