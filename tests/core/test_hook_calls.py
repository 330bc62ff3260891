"""Hooks are called through pluggy: wrappers of both styles, tryfirst/trylast, monitoring.

The probe plugin (``fixtures_hooks/probes``, distribution ``kltest-probes``) has,
on each of the four hooks, a tryfirst and a trylast implementation and one
wrapper of each style. Every test runs it twice: through its real entry point
(installed into a temporary site) and registered explicitly.
"""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pytest
import typer

import keyloader
from keyloader.audit import AuditEvent
from keyloader.errors import KeyStoreNotFoundError
from keyloader.plugins import KeyloaderPluginManager, make_plugin_manager
from keyloader.stores.memory import MemoryKeyStore

from ..plugin_site import installed_site

PROBES = Path(__file__).parent / "fixtures_hooks" / "probes"
PROVIDERS = "keyloader_master_key_providers"
STORES = "keyloader_key_stores"
CLI = "keyloader_cli_commands"
AUDIT = "keyloader_audit_event"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with installed_site(tmp_path_factory.mktemp("probe-site"), [PROBES]) as target:
        yield target


@pytest.fixture
def probes(site: Path) -> ModuleType:
    module = importlib.import_module("kltest_probes")
    module.CALLS.clear()
    return module


@pytest.fixture(params=["entry point", "explicit"])
def pm(request: pytest.FixtureRequest, probes: ModuleType) -> KeyloaderPluginManager:
    if request.param == "entry point":
        return make_plugin_manager(allow=["probes"], env={})
    return make_plugin_manager(autoload=False, env={}, plugins=[probes])


def calls(probes: ModuleType, hook: str) -> list[str]:
    return [what for name, what in probes.CALLS if name == hook]


def module(name: str, **hooks: Any) -> ModuleType:
    """A plugin module built in the test; values are functions or (options, function)."""
    plugin = ModuleType(name)
    for attribute, value in hooks.items():
        options, function = value if isinstance(value, tuple) else ({}, value)
        setattr(plugin, attribute, keyloader.hookimpl(**options)(function))
    return plugin


# -- wrappers and ordering on each hook -------------------------------------------------


def test_provider_hook_runs_both_wrappers_around_ordered_implementations(
    pm: KeyloaderPluginManager, probes: ModuleType
) -> None:
    assert list(pm.provider_classes()) == ["probe-first", "probe-last"]
    assert [cls.name for _, cls in pm.provider_rows()] == ["probe-first", "probe-last"]
    assert calls(probes, PROVIDERS) == [
        "wrapper before",
        "hookwrapper before",
        "first",
        "last",
        "hookwrapper saw probe-first,probe-last",
        "wrapper saw probe-first,probe-last",
    ]


def test_store_hook_orders_tryfirst_before_and_trylast_after_the_builtin_stores(
    pm: KeyloaderPluginManager, probes: ModuleType
) -> None:
    names = [cls.name for _, cls in pm.store_rows()]
    assert names == ["probe-first", "filesystem", "memory", "probe-last"]
    assert calls(probes, STORES)[-2:] == [
        "hookwrapper saw probe-first,filesystem,memory,probe-last",
        "wrapper saw probe-first,filesystem,memory,probe-last",
    ]
    assert pm.find_key_store("probe-last").name == "probe-last"


def test_cli_hook_runs_wrappers_and_orders_the_commands(
    pm: KeyloaderPluginManager, probes: ModuleType
) -> None:
    app = typer.Typer()
    pm.add_cli_commands(app)
    assert [info.name for info in app.registered_commands] == ["probe-first", "probe-last"]
    assert calls(probes, CLI) == [
        "wrapper before",
        "hookwrapper before",
        "first",
        "last",
        "hookwrapper saw []",
        "wrapper saw []",
    ]


def test_audit_hook_runs_wrappers_and_orders_the_observers(
    pm: KeyloaderPluginManager, probes: ModuleType
) -> None:
    pm.emit(AuditEvent("key_used", key_id="audit-log"))
    assert calls(probes, AUDIT) == [
        "wrapper before",
        "hookwrapper before",
        "first key_used",
        "last key_used",
        "hookwrapper saw []",
        "wrapper saw []",
    ]


def test_monitoring_and_tracing_see_all_four_hooks(
    pm: KeyloaderPluginManager, probes: ModuleType
) -> None:
    seen: list[tuple[str, list[str]]] = []
    finished: list[str] = []
    traced: list[str] = []
    pm.load_entrypoints()
    undo = pm.add_hookcall_monitoring(
        lambda name, impls, kwargs: seen.append((name, [i.function.__name__ for i in impls])),
        lambda outcome, name, impls, kwargs: finished.append(name),
    )
    pm.trace.root.setwriter(traced.append)
    undo_tracing = pm.enable_tracing()
    try:
        pm.provider_classes()
        pm.key_store_classes()
        pm.add_cli_commands(typer.Typer())
        pm.emit(AuditEvent("key_read"))
    finally:
        undo()
        undo_tracing()
    assert [name for name, _ in seen] == [PROVIDERS, STORES, CLI, AUDIT]
    assert finished == [PROVIDERS, STORES, CLI, AUDIT]
    for name, functions in seen:
        short = name.removeprefix("keyloader_").split("_")[0]
        short = {"master": "providers", "key": "stores", "audit": "audit"}.get(short, short)
        assert {f"{short}_first", f"{short}_last", f"{short}_wrapper"} <= set(functions), name
    assert all(any(name in line for line in traced) for name, _ in seen)


# -- once per plugin per plugin manager ---------------------------------------------------


def test_listing_hooks_run_each_implementation_once_and_a_late_plugin_adds_its_rows(
    pm: KeyloaderPluginManager, probes: ModuleType
) -> None:
    for _ in range(3):
        pm.provider_classes()
        pm.key_store_classes()
        pm.plugin_infos()
        pm.provider_infos(enterprise=False)
        assert pm.failures == []
    assert calls(probes, PROVIDERS).count("first") == 1
    assert calls(probes, STORES).count("first") == 1
    assert calls(probes, PROVIDERS).count("wrapper before") == 1

    late_calls: list[str] = []

    class LateStore(MemoryKeyStore):
        name: ClassVar[str] = "late"

    def late() -> list[type[MemoryKeyStore]]:
        late_calls.append("late")
        return [LateStore]

    pm.register_plugin(module("late", keyloader_key_stores=late))
    assert "late" in pm.key_store_classes()
    pm.key_store_classes()
    assert late_calls == ["late"]
    assert calls(probes, STORES).count("first") == 1  # not called again
    assert calls(probes, STORES)[-1] == "wrapper saw probe-first,late,filesystem,memory,probe-last"
    [late_info] = [info for info in pm.plugin_infos() if info.name == "late"]
    assert late_info.stores == ("late",)


def test_keys_list_through_the_cli_calls_each_listing_hook_once(site: Path, tmp_path: Path) -> None:
    log = tmp_path / "probes.log"
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir(mode=0o700)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), *sys.path]),
        "KEYLOADER_PLUGINS": "probes,env",
        "KLTEST_PROBES_LOG": str(log),
    }
    for command in (["keys", "list"], ["keys", "list", "--rotated"], ["plugins", "--json"]):
        log.write_text("")
        process = subprocess.run(
            [sys.executable, "-m", "keyloader.cli", "--keys-dir", str(keys_dir), *command],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=120,
        )
        assert process.returncode == 0, process.stderr
        lines = [tuple(line.split("\t")) for line in log.read_text().splitlines()]
        for hook in (PROVIDERS, STORES):
            ran = [what for name, what in lines if name == hook]
            assert ran.count("first") <= 1, (command, ran)
            assert ran.count("wrapper before") <= 1, (command, ran)
        assert [what for name, what in lines if name == STORES].count("first") == 1


# -- failures stay with their plugin ----------------------------------------------------


def _raising(*args: Any) -> Any:
    raise RuntimeError("plain implementation broken on purpose")


def _raising_wrapper_before(*args: Any) -> Generator[None, Any, Any]:
    raise RuntimeError("wrapper broken before its yield")
    yield  # pragma: no cover - makes it a generator


def _raising_wrapper_after(*args: Any) -> Generator[None, Any, Any]:
    yield
    raise RuntimeError("wrapper broken after its yield")


def _raising_hookwrapper_after(*args: Any) -> Generator[None, Any, None]:
    outcome = yield
    outcome.force_result("garbage before raising")
    raise RuntimeError("hookwrapper broken after its yield")


BROKEN = {
    "plain": ({}, _raising),
    "wrapper before yield": ({"wrapper": True}, _raising_wrapper_before),
    "wrapper after yield": ({"wrapper": True}, _raising_wrapper_after),
    "hookwrapper after yield": ({"hookwrapper": True}, _raising_hookwrapper_after),
}


@pytest.mark.parametrize("kind", BROKEN)
@pytest.mark.parametrize("hook", [PROVIDERS, STORES])
def test_a_broken_listing_implementation_is_its_plugins_failure(
    pm: KeyloaderPluginManager, probes: ModuleType, hook: str, kind: str
) -> None:
    pm.register_plugin(module("broken", **{hook: BROKEN[kind]}))
    stores = pm.key_store_classes()
    providers = pm.provider_classes()
    assert {"filesystem", "memory", "probe-first", "probe-last"} <= set(stores)
    assert set(providers) == {"probe-first", "probe-last"}
    [failure] = pm.failures
    assert failure.entry_point == "broken"
    assert "RuntimeError" in failure.error
    [info] = [info for info in pm.plugin_infos() if info.name == "broken"]
    assert info.status == "error"
    if hook == PROVIDERS:
        assert any(row.name == "broken" for row in pm.provider_infos(enterprise=False))


@pytest.mark.parametrize("kind", BROKEN)
def test_a_broken_cli_implementation_is_a_failure_and_the_others_add_their_commands(
    pm: KeyloaderPluginManager, probes: ModuleType, kind: str
) -> None:
    def half(app: typer.Typer) -> None:
        app.command("half")(lambda: None)
        _raising()

    options, function = BROKEN[kind]
    hooks: dict[str, Any] = {CLI: (options, half if kind == "plain" else function)}
    pm.register_plugin(module("broken", **hooks))
    app = typer.Typer()
    pm.add_cli_commands(app)
    assert [info.name for info in app.registered_commands] == ["probe-first", "probe-last"]
    [failure] = pm.failures
    assert failure.entry_point == "broken"


@pytest.mark.parametrize("kind", BROKEN)
def test_a_broken_audit_implementation_is_logged_and_the_others_observe(
    pm: KeyloaderPluginManager,
    probes: ModuleType,
    kind: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    options, function = BROKEN[kind]

    def plain(event: AuditEvent) -> Any:
        return function(event)

    def wrapping(event: AuditEvent) -> Generator[None, Any, Any]:
        return (yield from function(event))

    observer = plain if kind == "plain" else wrapping

    pm.register_plugin(module("broken", **{AUDIT: (options, observer)}))
    with caplog.at_level(logging.WARNING, logger="keyloader.plugins"):
        pm.emit(AuditEvent("key_destroyed", key_id="audit-log"))
    assert "first key_destroyed" in calls(probes, AUDIT)
    assert "last key_destroyed" in calls(probes, AUDIT)
    [record] = [r for r in caplog.records if r.name == "keyloader.plugins"]
    assert "'broken'" in record.getMessage()
    assert "key_destroyed" in record.getMessage()
    assert pm.failures == []  # an observer's failure is not a plugin failure


def test_a_wrapper_that_swallows_the_result_is_honoured(
    pm: KeyloaderPluginManager, probes: ModuleType
) -> None:
    def swallow() -> Generator[None, Any, Any]:
        yield
        return []

    pm.register_plugin(module("swallower", keyloader_key_stores=({"wrapper": True}, swallow)))
    assert pm.key_store_classes() == {}
    with pytest.raises(KeyStoreNotFoundError, match="no key store named 'filesystem'"):
        pm.find_key_store("filesystem")
    assert pm.failures == []


def test_an_old_style_wrapper_that_forces_a_result_is_honoured(
    pm: KeyloaderPluginManager, probes: ModuleType
) -> None:
    def only_builtins() -> Generator[None, Any, None]:
        outcome = yield
        outcome.force_result(
            [[cls for r in outcome.get_result() for cls in r if "probe" not in cls.name]]
        )

    pm.register_plugin(
        module("filter", keyloader_key_stores=({"hookwrapper": True}, only_builtins))
    )
    assert set(pm.key_store_classes()) == {"filesystem", "memory"}


def test_a_wrapper_returning_garbage_is_its_failure_and_the_result_is_kept(
    pm: KeyloaderPluginManager, probes: ModuleType
) -> None:
    def garbage() -> Generator[None, Any, Any]:
        yield
        return [["not a class"]]

    pm.register_plugin(module("garbage", keyloader_key_stores=({"wrapper": True}, garbage)))
    assert {"filesystem", "memory"} <= set(pm.key_store_classes())
    [failure] = pm.failures
    assert failure.entry_point == "garbage"
    assert "not a subclass of KeyStore" in failure.error


def test_a_class_a_wrapper_adds_belongs_to_the_wrappers_plugin(
    pm: KeyloaderPluginManager, probes: ModuleType
) -> None:
    class Added(MemoryKeyStore):
        name: ClassVar[str] = "added"

    def add() -> Generator[None, Any, Any]:
        result = yield
        return [*result, [Added]]

    pm.register_plugin(module("adder", keyloader_key_stores=({"wrapper": True}, add)))
    assert pm.find_key_store("added") is Added
    [info] = [info for info in pm.plugin_infos() if info.name == "adder"]
    assert (info.stores, info.status, info.hooks) == (("added",), "ok", (STORES,))
