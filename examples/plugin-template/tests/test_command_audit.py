"""The ``keyloader_audit_event`` hook: JSON lines in ``$KEYLOADER_COMMAND_AUDIT_LOG``."""

from __future__ import annotations

import json
import logging
import stat
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path

import pytest

import keyloader
from keyloader.audit import AuditEvent
from keyloader.errors import KeyNotFoundError
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader_command import AUDIT_LOG_VAR, plugin
from keyloader_command.audit import record_event

KeyCommand = Callable[[MasterKey], tuple[str, ...]]
NoKey = Callable[[str, MasterKey], None]
FIELDS = [item.name for item in fields(AuditEvent)]


@pytest.fixture
def v1_key() -> Iterator[MasterKey]:
    """The key-store engine is keystore v1: it needs a v1 master key."""
    with generate_master_key("v1") as key:
        yield key


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def open_keys(
    master_key: MasterKey, key_command: KeyCommand, keys_dir: Path
) -> keyloader.KeyManager:
    """A key manager on the installed plugins (entry points), provider ``command``."""
    return keyloader.open_keystore(
        provider="command",
        provider_options={"argv": key_command(master_key)},
        keys_dir=keys_dir,
    )


def test_the_variable_name_is_documented() -> None:
    assert AUDIT_LOG_VAR == "KEYLOADER_COMMAND_AUDIT_LOG"
    readme = Path(__file__).resolve().parents[1] / "README.md"
    assert AUDIT_LOG_VAR in readme.read_text()


def test_nothing_is_written_without_the_variable(tmp_path: Path) -> None:
    event = AuditEvent("key_used", key_id="client/client1/symmetric", index=1)
    assert record_event(event, environ={}) is False
    assert record_event(event, environ={AUDIT_LOG_VAR: " "}) is False
    assert plugin.keyloader_audit_event(event) is None
    assert list(tmp_path.iterdir()) == []


def test_actions_of_a_key_manager_are_appended(
    v1_key: MasterKey,
    key_command: KeyCommand,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    assert_no_key: NoKey,
) -> None:
    log = tmp_path / "audit.jsonl"
    log.write_text('{"action": "from before"}\n')
    monkeypatch.setenv(AUDIT_LOG_VAR, str(log))
    with open_keys(v1_key, key_command, tmp_path / "keys") as keys:
        (generated,) = keys.generate(["symmetric"], client_id="client1")
        with keys.use(generated) as intermediate:
            intermediate_forms = [intermediate.bytes().hex()]
        keys.read(generated).wipe()
        with pytest.raises(KeyNotFoundError):
            keys.read("client/nobody/symmetric")
    records = lines(log)
    assert records[0] == {"action": "from before"}
    events = records[1:]
    assert [e["action"] for e in events] == [
        "master_key_loaded",
        "key_generated",
        "key_used",
        "key_read",
        "key_read",
    ]
    for event in events:
        assert list(event) == FIELDS
        assert event["provider"] == "command"
        assert event["store"] == "filesystem"
        assert event["fingerprint"] == v1_key.fingerprint
        assert isinstance(event["time"], float)
    assert events[2]["key_id"] == "client/client1/symmetric"
    assert events[2]["index"] == 1
    assert (events[-1]["ok"], events[-1]["error_type"]) == (False, "KeyNotFoundError")
    assert events[-1]["key_id"] == "client/nobody/symmetric"
    text = log.read_text()
    assert_no_key(text, v1_key)
    for form in intermediate_forms:
        assert form not in text


def test_the_observer_declares_every_action_only_with_a_log(tmp_path: Path) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(AUDIT_LOG_VAR, raising=False)
        assert plugin.keyloader_audit_actions() == []
        pm = keyloader.make_plugin_manager(autoload=False, plugins=[plugin])
        assert not pm.audit_wants("key_used"), "without a log, use() pays for no event"
        patch.setenv(AUDIT_LOG_VAR, str(tmp_path / "audit.jsonl"))
        assert plugin.keyloader_audit_actions() is None
        pm = keyloader.make_plugin_manager(autoload=False, plugins=[plugin])
        assert pm.audit_wants("key_used")


def test_a_new_log_is_private(tmp_path: Path) -> None:
    log = tmp_path / "new.jsonl"
    assert record_event(AuditEvent("key_rotated"), environ={AUDIT_LOG_VAR: str(log)})
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    (record,) = lines(log)
    assert record["action"] == "key_rotated"
    assert list(record) == FIELDS


def test_an_explicitly_registered_plugin_observes_too(tmp_path: Path) -> None:
    """Embedding apps without autoload register the module; emit() reaches the hook."""
    log = tmp_path / "audit.jsonl"
    pm = keyloader.make_plugin_manager(autoload=False, plugins=[plugin])
    assert [impl.plugin_name for impl in pm.hook.keyloader_audit_event.get_hookimpls()]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(AUDIT_LOG_VAR, str(log))
        pm.emit(AuditEvent("keys_exported", store="memory"))
    (record,) = lines(log)
    assert (record["action"], record["store"], record["ok"]) == ("keys_exported", "memory", True)


def test_a_failing_write_never_breaks_the_action(
    v1_key: MasterKey,
    key_command: KeyCommand,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = tmp_path / "missing-directory" / "audit.jsonl"
    monkeypatch.setenv(AUDIT_LOG_VAR, str(log))
    with caplog.at_level(logging.WARNING), open_keys(v1_key, key_command, tmp_path / "k") as keys:
        (generated,) = keys.generate(["symmetric"], client_id="client1")
        keys.rotate(generated)
        with keys.use(generated) as intermediate:
            assert len(intermediate) == 32
    assert not log.exists()
    warnings = [r for r in caplog.records if r.name == "keyloader_command.audit"]
    assert len(warnings) == 1, "one warning per file and reason, not one per event"
    message = warnings[0].getMessage()
    assert str(log) in message
    assert AUDIT_LOG_VAR in message
    assert "No such file or directory" in message
    # the core's isolation of raising observers was not needed: nothing else was logged
    assert not [r for r in caplog.records if r.name == "keyloader.plugins"]


def test_a_directory_as_log_is_reported_not_raised(tmp_path: Path) -> None:
    assert record_event(AuditEvent("key_read"), environ={AUDIT_LOG_VAR: str(tmp_path)}) is False
