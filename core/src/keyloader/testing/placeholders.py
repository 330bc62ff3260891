"""``PlaceholderProviderContract``: the conformance suite of an Enterprise Edition placeholder.

A placeholder (:class:`~keyloader.providers.PlaceholderProvider`) is listed,
documented and validated like any provider, and the core's enterprise gate
decides what selecting it does (docs/enterprise.md). Subclass the suite in the
placeholder's tests (the subclass name must start with ``Test``) and set:

``plugin`` (class attribute)
    The plugin object, usually the module whose ``keyloader_master_key_providers``
    hook returns the placeholder. It is registered with ``autoload=False``.
``provider_name`` (class attribute)
    The provider's canonical name.
``valid_options`` (fixture)
    Options that pass validation (``provider_options`` of the Python API); a
    fixture, since they may name temporary files.
``invalid_options`` (class attribute, optional)
    ``(options, fragment)`` cases: ``options`` are laid over ``valid_options``,
    and selecting the provider with them must be a ``ConfigError`` containing
    ``fragment`` in every gate state. An option value that is callable is called
    with a fresh temporary directory (a :class:`~pathlib.Path`) and its result
    given, for files with bad content. ``pytest.param(options, fragment, id=...)``
    names a case.
``secret_values`` (class attribute, optional)
    Text that no error message may contain, such as what the credentials files
    of the cases hold. Values of ``secret=True`` options are checked too.
``environment_variables`` (class attribute, optional)
    Variables to clear for every test, beyond each option's own environment
    names (``KEYLOADER_<P>_<X>`` and ``Option.env``), which are always cleared.
``forbidden_modules`` (class attribute, optional)
    Top-level modules (SDKs, HTTP clients) that listing, validating and the gate
    must not import.

The three gate states are ``locked`` (flag off), ``unavailable`` (flag on, only
the placeholder) and ``available`` (flag on and a stand-in implementation
installed: a subclass of the placeholder with ``placeholder = False`` whose
``load()`` records its options and raises ``ProviderUnavailableError``). A
test method of the subclass that takes a ``state`` argument runs in all three;
:meth:`~PlaceholderProviderContract.manager` and
:meth:`~PlaceholderProviderContract.load_in_state` select the provider in one.

Example::

    class TestMyKmsPlaceholder(PlaceholderProviderContract):
        plugin = my_kms_plugin
        provider_name = "my-kms"
        invalid_options = [
            ({"key_name": "nope"}, "is not a key name"),
            ({"credentials_path": lambda d: write(d / "bad.json", "[]")}, "JSON object"),
        ]
        secret_values = ("s3cret-from-the-credentials-file",)

        @pytest.fixture
        def valid_options(self, tmp_path):
            return {"key_name": "keys/acra", "credentials_path": write_credentials(tmp_path)}
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, cast

import pytest

from .. import hookimpl
from ..api import load_master_key
from ..config import provider_option_env_names
from ..errors import (
    ConfigError,
    EnterpriseFeatureError,
    KeyloaderError,
    ProviderNotImplementedError,
    ProviderUnavailableError,
)
from ..plugins import ALIASES, KeyloaderPluginManager, make_plugin_manager
from ..providers import MasterKeyProvider, PlaceholderProvider, ProviderStatus
from .isolation import PROBE, watch
from .providers import MasterKeyProviderContract, _exception_chain

if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec

    from ..masterkey import MasterKey

__all__ = ["GATE_ERRORS", "LISTED_STATUS", "STATES", "PlaceholderProviderContract"]

STATES = ("locked", "unavailable", "available")
"""The gate states: flag off; flag on with only the placeholder; flag on with an implementation."""

GATE_ERRORS: dict[str, type[KeyloaderError]] = {
    "locked": EnterpriseFeatureError,
    "unavailable": ProviderNotImplementedError,
    "available": ProviderUnavailableError,  # what the stand-in implementation raises
}
"""What selecting the provider with valid options raises in each state."""

LISTED_STATUS: dict[str, ProviderStatus] = {
    "locked": ProviderStatus.LOCKED,
    "unavailable": ProviderStatus.UNAVAILABLE,
    "available": ProviderStatus.AVAILABLE,
}
"""The status ``keyloader providers`` shows in each state."""

InvalidCase = tuple[Mapping[str, object], str]

_SCHEMA = MasterKeyProviderContract()  # its class checks take the class as an argument
_PARAMETER_SET = type(pytest.param())


class PlaceholderProviderContract:
    """What every Enterprise Edition placeholder does behind the enterprise gate.

    Needs the class attributes ``plugin`` and ``provider_name`` and the fixture
    ``valid_options``; the other attributes are optional (see the module docstring).
    """

    plugin: ClassVar[object]
    provider_name: ClassVar[str]
    invalid_options: ClassVar[Sequence[InvalidCase | Any]] = ()
    secret_values: ClassVar[tuple[str, ...]] = ()
    environment_variables: ClassVar[tuple[str, ...]] = ()
    forbidden_modules: ClassVar[tuple[str, ...]] = (
        "aiobotocore",
        "aiohttp",
        "boto3",
        "botocore",
        "google",
        "googleapiclient",
        "grpc",
        "httpx",
        "hvac",
        "requests",
        "urllib3",
    )

    @pytest.fixture
    def valid_options(self) -> Mapping[str, object]:
        """Override: options that pass validation, so the gate decides."""
        raise NotImplementedError(f"{type(self).__name__} must provide the valid_options fixture")

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Run tests that take ``state`` in every gate state, ``invalid_case`` per case."""
        if "state" in metafunc.fixturenames:
            metafunc.parametrize("state", STATES)
        if "invalid_case" in metafunc.fixturenames:
            cases = [_as_param(case, index) for index, case in enumerate(self.invalid_options)]
            if not cases:
                cases = [
                    pytest.param(None, id="none", marks=pytest.mark.skip("no invalid_options"))
                ]
            metafunc.parametrize("invalid_case", cases)

    @pytest.fixture(autouse=True)
    def _provider_environment_is_cleared(self, monkeypatch: pytest.MonkeyPatch) -> None:
        names = set(self.environment_variables)
        for option in self.placeholder_class().option_schema():
            names.update(provider_option_env_names(self.provider_name, option))
        for name in names:
            monkeypatch.delenv(name, raising=False)

    # -- helpers for the subclass's own tests -------------------------------------------------

    def _secrets(self, options: Mapping[str, object]) -> list[str]:
        """The secret values that must not appear in an error about ``options``."""
        return [*self.secret_values, *_secret_option_values(self.placeholder_class(), [options])]

    def placeholder_class(self) -> type[MasterKeyProvider]:
        """The class the plugin registers as ``provider_name``."""
        pm = _plugin_manager([self.plugin])
        return pm.find_provider(self.provider_name)

    def manager(self, state: str) -> KeyloaderPluginManager:
        """A plugin manager for ``state``: the plugin, plus the stand-in when ``available``."""
        plugins = [self.plugin]
        if state == "available":
            plugins.append(_implementation_plugin(self.placeholder_class()))
        return _plugin_manager(plugins)

    def load_in_state(
        self, state: str, options: Mapping[str, object], *, provider: str | None = None
    ) -> MasterKey:
        """``load_master_key`` of ``provider`` (default: ``provider_name``) in ``state``."""
        pm = self.manager(state)
        return _load(pm, provider or self.provider_name, options, enterprise=state != "locked")

    # -- the class -------------------------------------------------------------------------

    def test_the_plugin_registers_a_placeholder(self) -> None:
        hook = getattr(self.plugin, "keyloader_master_key_providers", None)
        assert hook is not None, "the plugin has no keyloader_master_key_providers hook"
        registered = [cls for cls in hook() if cls.name == self.provider_name]
        assert len(registered) == 1, f"the plugin registers {len(registered)} {self.provider_name}"
        [cls] = registered
        assert cls is self.placeholder_class(), f"{cls!r} is not the provider registered"
        assert issubclass(cls, PlaceholderProvider), f"{cls!r} is not a PlaceholderProvider"
        assert cls.placeholder is True, "a placeholder must set placeholder = True"
        assert cls.enterprise is True, "a placeholder is an Enterprise Edition provider"
        assert cls.description.strip(), "the description must say what the provider is"

    def test_the_option_schema_is_sound(self) -> None:
        cls = self.placeholder_class()
        _SCHEMA.test_name_and_aliases(cls)
        _SCHEMA.test_options_are_well_formed(cls)
        _SCHEMA.test_secret_options_have_no_default(cls)
        _SCHEMA.test_defaults_are_valid_values(cls)
        _SCHEMA.test_option_schema_includes_keystore_version(cls)

    # -- the listing -------------------------------------------------------------------------

    def test_listed_status_in_each_state(self, state: str) -> None:
        placeholder = self.placeholder_class()
        pm = self.manager(state)
        flag = state != "locked"
        rows = [row for row in pm.provider_infos(enterprise=flag) if row.name == self.provider_name]
        assert len(rows) == 1, f"{self.provider_name} is listed {len(rows)} times"
        [row] = rows
        assert row.status is LISTED_STATUS[state], (
            f"listed {row.status}, not {LISTED_STATUS[state]}"
        )
        assert row.enterprise is True, "an Enterprise Edition provider must be listed as one"
        assert row.error is None, f"listed with an error: {row.error}"
        chosen = "the placeholder" if state != "available" else "the implementation"
        assert row.placeholder is (state != "available"), f"{chosen} is not the one listed"
        assert row.cls is not None, "the row has no class"
        assert (row.cls is placeholder) is (state != "available"), f"{chosen} is not listed"
        assert issubclass(row.cls, placeholder), f"{row.cls!r} is not the placeholder's subclass"
        assert row.options == placeholder.option_schema(), "an implementation keeps the options"
        acra = {alias for alias, target in ALIASES.items() if target == self.provider_name}
        aliases = tuple(sorted(set(placeholder.aliases) | acra))
        assert row.aliases == aliases, f"listed aliases {row.aliases}, not {aliases}"
        for alias in (self.provider_name, *row.aliases):
            found = pm.find_provider(alias)
            assert found is row.cls, f"{alias!r} finds {found!r}, not {row.cls!r}"
            status = pm.provider_info(alias, enterprise=flag).status
            assert status is row.status, f"{alias!r} is listed {status}, not {row.status}"
        locked = pm.provider_info(self.provider_name, enterprise=False).status
        assert locked is ProviderStatus.LOCKED, "the flag off locks an implementation too"

    # -- the gate -------------------------------------------------------------------------------

    def test_valid_options_reach_the_gate_in_each_state(
        self, state: str, valid_options: Mapping[str, object]
    ) -> None:
        names = (self.provider_name, *self.placeholder_class().aliases)
        for name in names:
            with pytest.raises(GATE_ERRORS[state]) as caught:
                self.load_in_state(state, valid_options, provider=name)
            message = str(caught.value)
            for text in _gate_words(state, self.provider_name):
                assert text in message, f"{text!r} is not in {message!r}"
        if state == "locked":  # the flag off wins over an installed implementation
            pm = self.manager("available")
            with pytest.raises(EnterpriseFeatureError):
                _load(pm, self.provider_name, valid_options, enterprise=False)

    def test_the_implementation_receives_the_options(
        self, valid_options: Mapping[str, object]
    ) -> None:
        pm = self.manager("available")
        implementation = pm.find_provider(self.provider_name)
        with pytest.raises(ProviderUnavailableError):
            _load(pm, self.provider_name, valid_options, enterprise=True)
        [config] = _loaded_configs(implementation)
        for option in implementation.option_schema():
            given = valid_options.get(option.name)
            expected = option.default if given is None else option.convert(given, origin="test")
            assert config[option.name] == expected, f"option {option.name!r}"

    def test_missing_required_options_are_reported_only_after_the_gate(
        self, state: str, valid_options: Mapping[str, object]
    ) -> None:
        schema = self.placeholder_class().option_schema()
        required = [option.name for option in schema if option.required]
        kept = required[:1]  # give the first required option: it must not be named
        given = {k: v for k, v in valid_options.items() if k not in required or k in kept}
        for options, missing in (({}, required), (given, required[1:])):
            if state != "available" or not missing:
                with pytest.raises(GATE_ERRORS[state]):
                    self.load_in_state(state, options)
                continue
            with pytest.raises(ConfigError) as caught:
                self.load_in_state(state, options)
            message = str(caught.value)
            assert message.startswith(f"provider {self.provider_name!r} needs "), message
            for option in schema:
                named = f"option {option.name!r}" in message
                should = "should" if option.name in missing else "should not"
                assert named is (option.name in missing), f"{message!r} {should} name {option.name}"
                if named:
                    env = provider_option_env_names(self.provider_name, option)[0]
                    assert env in message, f"the error does not name {env}"

    # -- option validation ---------------------------------------------------------------------

    def test_invalid_options_are_config_errors_in_every_state(
        self,
        state: str,
        invalid_case: InvalidCase,
        valid_options: Mapping[str, object],
        tmp_path: Path,
    ) -> None:
        bad, fragment = invalid_case
        options = {**valid_options, **_resolve(bad, tmp_path)}
        with pytest.raises(ConfigError) as caught:
            self.load_in_state(state, options)
        message = str(caught.value)
        assert fragment in message, f"{fragment!r} is not in {message!r}"
        schema = {option.name: option for option in self.placeholder_class().option_schema()}
        at_fault = [
            name
            for name in bad
            if message.startswith(f"option {name!r} of provider {self.provider_name!r}")
        ]
        assert at_fault, f"the error does not start by naming one of {sorted(bad)}: {message!r}"
        [name] = at_fault
        if schema[name].type == "path":
            path = Path(str(options[name])).expanduser()
            assert str(path) in message, f"the error does not name the file {path}"
        _assert_hides_secrets(caught.value, self._secrets(options))

    def test_error_messages_hide_secret_values(
        self, state: str, valid_options: Mapping[str, object], tmp_path: Path
    ) -> None:
        attempts = _attempts(self.invalid_options, valid_options, tmp_path)
        secrets = [*self.secret_values, *_secret_option_values(self.placeholder_class(), attempts)]
        if not secrets:
            pytest.skip("no secret_values and no secret option values to look for")
        for options in attempts:
            with pytest.raises(KeyloaderError) as caught:
                self.load_in_state(state, options)
            _assert_hides_secrets(caught.value, self._secrets(options))

    # -- no SDK, no network --------------------------------------------------------------------

    def test_no_sdk_is_imported_and_nothing_is_contacted(
        self,
        state: str,
        valid_options: Mapping[str, object],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        attempts = _attempts(self.invalid_options, valid_options, tmp_path)
        failures: list[Exception] = []
        with watch(self.forbidden_modules, monkeypatch) as seen:
            pm = self.manager(state)
            for flag in (False, True):
                pm.provider_infos(enterprise=flag)
                pm.provider_info(self.provider_name, enterprise=flag)
            for options in attempts:
                try:
                    _load(pm, self.provider_name, options, enterprise=state != "locked")
                except Exception as exc:  # checked below, after the imports
                    failures.append(exc)
        assert seen.imports == [], f"imported {seen.imports}"
        assert seen.network == [], f"network use: {seen.network}"
        assert len(failures) == len(attempts), "a load succeeded with no implementation"
        untyped = [exc for exc in failures if not isinstance(exc, KeyloaderError)]
        assert not untyped, f"untyped failures: {untyped!r}"

    def test_importing_the_plugin_imports_no_sdk(self) -> None:
        spec: ModuleSpec | None = getattr(self.plugin, "__spec__", None)
        if not isinstance(self.plugin, ModuleType) or spec is None:
            pytest.skip("the plugin is not an importable module")
        command = [sys.executable, "-c", PROBE, self.plugin.__name__, self.provider_name]
        command.append(",".join(self.forbidden_modules))
        process = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=120, env=dict(os.environ)
        )
        assert process.returncode == 0, process.stderr
        seen = json.loads(process.stdout)
        assert seen["imported"] == [], (
            f"importing {self.plugin.__name__} imported {seen['imported']}"
        )
        assert seen["network"] == [], f"importing {self.plugin.__name__} used {seen['network']}"


def _attempts(
    invalid_options: Sequence[InvalidCase | Any],
    valid_options: Mapping[str, object],
    tmp_path: Path,
) -> list[Mapping[str, object]]:
    """The valid options, no options, and the options of every invalid case."""
    attempts: list[Mapping[str, object]] = [valid_options, {}]
    for index, case in enumerate(invalid_options):
        bad, _ = _as_param(case, index).values[0]
        attempts.append({**valid_options, **_resolve(bad, tmp_path / f"case-{index}")})
    return attempts


def _secret_option_values(
    cls: type[MasterKeyProvider], attempts: Sequence[Mapping[str, object]]
) -> list[str]:
    secret = {o.name for o in cls.option_schema() if o.secret}
    return [str(o[name]) for o in attempts for name in secret if o.get(name) not in (None, "")]


def _assert_hides_secrets(error: BaseException, secrets: Sequence[str]) -> None:
    for exc in _exception_chain(error, displayed=True):
        for text in (str(exc), repr(exc.args)):
            leaked = [secret for secret in secrets if secret and secret in text]
            assert not leaked, f"{type(exc).__name__} shows a secret value"


def _gate_words(state: str, name: str) -> list[str]:
    """What the gate's error says in ``state``: which provider, why, and what to do."""
    if state == "locked":
        return [f"provider {name!r}", "Enterprise Edition feature", "--enterprise"]
    if state == "unavailable":
        return ["placeholder", f"provider named {name!r}"]
    return []  # the implementation's own error


# -- the stand-in implementation ---------------------------------------------------------


def _stand_in_load(self: MasterKeyProvider) -> NoReturn:
    _loaded_configs(type(self)).append(dict(self.config))
    raise ProviderUnavailableError(
        f"provider {self.name!r}: the conformance suite's stand-in implementation loads nothing"
    )


def _loaded_configs(cls: type[MasterKeyProvider]) -> list[dict[str, Any]]:
    configs: list[dict[str, Any]] = cls.__dict__["loaded_configs"]
    return configs


def _implementation_plugin(placeholder: type[MasterKeyProvider]) -> ModuleType:
    """A plugin registering a subclass of ``placeholder`` with ``placeholder = False``."""
    implementation = cast(
        "type[MasterKeyProvider]",
        type(
            f"{placeholder.__name__}StandIn",
            (placeholder,),
            {"placeholder": False, "load": _stand_in_load, "loaded_configs": []},
        ),
    )
    module = ModuleType(f"{placeholder.name}_stand_in_implementation")

    @hookimpl
    def keyloader_master_key_providers() -> list[type[MasterKeyProvider]]:
        return [implementation]

    module.keyloader_master_key_providers = keyloader_master_key_providers  # type: ignore[attr-defined]
    return module


def _plugin_manager(plugins: Sequence[object]) -> KeyloaderPluginManager:
    return make_plugin_manager(autoload=False, env={}, plugins=plugins)


def _load(
    pm: KeyloaderPluginManager, name: str, options: Mapping[str, object], *, enterprise: bool
) -> MasterKey:
    return load_master_key(
        plugin_manager=pm, provider=name, provider_options=dict(options), enterprise=enterprise
    )


# -- cases ---------------------------------------------------------------------------------


def _as_param(case: InvalidCase | Any, index: int) -> Any:
    """An ``invalid_options`` entry as a ``pytest.param`` of its ``(options, fragment)`` pair."""
    if isinstance(case, _PARAMETER_SET):  # pytest.param(options, fragment, id=...)
        options, fragment = case.values
        return pytest.param((options, fragment), id=case.id, marks=case.marks)
    options, fragment = case
    return pytest.param((options, fragment), id=f"{index}-{'+'.join(options)}")


def _resolve(options: Mapping[str, object], directory: Path) -> dict[str, object]:
    """Call the callable option values with ``directory`` (created first)."""
    directory.mkdir(parents=True, exist_ok=True)
    return {name: value(directory) if callable(value) else value for name, value in options.items()}
