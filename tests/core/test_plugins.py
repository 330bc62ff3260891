"""The plugin manager with real entry points (docs/plugins.md, How plugins load).

The distributions under ``fixtures_plugins/`` are installed once, with pip and
hatchling, into a temporary ``--target`` directory that is put on ``sys.path``
for this module only, so the plugin manager finds their entry points.
"""

from __future__ import annotations

import importlib
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, NoReturn

import pytest

import keyloader
from keyloader.audit import AuditEvent
from keyloader.errors import (
    ConfigError,
    DuplicateKeyStoreError,
    DuplicateProviderError,
    KeyStoreNotFoundError,
    NotRegisteredError,
    PluginLoadError,
    ProviderNotFoundError,
)
from keyloader.plugins import (
    ALIASES,
    ENTRY_POINT_GROUP,
    KeyloaderPluginManager,
    PluginFailure,
    make_plugin_manager,
)
from keyloader.providers import MasterKeyProvider, PlaceholderProvider, ProviderStatus
from keyloader.stores.filesystem import FilesystemKeyStore
from keyloader.stores.memory import MemoryKeyStore

from ..plugin_site import installed_site

FIXTURES = Path(__file__).parent / "fixtures_plugins"
ENTRY_POINTS = {"good", "broken", "typo", "badargs", "dup", "placeholder", "awsimpl"}


@pytest.fixture(scope="module", autouse=True)
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Install every fixture distribution into one directory and put it on ``sys.path``."""
    distributions = [p for p in FIXTURES.iterdir() if p.is_dir()]
    with installed_site(tmp_path_factory.mktemp("plugin-site"), distributions) as target:
        yield target


def manager(*allow: str, **kwargs: Any) -> KeyloaderPluginManager:
    """A manager limited to the named entry points, ignoring the process environment."""
    return make_plugin_manager(allow=allow, env={}, **kwargs)


def entry_point_plugins(pm: KeyloaderPluginManager) -> set[str]:
    pm.load_entrypoints()
    return {name for name, _ in pm.list_name_plugin()} & ENTRY_POINTS


def plugin_module(name: str, **hooks: Any) -> ModuleType:
    """A plugin module built in the test, as an embedding app would register one."""
    module = ModuleType(name)
    for hook_name, function in hooks.items():
        setattr(module, hook_name, keyloader.hookimpl(function))
    return module


class EnvLike(MasterKeyProvider):
    name: ClassVar[str] = "env"
    description: ClassVar[str] = "Test stand-in for the env provider"

    def load(self) -> NoReturn:
        raise NotImplementedError


class VaultLike(EnvLike):
    name: ClassVar[str] = "vault"


def test_the_fixture_entry_points_are_installed() -> None:
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert names >= ENTRY_POINTS


# -- the factory -----------------------------------------------------------------------


def test_each_call_makes_a_new_manager() -> None:
    first = make_plugin_manager(autoload=False, env={})
    second = make_plugin_manager(autoload=False, env={})
    assert first is not second
    first.register_plugin(
        plugin_module("only_first", keyloader_master_key_providers=lambda: [EnvLike])
    )
    assert first.find_provider("env") is EnvLike
    with pytest.raises(ProviderNotFoundError):
        second.find_provider("env")


@pytest.mark.parametrize("kwargs", [{"autoload": False}, {"allow": ()}, {"allow": ["good"]}])
def test_builtin_stores_ignore_autoload_and_allow(kwargs: dict[str, Any]) -> None:
    pm = make_plugin_manager(env={}, **kwargs)
    stores = pm.key_store_classes()
    assert stores["filesystem"] is FilesystemKeyStore
    assert stores["memory"] is MemoryKeyStore
    assert pm.find_key_store("memory") is MemoryKeyStore
    builtin = next(info for info in pm.plugin_infos() if info.stores == ("filesystem", "memory"))
    assert (builtin.distribution, builtin.version) == ("keyloader", keyloader.__version__)
    assert (builtin.status, builtin.error, builtin.entry_point) == ("ok", None, None)


def test_entry_points_load_lazily_and_once() -> None:
    pm = manager("good")
    assert pm.get_plugin("good") is None
    pm.find_provider("good-file")
    module = pm.get_plugin("good")
    assert module is not None
    assert module.__name__ == "kltest_good"
    pm.load_entrypoints()
    pm.load_entrypoints()
    assert pm.get_plugin("good") is module
    assert pm.failures == []


def test_a_good_plugin_registers_its_provider_store_and_observer() -> None:
    pm = manager("good")
    good = importlib.import_module("kltest_good")
    assert pm.find_provider("good-file") is good.GoodProvider
    assert pm.find_key_store("good-store") is good.GoodStore
    info = next(i for i in pm.plugin_infos() if i.name == "good")
    assert info.entry_point == "good"
    assert (info.distribution, info.version) == ("kltest-good", "1.2.0")
    assert info.hooks == (
        "keyloader_audit_event",
        "keyloader_key_stores",
        "keyloader_master_key_providers",
    )
    assert (info.providers, info.stores, info.status, info.error) == (
        ("good-file",),
        ("good-store",),
        "ok",
        None,
    )


# -- failures --------------------------------------------------------------------------


def test_a_broken_plugin_is_recorded_and_the_others_still_load() -> None:
    pm = manager("good", "broken")
    assert pm.failures == [
        PluginFailure(
            "broken", "kltest-broken", "0.1.0", "RuntimeError: kltest_broken is broken on purpose"
        )
    ]
    assert pm.find_provider("good-file").__module__ == "kltest_good"
    assert pm.get_plugin("broken") is None
    infos = {info.name: info for info in pm.plugin_infos()}
    assert infos["broken"].status == "error"
    assert infos["broken"].distribution == "kltest-broken"
    assert "broken on purpose" in (infos["broken"].error or "")
    assert infos["good"].status == "ok"
    rows = {(row.name, row.status) for row in pm.provider_infos(enterprise=False)}
    assert ("broken", ProviderStatus.ERROR) in rows
    assert ("good-file", ProviderStatus.AVAILABLE) in rows


def test_a_misspelt_hook_fails_check_pending_and_is_unregistered() -> None:
    pm = manager("typo", "good")
    [failure] = pm.failures
    assert (failure.entry_point, failure.distribution, failure.version) == (
        "typo",
        "kltest-badhook",
        "0.2.0",
    )
    assert failure.error.startswith("PluginValidationError: unknown hook")
    assert "keyloader_master_key_provider" in failure.error
    assert pm.get_plugin("typo") is None
    assert pm.get_plugin("good") is not None
    pm.check_pending()  # nothing of the failed plugin is left behind
    assert pm.find_provider("good-file").name == "good-file"


def test_a_wrong_hook_signature_is_a_failure_and_never_called() -> None:
    pm = manager("badargs", "good")
    [failure] = pm.failures
    assert failure.entry_point == "badargs"
    assert failure.error.startswith("PluginValidationError: ")
    assert "severity" in failure.error
    assert pm.get_plugin("badargs") is None
    good = importlib.import_module("kltest_good")
    good.EVENTS.clear()
    pm.emit(AuditEvent("key_read", key_id="audit-log"))
    assert [event.action for event in good.EVENTS] == ["key_read"]


def test_a_missing_provider_while_a_plugin_failed_is_a_plugin_load_error() -> None:
    pm = manager("broken", "good")
    with pytest.raises(PluginLoadError) as excinfo:
        pm.find_provider("vault")
    message = str(excinfo.value)
    for part in ("'vault'", "'broken'", "kltest-broken 0.1.0", "RuntimeError", "broken on purpose"):
        assert part in message
    assert "good-file" in message  # what is registered
    with pytest.raises(PluginLoadError, match=r"key store named 'redis'.*kltest-broken"):
        pm.find_key_store("redis")


def test_a_missing_provider_without_failures_lists_what_is_registered() -> None:
    pm = manager("good")
    with pytest.raises(ProviderNotFoundError, match=r"'nope'.*registered: good-file") as excinfo:
        pm.find_provider("nope")
    assert isinstance(excinfo.value, LookupError)
    with pytest.raises(KeyStoreNotFoundError, match="no key store named 'nope'") as store_error:
        pm.find_key_store("nope")
    assert "filesystem, good-store, memory" in str(store_error.value)
    assert isinstance(store_error.value, NotRegisteredError)
    assert not isinstance(store_error.value, ProviderNotFoundError)


def test_a_provider_hook_that_raises_is_a_plugin_failure() -> None:
    def providers() -> list[type[MasterKeyProvider]]:
        raise ValueError("cannot list providers")

    pm = make_plugin_manager(
        autoload=False,
        env={},
        plugins=[
            plugin_module("raising", keyloader_master_key_providers=providers),
            plugin_module("fine", keyloader_master_key_providers=lambda: [EnvLike]),
        ],
    )
    assert pm.find_provider("env") is EnvLike
    assert pm.failures == [
        PluginFailure("raising", None, None, "ValueError: cannot list providers")
    ]
    infos = {info.name: info for info in pm.plugin_infos()}
    assert (infos["raising"].status, infos["fine"].status) == ("error", "ok")
    rows = {row.name: row for row in pm.provider_infos(enterprise=True)}
    assert rows["raising"].status is ProviderStatus.ERROR
    assert rows["raising"].cls is None
    assert rows["env"].status is ProviderStatus.AVAILABLE
    with pytest.raises(PluginLoadError, match="raising"):
        pm.find_provider("vault")


@pytest.mark.parametrize(
    ("returned", "expected"),
    [
        (EnvLike, "not a list"),
        ([object], "not a subclass of MasterKeyProvider"),
        ([MemoryKeyStore], "MasterKeyProvider"),
    ],
)
def test_a_provider_hook_returning_garbage_is_a_plugin_failure(
    returned: object, expected: str
) -> None:
    pm = make_plugin_manager(
        autoload=False,
        env={},
        plugins=[plugin_module("garbage", keyloader_master_key_providers=lambda: returned)],
    )
    assert pm.provider_classes() == {}
    [failure] = pm.failures
    assert failure.error.startswith("TypeError: ")
    assert expected in failure.error


def test_a_cli_hook_that_raises_is_a_failure_and_adds_nothing() -> None:
    class App:
        def __init__(self) -> None:
            self.registered_commands: list[str] = []
            self.registered_groups: list[str] = []

    def half(app: App) -> None:
        app.registered_commands.append("half")
        raise RuntimeError("cli hook broken on purpose")

    def whole(app: App) -> None:
        app.registered_commands.append("whole")

    pm = make_plugin_manager(
        autoload=False,
        env={},
        plugins=[
            plugin_module("half", keyloader_cli_commands=half),
            plugin_module("whole", keyloader_cli_commands=whole),
        ],
    )
    app = App()
    pm.add_cli_commands(app)
    assert app.registered_commands == ["whole"]
    assert pm.failures == [
        PluginFailure("half", None, None, "RuntimeError: cli hook broken on purpose")
    ]


# -- allow-list and autoload -----------------------------------------------------------


def test_keyloader_plugins_limits_loading() -> None:
    pm = make_plugin_manager(env={"KEYLOADER_PLUGINS": " good ,placeholder,, "})
    assert entry_point_plugins(pm) == {"good", "placeholder"}
    assert pm.failures == []


def test_an_explicit_allow_list_wins_over_the_environment() -> None:
    pm = make_plugin_manager(allow=["placeholder"], env={"KEYLOADER_PLUGINS": "good"})
    assert entry_point_plugins(pm) == {"placeholder"}
    assert entry_point_plugins(make_plugin_manager(allow="good, dup", env={})) == {"good", "dup"}


def test_an_unknown_allowed_name_is_named_in_the_not_found_message() -> None:
    pm = make_plugin_manager(env={"KEYLOADER_PLUGINS": "good,goood"})
    with pytest.raises(ProviderNotFoundError, match=r"KEYLOADER_PLUGINS.*goood"):
        pm.find_provider("vault")


@pytest.mark.parametrize("value", ["1", "true", "yes", " YES "])
def test_disabling_autoload_loads_no_entry_point(value: str) -> None:
    env = {"KEYLOADER_DISABLE_PLUGIN_AUTOLOAD": value, "KEYLOADER_PLUGINS": "good"}
    pm = make_plugin_manager(env=env)
    assert entry_point_plugins(pm) == set()
    assert set(pm.key_store_classes()) == {"filesystem", "memory"}
    with pytest.raises(ProviderNotFoundError, match="autoload is off"):
        pm.find_provider("good-file")
    assert entry_point_plugins(make_plugin_manager(autoload=True, env=env)) == {"good"}


def test_autoload_stays_on_for_false_values_and_refuses_garbage() -> None:
    env = {"KEYLOADER_DISABLE_PLUGIN_AUTOLOAD": "0", "KEYLOADER_PLUGINS": "good"}
    assert entry_point_plugins(make_plugin_manager(env=env)) == {"good"}
    with pytest.raises(
        ConfigError, match="KEYLOADER_DISABLE_PLUGIN_AUTOLOAD: 'maybe' is not a boolean"
    ):
        make_plugin_manager(env={"KEYLOADER_DISABLE_PLUGIN_AUTOLOAD": "maybe"})


def test_the_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYLOADER_PLUGINS", "placeholder")
    assert entry_point_plugins(make_plugin_manager()) == {"placeholder"}
    monkeypatch.setenv("KEYLOADER_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert entry_point_plugins(make_plugin_manager()) == set()


# -- explicit registration -------------------------------------------------------------


def test_explicit_registration_with_autoload_off() -> None:
    good = importlib.import_module("kltest_good")
    pm = make_plugin_manager(autoload=False, plugins=[good], env={})
    assert pm.find_provider("good-file") is good.GoodProvider
    pm.register_plugin(good)  # already registered: nothing happens
    pm.register_plugin(plugin_module("later", keyloader_master_key_providers=lambda: [EnvLike]))
    assert set(pm.provider_classes()) == {"env", "good-file"}
    assert entry_point_plugins(pm) == set()


def test_an_entry_point_already_registered_explicitly_is_not_registered_twice() -> None:
    good = importlib.import_module("kltest_good")
    pm = make_plugin_manager(allow=["good"], plugins=[good], env={})
    assert pm.failures == []
    assert pm.get_plugin("good") is None  # known under its explicit name only
    assert pm.find_provider("good-file") is good.GoodProvider


def test_explicit_registration_checks_hooks_and_leaves_the_manager_unchanged() -> None:
    pm = make_plugin_manager(autoload=False, env={})
    typo = plugin_module("typo_plugin", keyloader_master_key_provider=lambda: [EnvLike])
    with pytest.raises(PluginLoadError, match=r"typo_plugin.*keyloader_master_key_provider"):
        pm.register_plugin(typo)
    assert not pm.is_registered(typo)
    pm.check_pending()

    def bad_args(event: object, severity: int) -> None:
        raise AssertionError("never called")

    with pytest.raises(PluginLoadError, match="severity"):
        pm.register_plugin(plugin_module("bad_args", keyloader_audit_event=bad_args))
    with pytest.raises(PluginLoadError, match="already registered"):
        pm.register_plugin(plugin_module("other"), name="builtin")
    assert pm.key_store_classes()["memory"] is MemoryKeyStore
    with pytest.raises(PluginLoadError, match="typo_plugin"):
        make_plugin_manager(autoload=False, env={}, plugins=[typo])


# -- duplicates and placeholders --------------------------------------------------------


def test_two_providers_with_one_name_are_a_duplicate_error() -> None:
    pm = manager("good", "dup")
    with pytest.raises(DuplicateProviderError) as excinfo:
        pm.provider_classes()
    message = str(excinfo.value)
    for part in ("'good-file'", "'good'", "kltest-good 1.2.0", "'dup'", "kltest-dup 0.3.0"):
        assert part in message
    with pytest.raises(DuplicateProviderError):
        pm.find_provider("good-file")
    with pytest.raises(DuplicateKeyStoreError, match="'good-store'") as store_error:
        pm.key_store_classes()
    for part in ("kltest_good.GoodStore", "kltest-good 1.2.0", "kltest_dup.OtherGoodStore"):
        assert part in str(store_error.value)
    assert {info.name for info in pm.plugin_infos()} >= {"good", "dup"}  # listing still works


def test_the_same_class_from_two_plugins_is_not_a_duplicate() -> None:
    pm = make_plugin_manager(
        autoload=False,
        env={},
        plugins=[
            plugin_module("one", keyloader_master_key_providers=lambda: [EnvLike]),
            plugin_module("two", keyloader_master_key_providers=lambda: [EnvLike]),
        ],
    )
    assert pm.provider_classes() == {"env": EnvLike}


@pytest.mark.parametrize("allow", [("placeholder", "awsimpl"), ("awsimpl", "placeholder")])
def test_a_placeholder_yields_to_an_implementation(allow: tuple[str, ...]) -> None:
    pm = manager(*allow)
    cls = pm.find_provider("aws-kms")
    assert cls.__module__ == "kltest_awsimpl.plugin"
    assert cls.placeholder is False
    [row] = [row for row in pm.provider_infos(enterprise=True) if row.name == "aws-kms"]
    assert (row.plugin, row.status, row.placeholder) == ("awsimpl", ProviderStatus.AVAILABLE, False)


def test_a_placeholder_alone_is_listed() -> None:
    pm = manager("placeholder")
    cls = pm.find_provider("aws-kms")
    assert issubclass(cls, PlaceholderProvider)
    [row] = pm.provider_infos(enterprise=False)
    assert (row.name, row.plugin, row.placeholder, row.enterprise) == (
        "aws-kms",
        "placeholder",
        True,
        True,
    )
    assert [o.name for o in row.options] == ["key_id", "keystore_version"]


@pytest.mark.parametrize("first_is_tryfirst", [False, True])
def test_of_two_placeholders_with_one_name_the_first_called_wins(first_is_tryfirst: bool) -> None:
    """pluggy calls the later registered implementation first, unless ordering says otherwise."""

    class First(PlaceholderProvider):
        name: ClassVar[str] = "acme-kms"

    class Second(PlaceholderProvider):
        name: ClassVar[str] = "acme-kms"

    first = ModuleType("first")
    first.keyloader_master_key_providers = keyloader.hookimpl(tryfirst=first_is_tryfirst)(  # type: ignore[attr-defined]
        lambda: [First]
    )
    pm = make_plugin_manager(
        autoload=False,
        env={},
        plugins=[first, plugin_module("second", keyloader_master_key_providers=lambda: [Second])],
    )
    assert pm.find_provider("acme-kms") is (First if first_is_tryfirst else Second)


# -- aliases ---------------------------------------------------------------------------


def test_acra_strategy_names_are_aliases() -> None:
    assert dict(ALIASES) == {
        "env_master_key": "env",
        "vault_master_key": "vault",
        "kms_encrypted_master_key": "aws-kms",
    }
    pm = make_plugin_manager(
        allow=["placeholder"],
        env={},
        plugins=[
            plugin_module("acra", keyloader_master_key_providers=lambda: [EnvLike, VaultLike])
        ],
    )
    assert pm.find_provider("env_master_key") is EnvLike
    assert pm.find_provider("vault_master_key") is VaultLike
    assert pm.find_provider("kms_encrypted_master_key").name == "aws-kms"
    rows = {row.name: row.aliases for row in pm.provider_infos(enterprise=False)}
    assert rows == {
        "aws-kms": ("kms_encrypted_master_key",),
        "env": ("env_master_key",),
        "vault": ("vault_master_key",),
    }
    assert pm.provider_info("env_master_key", enterprise=False).name == "env"


def test_an_acra_alias_of_a_missing_provider_is_not_found() -> None:
    pm = manager("good")
    with pytest.raises(ProviderNotFoundError, match="'vault_master_key'"):
        pm.find_provider("vault_master_key")


def test_class_aliases_resolve() -> None:
    pm = manager("good")
    assert pm.find_provider("goodie") is pm.find_provider("good-file")
    [row] = [row for row in pm.provider_infos(enterprise=False) if row.name == "good-file"]
    assert row.aliases == ("goodie",)


@pytest.mark.parametrize("alias", ["env", "vault_master_key", "goodie"])
def test_a_class_alias_claimed_twice_is_a_duplicate(alias: str) -> None:
    class Claimer(EnvLike):
        name: ClassVar[str] = "claimer"
        aliases: ClassVar[tuple[str, ...]] = (alias,)

    pm = make_plugin_manager(
        allow=["good"],
        env={},
        plugins=[
            plugin_module("claims", keyloader_master_key_providers=lambda: [EnvLike, Claimer])
        ],
    )
    with pytest.raises(DuplicateProviderError, match=f"alias '{alias}'") as excinfo:
        pm.find_provider("claimer")
    assert "'claimer'" in str(excinfo.value)
    with pytest.raises(DuplicateProviderError):
        pm.provider_classes()


# -- audit events ----------------------------------------------------------------------


def test_emit_logs_a_raising_observer_and_calls_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[AuditEvent] = []

    def raising(event: AuditEvent) -> None:
        raise RuntimeError("observer broken on purpose")

    def no_argument() -> None:
        seen.append(AuditEvent("key_used"))

    good = importlib.import_module("kltest_good")
    good.EVENTS.clear()
    pm = make_plugin_manager(
        allow=["good"],
        env={},
        plugins=[
            plugin_module("first_observer", keyloader_audit_event=lambda event: seen.append(event)),
            plugin_module("raising_observer", keyloader_audit_event=raising),
            plugin_module("bare_observer", keyloader_audit_event=no_argument),
        ],
    )
    event = AuditEvent("key_rotated", key_id="client/alice/symmetric", index=1, store="memory")
    with caplog.at_level(logging.WARNING, logger="keyloader.plugins"):
        pm.emit(event)
    assert sum(e is event for e in seen) == 1
    assert [e.action for e in seen if e is not event] == ["key_used"]
    assert [event] == good.EVENTS
    [record] = [r for r in caplog.records if r.name == "keyloader.plugins"]
    assert record.levelno == logging.WARNING
    assert "raising_observer" in record.getMessage()
    assert "key_rotated" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


def test_importing_and_building_stays_light() -> None:
    probe = (
        "import sys\n"
        "from keyloader.plugins import make_plugin_manager\n"
        "pm = make_plugin_manager(autoload=False)\n"
        "heavy = {'typer', 'rich', 'hvac', 'redis', 'importlib.metadata'}\n"
        "print(sorted(m for m in sys.modules if m in heavy or m.split('.')[0] in heavy))\n"
        "pm.plugin_infos()\n"
        "print('importlib.metadata' in sys.modules)\n"
    )
    process = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    # autoload off: not even importlib.metadata
    assert process.stdout.splitlines() == ["[]", "False"]
