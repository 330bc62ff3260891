"""keyloader_audit_actions: observers get the actions they declare; unwanted events cost nothing."""

from __future__ import annotations

import importlib
from collections.abc import Generator, Iterable
from pathlib import Path
from typing import Any

import pytest

import keyloader
from keyloader.api import open_keystore
from keyloader.audit import AUDIT_ACTIONS, AuditEvent
from keyloader.masterkey import generate_master_key
from keyloader.plugins import KeyloaderPluginManager, make_plugin_manager
from keyloader_env import plugin as env_plugin

from ..plugin_site import installed_site

KID = "client/client1/symmetric"
WRAPPER_ONLY = Path(__file__).parent / "fixtures_hooks" / "audit_wrapper"


class Observer:
    """A plugin object: records the actions it receives; declares ``wanted`` if given."""

    def __init__(self, wanted: object = "all") -> None:
        self.seen: list[str] = []
        if wanted != "all":
            self.wanted = wanted

            def keyloader_audit_actions() -> Any:
                if isinstance(self.wanted, Exception):
                    raise self.wanted
                return self.wanted

            self.keyloader_audit_actions = keyloader.hookimpl(keyloader_audit_actions)

    @keyloader.hookimpl
    def keyloader_audit_event(self, event: AuditEvent) -> None:
        self.seen.append(event.action)


class Wrapper:
    """A wrapper around the audit hook: counts the calls that reach pluggy; declares
    ``wanted`` if given."""

    def __init__(self, wanted: list[str] | None = None) -> None:
        self.calls: list[str] = []
        if wanted is not None:
            self.keyloader_audit_actions = keyloader.hookimpl(lambda: wanted)

    @keyloader.hookimpl(wrapper=True)
    def keyloader_audit_event(self, event: AuditEvent) -> Generator[None, Any, Any]:
        self.calls.append(event.action)
        return (yield)


def manager(*plugins: object) -> KeyloaderPluginManager:
    pm = make_plugin_manager(autoload=False, env={}, plugins=[env_plugin])
    for index, plugin in enumerate(plugins):
        pm.register_plugin(plugin, name=f"observer-{index}")
    return pm


def work(pm: KeyloaderPluginManager, monkeypatch: pytest.MonkeyPatch) -> None:
    """generate, three uses, rotate, destroy: through open_keystore, as a service does."""
    with generate_master_key() as key, key.to_text() as text:
        monkeypatch.setenv("ACRA_MASTER_KEY", text.bytes().decode())
        with open_keystore(plugin_manager=pm, keystore="memory", keys_dir="mem") as keys:
            keys.generate(["symmetric"], client_id="client1")
            for _ in range(3):
                with keys.use(KID):
                    pass
            keys.rotate(KID)
            keys.destroy(KID)


def test_each_observer_receives_what_it_declares(monkeypatch: pytest.MonkeyPatch) -> None:
    admin = Observer(["key_generated", "key_rotated"])
    everything = Observer()
    explicit_all = Observer(None)
    uses = Observer(("key_used",))
    work(manager(admin, everything, explicit_all, uses), monkeypatch)
    assert admin.seen == ["key_generated", "key_rotated"]
    expected = ["master_key_loaded", "key_generated", "key_used", "key_used", "key_used"]
    expected += ["key_rotated", "key_destroyed"]
    assert everything.seen == expected
    assert explicit_all.seen == expected
    assert uses.seen == ["key_used"] * 3


def test_an_action_nobody_wants_never_reaches_pluggy(monkeypatch: pytest.MonkeyPatch) -> None:
    wrapper = Wrapper(["key_rotated"])
    admin = [Observer(["key_rotated"]) for _ in range(6)]
    pm = manager(wrapper, *admin)
    assert pm.audit_wants("key_rotated")
    assert not pm.audit_wants("key_used")
    built: list[str] = []
    real_init = AuditEvent.__init__

    def counting_init(self: AuditEvent, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        built.append(self.action)

    monkeypatch.setattr(AuditEvent, "__init__", counting_init)
    work(pm, monkeypatch)
    assert built == ["key_rotated"], "an event nobody wants was built"
    assert wrapper.calls == ["key_rotated"]
    assert all(observer.seen == ["key_rotated"] for observer in admin)


def test_no_observer_at_all_builds_nothing() -> None:
    pm = manager(Wrapper([]))
    assert not any(pm.audit_wants(action) for action in AUDIT_ACTIONS)


def test_a_wrapper_alone_receives_what_its_plugin_declares(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A wrapper-only plugin is an observer too: every action without a declaration, its
    declared ones with one (it used to see nothing, silently)."""
    everything, admin = Wrapper(), Wrapper(["key_rotated", "key_destroyed"])
    work(manager(everything, admin), monkeypatch)
    expected = ["master_key_loaded", "key_generated", "key_used", "key_used", "key_used"]
    assert everything.calls == [*expected, "key_rotated", "key_destroyed"]
    assert admin.calls == ["key_rotated", "key_destroyed"]


@pytest.mark.parametrize(
    "answer",
    [["key_usd"], "key_used", [1], ValueError("broken declaration")],
    ids=["unknown-name", "a-string", "not-names", "raises"],
)
def test_a_bad_declaration_is_the_plugins_failure_and_it_gets_everything(
    answer: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = Observer(answer)
    pm = manager(broken)
    work(pm, monkeypatch)
    assert "key_used" in broken.seen
    assert "key_rotated" in broken.seen
    [failure] = pm.failures
    assert failure.entry_point == "observer-0"
    assert "keyloader_audit_actions" in failure.error or "broken declaration" in failure.error


def test_a_plugin_registered_later_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    first = Observer(["key_rotated"])
    pm = manager(first)
    assert not pm.audit_wants("key_used")
    late = Observer(["key_used"])
    pm.register_plugin(late, name="late")
    assert pm.audit_wants("key_used")
    pm.emit(AuditEvent("key_used", key_id=KID))
    assert (first.seen, late.seen) == ([], ["key_used"])
    pm.unregister(late)
    assert not pm.audit_wants("key_used")


def test_monitoring_sees_the_subset_calls() -> None:
    observer = Observer(["key_read"])
    pm = manager(observer, Observer())
    seen: list[tuple[str, int]] = []
    undo = pm.add_hookcall_monitoring(
        lambda name, impls, kwargs: seen.append((name, len(impls))), lambda *_: None
    )
    try:
        pm.emit(AuditEvent("key_read"))
        pm.emit(AuditEvent("key_used"))
    finally:
        undo()
    audit = [entry for entry in seen if entry[0] == "keyloader_audit_event"]
    assert audit == [("keyloader_audit_event", 2), ("keyloader_audit_event", 1)]


def declared(names: Iterable[str]) -> list[str]:
    return sorted(set(names) & set(AUDIT_ACTIONS))


def test_master_key_reloaded_is_an_action() -> None:
    assert "master_key_reloaded" in AUDIT_ACTIONS
    assert declared(["master_key_reloaded", "nope"]) == ["master_key_reloaded"]


def test_an_open_manager_serves_an_observer_registered_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin = Observer(["key_rotated"])
    pm = manager(admin)
    with generate_master_key() as key, key.to_text() as text:
        monkeypatch.setenv("ACRA_MASTER_KEY", text.bytes().decode())
        with open_keystore(plugin_manager=pm, keystore="memory", keys_dir="mem") as keys:
            keys.generate(["symmetric"], client_id="client1")
            with keys.use(KID):
                pass
            assert not keys.audits_use
            late = Observer(["key_used"])
            pm.register_plugin(late, name="late")
            assert keys.audits_use
            with keys.use(KID):
                pass
    assert late.seen == ["key_used"]


def test_a_wrapper_only_plugin_installed_as_a_distribution_sees_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found through its entry point, as a user installs it."""
    with installed_site(tmp_path / "site", [WRAPPER_ONLY]):
        plugin = importlib.import_module("kltest_audit_wrapper")
        pm = make_plugin_manager(allow=["audit-wrapper", "env"], env={})
        assert pm.audit_wants("key_used")
        work(pm, monkeypatch)
        assert plugin.SEEN[:2] == ["master_key_loaded", "key_generated"]
        assert plugin.SEEN.count("key_used") == 3
