"""``MasterKeyProviderContract``: the conformance suite every master-key provider must pass.

Subclass it in your provider's tests (the subclass name must start with ``Test``)
and provide these fixtures:

``provider_class``
    The provider class under test.
``expected_key``
    A :class:`~keyloader.masterkey.MasterKey` (not its text form): the key a
    provider made by ``make_provider()`` loads. Close it after the test.
``make_provider``
    A callable ``make_provider(**options) -> MasterKeyProvider``: a provider
    instance configured so that ``load()`` returns ``expected_key``; keyword
    arguments override its option values (the suite passes ``keystore_version``).
``broken_provider`` (optional)
    A provider instance whose ``load()`` fails with a typed
    :class:`~keyloader.errors.KeyloaderError`; the default ``None`` skips that test.

Example::

    class TestEnvProvider(MasterKeyProviderContract):
        @pytest.fixture
        def provider_class(self) -> type[MasterKeyProvider]:
            return EnvProvider

        @pytest.fixture
        def expected_key(self) -> Iterator[MasterKey]:
            with generate_master_key() as key:
                yield key

        @pytest.fixture
        def make_provider(self, expected_key, monkeypatch) -> Callable[..., MasterKeyProvider]:
            with expected_key.to_text() as text:
                monkeypatch.setenv("MY_KEY", text.bytes().decode())
            def make(**options: object) -> MasterKeyProvider:
                return EnvProvider({"variable": "MY_KEY", "file": None,
                                    "keystore_version": "auto", **options})
            return make
"""

from __future__ import annotations

import base64
import pickle
import re
from collections.abc import Callable, Iterator

import pytest

from ..errors import InvalidMasterKeyError, KeyloaderError, MasterKeyError
from ..masterkey import MasterKey
from ..providers import MasterKeyProvider, Option

__all__ = ["MasterKeyProviderContract"]

ProviderFactory = Callable[..., MasterKeyProvider]

_NAME = re.compile(r"[a-z0-9-]+")
_ALIAS = re.compile(r"[a-z0-9_-]+")
_OPTION_NAME = re.compile(r"[a-z][a-z0-9_-]*")


def key_material_forms(key: MasterKey) -> list[str]:
    """The ways key material could show up in text: base64, hex, raw, the text form."""
    forms: list[str] = []
    for part in (key.encryption, key.signature):
        if part is None:
            continue
        raw = part.bytes()
        forms += [
            base64.b64encode(raw).decode(),
            base64.urlsafe_b64encode(raw).decode().rstrip("="),
            raw.hex(),
            raw.hex().upper(),
            raw.decode("latin-1"),
            repr(raw)[2:-1],
        ]
    with key.to_text() as text:
        forms.append(text.bytes().decode())
    return forms


def assert_no_key_material(text: str, key: MasterKey, what: str) -> None:
    """Fail if ``text`` contains any form of ``key``'s material, or a 16-character piece of one."""
    for form in key_material_forms(key):
        pieces = {form[i : i + 16] for i in range(0, max(len(form) - 15, 1), 8)} | {form[-16:]}
        leaked = [piece for piece in pieces if piece and piece in text]
        assert not leaked, f"{what} contains key material"


def _exception_chain(exc: BaseException, *, displayed: bool = False) -> Iterator[BaseException]:
    """``exc`` and its causes and contexts; ``displayed``: only what a traceback shows
    (``raise ... from None`` hides the context)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        hidden = displayed and current.__suppress_context__
        current = current.__cause__ or (None if hidden else current.__context__)


class MasterKeyProviderContract:
    """What every master-key provider does: a sound schema, a repeatable load, no leaks.

    Needs the fixtures ``provider_class``, ``expected_key`` and ``make_provider``;
    ``broken_provider`` is optional (see the module docstring).
    """

    @pytest.fixture
    def broken_provider(self) -> MasterKeyProvider | None:
        """Override to return a provider whose ``load()`` fails; ``None`` skips that test."""
        return None

    # -- the class ---------------------------------------------------------------------------

    def test_name_and_aliases(self, provider_class: type[MasterKeyProvider]) -> None:
        assert issubclass(provider_class, MasterKeyProvider)
        name = provider_class.name
        assert isinstance(name, str)
        assert _NAME.fullmatch(name), f"provider name {name!r} must match [a-z0-9-]+"
        assert isinstance(provider_class.aliases, tuple)
        for alias in provider_class.aliases:
            assert isinstance(alias, str)
            assert _ALIAS.fullmatch(alias), f"alias {alias!r} must match [a-z0-9_-]+"
            assert alias != name
        assert len(set(provider_class.aliases)) == len(provider_class.aliases)

    def test_description_and_flags(self, provider_class: type[MasterKeyProvider]) -> None:
        assert isinstance(provider_class.description, str)
        assert provider_class.description.strip(), "description must not be empty"
        assert isinstance(provider_class.enterprise, bool)
        assert provider_class.placeholder is False, "a placeholder cannot pass this suite"
        assert isinstance(provider_class.can_store, bool)

    def test_options_are_well_formed(self, provider_class: type[MasterKeyProvider]) -> None:
        assert isinstance(provider_class.options, tuple)
        names: list[str] = []
        for option in provider_class.options:
            assert isinstance(option, Option), f"{option!r} is not an Option"
            assert _OPTION_NAME.fullmatch(option.name), f"bad option name {option.name!r}"
            assert option.help.strip(), f"option {option.name!r} has no help text"
            assert isinstance(option.env, tuple)
            names.append(option.name)
        assert len(names) == len(set(names)), f"duplicate option names in {names}"
        assert "keystore_version" not in names, "keystore_version is a core option"

    def test_secret_options_have_no_default(self, provider_class: type[MasterKeyProvider]) -> None:
        for option in provider_class.options:
            if option.secret:
                assert option.default is None, f"secret option {option.name!r} has a default"

    def test_defaults_are_valid_values(self, provider_class: type[MasterKeyProvider]) -> None:
        for option in provider_class.option_schema():
            if option.default is not None:
                option.convert(option.default, origin=f"default of option {option.name!r}")

    def test_option_schema_includes_keystore_version(
        self, provider_class: type[MasterKeyProvider]
    ) -> None:
        schema = provider_class.option_schema()
        assert all(isinstance(option, Option) for option in schema)
        versions = [option for option in schema if option.name == "keystore_version"]
        assert len(versions) == 1
        assert versions[0].default == "auto"
        assert versions[0].choices == ("auto", "v1", "v2")
        assert len({option.name for option in schema}) == len(schema)

    # -- loading -----------------------------------------------------------------------------

    def test_load_returns_the_expected_key(
        self, make_provider: ProviderFactory, expected_key: MasterKey
    ) -> None:
        assert isinstance(expected_key, MasterKey), "expected_key must be a MasterKey"
        provider = make_provider()
        try:
            key = provider.load()
        finally:
            provider.close()
        with key:
            assert isinstance(key, MasterKey)
            assert key == expected_key
            assert key.version == expected_key.version
            assert key.fingerprint == expected_key.fingerprint
            assert len(key.encryption) == len(expected_key.encryption)

    def test_load_is_repeatable_and_keys_are_independent(
        self, make_provider: ProviderFactory, expected_key: MasterKey
    ) -> None:
        provider = make_provider()
        try:
            first = provider.load()
            second = provider.load()
        finally:
            provider.close()
        assert first is not second
        assert first.encryption is not second.encryption
        first.close()
        with second:
            assert second == expected_key, "closing one loaded key wiped another"
        with make_provider().load() as third:
            assert third == expected_key

    def test_close_is_idempotent(self, make_provider: ProviderFactory) -> None:
        provider = make_provider()
        provider.close()
        provider.close()

    def test_keystore_version_option_is_honoured(
        self, make_provider: ProviderFactory, expected_key: MasterKey
    ) -> None:
        with make_provider(keystore_version="auto").load() as key:
            assert key == expected_key
        if expected_key.version == "v1":
            with make_provider(keystore_version="v1").load() as key:
                assert key == expected_key
            with pytest.raises(InvalidMasterKeyError) as caught:
                make_provider(keystore_version="v2").load()
            assert_no_key_material(str(caught.value), expected_key, "the error message")
        else:
            with make_provider(keystore_version="v2").load() as key:
                assert key == expected_key
            with make_provider(keystore_version="v1").load() as key:
                assert key.version == "v1"
                assert key != expected_key

    # -- secrets stay secret -----------------------------------------------------------------

    def test_reprs_hide_key_material(
        self, make_provider: ProviderFactory, expected_key: MasterKey
    ) -> None:
        provider = make_provider()
        try:
            key = provider.load()
            with key:
                for what, text in (
                    ("repr(provider)", repr(provider)),
                    ("str(provider)", str(provider)),
                    ("repr(key)", repr(key)),
                    ("str(key)", str(key)),
                    ("repr(key.encryption)", repr(key.encryption)),
                    ("repr(key.signature)", repr(key.signature)),
                ):
                    assert_no_key_material(text, expected_key, what)
                assert key.fingerprint in repr(key)
        finally:
            provider.close()

    def test_loaded_key_cannot_be_pickled(self, make_provider: ProviderFactory) -> None:
        with make_provider().load() as key:
            with pytest.raises(TypeError):
                pickle.dumps(key)
            with pytest.raises(TypeError):
                pickle.dumps(key.encryption)

    def test_closing_the_key_wipes_it(self, make_provider: ProviderFactory) -> None:
        key = make_provider().load()
        parts = [part for part in (key.encryption, key.signature) if part is not None]
        fingerprint = key.fingerprint
        key.close()
        assert key.closed
        for part in parts:
            assert part.wiped
            assert len(part) == 0
        key.close()  # idempotent
        assert key.fingerprint == fingerprint
        with pytest.raises(MasterKeyError):
            _ = key.encryption

    def test_failures_are_typed_and_hide_key_material(
        self, broken_provider: MasterKeyProvider | None, expected_key: MasterKey
    ) -> None:
        if broken_provider is None:
            pytest.skip("no broken_provider fixture")
        try:
            with pytest.raises(KeyloaderError) as caught:
                broken_provider.load()
        finally:
            broken_provider.close()
        message = str(caught.value)
        assert message.strip(), "the error has no message"
        for exc in _exception_chain(caught.value):
            assert_no_key_material(str(exc), expected_key, f"{type(exc).__name__} message")
            assert_no_key_material(repr(exc.args), expected_key, f"{type(exc).__name__} args")
