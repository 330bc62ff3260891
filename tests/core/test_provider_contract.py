"""``MasterKeyProviderContract`` run against a tiny provider, and shown to catch bad ones."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest

from keyloader.errors import MasterKeyNotFoundError
from keyloader.masterkey import MasterKey, generate_master_key, parse_master_key
from keyloader.providers import MasterKeyProvider, Option
from keyloader.testing import MasterKeyProviderContract

from ..keytext import text_of

Factory = Callable[..., MasterKeyProvider]


class StaticProvider(MasterKeyProvider):
    """The master key given as text in an option (a test double of a real source)."""

    name: ClassVar[str] = "static-test"
    aliases: ClassVar[tuple[str, ...]] = ("static_test",)
    description: ClassVar[str] = "A master key given as base64 text in its option (tests only)."
    options: ClassVar[tuple[Option, ...]] = (
        Option("text", "The base64 text form of the master key.", secret=True),
    )

    def load(self) -> MasterKey:
        text = self.config.get("text")
        if not text:
            raise MasterKeyNotFoundError("option 'text' of provider 'static-test' is not set")
        return parse_master_key(
            text,
            keystore_version=self.keystore_version,
            source="option 'text' of provider 'static-test'",
        )


def factory(cls: type[MasterKeyProvider], key: MasterKey) -> Factory:
    def make(**options: Any) -> MasterKeyProvider:
        return cls({"text": text_of(key), "keystore_version": "auto", **options})

    return make


class TestStaticProvider(MasterKeyProviderContract):
    @pytest.fixture(params=["v1", "v2"])
    def expected_key(self, request: pytest.FixtureRequest) -> Iterator[MasterKey]:
        with generate_master_key(request.param) as key:
            yield key

    @pytest.fixture
    def provider_class(self) -> type[MasterKeyProvider]:
        return StaticProvider

    @pytest.fixture
    def make_provider(self, expected_key: MasterKey) -> Factory:
        return factory(StaticProvider, expected_key)

    @pytest.fixture
    def broken_provider(self, expected_key: MasterKey) -> MasterKeyProvider:
        return StaticProvider({"text": text_of(expected_key)[:-1], "keystore_version": "auto"})


def test_the_suite_was_collected_with_the_optional_test() -> None:
    names = {name for name in dir(MasterKeyProviderContract) if name.startswith("test_")}
    assert "test_failures_are_typed_and_hide_key_material" in names
    assert len(names) >= 12


# -- the suite catches bad providers ---------------------------------------------------------


@pytest.fixture
def key() -> Iterator[MasterKey]:
    with generate_master_key() as key:
        yield key


contract = MasterKeyProviderContract()


def test_catches_a_provider_whose_repr_shows_the_key(key: MasterKey) -> None:
    class Leaky(StaticProvider):
        def __repr__(self) -> str:
            return f"<Leaky {self.config!r}>"

    contract.test_reprs_hide_key_material(factory(StaticProvider, key), key)
    with pytest.raises(AssertionError, match="repr"):
        contract.test_reprs_hide_key_material(factory(Leaky, key), key)


def test_catches_a_provider_that_hands_out_one_shared_key(key: MasterKey) -> None:
    class Shared(StaticProvider):
        cached: MasterKey | None = None

        def load(self) -> MasterKey:
            if self.cached is None:
                self.cached = super().load()
            return self.cached

    with pytest.raises(AssertionError):
        contract.test_load_is_repeatable_and_keys_are_independent(factory(Shared, key), key)


def test_catches_a_provider_that_loads_another_key(key: MasterKey) -> None:
    with generate_master_key() as other, pytest.raises(AssertionError):
        contract.test_load_returns_the_expected_key(factory(StaticProvider, other), key)


def test_catches_a_provider_that_ignores_keystore_version(key: MasterKey) -> None:
    class Deaf(StaticProvider):
        def load(self) -> MasterKey:
            return parse_master_key(str(self.config["text"]))

    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        contract.test_keystore_version_option_is_honoured(factory(Deaf, key), key)


def test_catches_a_failure_message_with_key_material(key: MasterKey) -> None:
    class Chatty(StaticProvider):
        def load(self) -> MasterKey:
            raise MasterKeyNotFoundError(f"cannot use {self.config['text']}")

    broken = Chatty({"text": text_of(key)})
    with pytest.raises(AssertionError, match="key material"):
        contract.test_failures_are_typed_and_hide_key_material(broken, key)


def test_catches_untyped_failures(key: MasterKey) -> None:
    class Untyped(StaticProvider):
        def load(self) -> MasterKey:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        contract.test_failures_are_typed_and_hide_key_material(Untyped({}), key)


def test_skips_without_a_broken_provider(key: MasterKey) -> None:
    with pytest.raises(pytest.skip.Exception):
        contract.test_failures_are_typed_and_hide_key_material(None, key)


def test_catches_bad_class_attributes() -> None:
    class BadName(StaticProvider):
        name = "Static_Test"

    class NoDescription(StaticProvider):
        description = "  "

    class SecretDefault(StaticProvider):
        options = (Option("token", "A token.", secret=True, default="s3cret"),)

    class DuplicateOptions(StaticProvider):
        options = (Option("text", "One."), Option("text", "Two."))

    class NoHelp(StaticProvider):
        options = (Option("text", ""),)

    class NotAnOption(StaticProvider):
        options = ("text",)  # type: ignore[assignment]

    class ShadowsCoreOption(StaticProvider):
        options = (Option("keystore_version", "Mine."),)

    class BadDefault(StaticProvider):
        options = (Option("retries", "How often.", type="int", default="many"),)

    checks = [
        (contract.test_name_and_aliases, BadName),
        (contract.test_description_and_flags, NoDescription),
        (contract.test_secret_options_have_no_default, SecretDefault),
        (contract.test_options_are_well_formed, DuplicateOptions),
        (contract.test_options_are_well_formed, NoHelp),
        (contract.test_options_are_well_formed, NotAnOption),
        (contract.test_options_are_well_formed, ShadowsCoreOption),
        (contract.test_option_schema_includes_keystore_version, ShadowsCoreOption),
        (contract.test_defaults_are_valid_values, BadDefault),
    ]
    for check, cls in checks:
        check(StaticProvider)
        with pytest.raises(Exception):  # noqa: B017 - AssertionError or ConfigError
            check(cls)
