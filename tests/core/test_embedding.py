"""A service embedding keyloader: the default cache, master-key reloads, fork, multiprocessing."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import keyloader
import keyloader.api
from keyloader.audit import AuditEvent
from keyloader.errors import ConfigError, IntegrityError, KeyStoreError
from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, generate_master_key, write_master_key_file
from keyloader.plugins import make_plugin_manager
from keyloader.secret import SecretBytes
from keyloader.stores.filesystem import FilesystemKeyStore
from keyloader_env import plugin as env_plugin

from ..keytext import text_of

KID = "client/client1/symmetric"
KEYLOADER = str(Path(sys.executable).with_name("keyloader"))


def fresh_value(keys_dir: Path, master: MasterKey) -> bytes:
    """The key as a second, uncached manager reads it from disk now."""
    store = FilesystemKeyStore({"keys_dir": keys_dir})
    with KeyManager(store, MasterKey(SecretBytes(master.encryption.buffer)), cache_size=0) as other:
        with other.use(KID) as key:
            return key.bytes()


class Recorder:
    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    @keyloader.hookimpl
    def keyloader_audit_event(self, event: AuditEvent) -> None:
        self.events.append(event)


@pytest.fixture
def master() -> Iterator[MasterKey]:
    with generate_master_key() as key:
        yield key


@pytest.fixture
def key_file(tmp_path: Path, master: MasterKey) -> Path:
    return write_master_key_file(master, tmp_path / "master.key")


def replace_key_file(path: Path, key: MasterKey) -> None:
    write_master_key_file(key, path, force=True)


# -- the default road -------------------------------------------------------------------


def test_the_default_cache_sees_another_processes_rotation_on_the_next_use(
    tmp_path: Path, master: MasterKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys_dir = tmp_path / ".acrakeys"
    monkeypatch.setenv("ACRA_MASTER_KEY", text_of(master))
    with keyloader.open_keystore(keys_dir=keys_dir) as keys:
        assert keys._cache is not None, "the default road has no cache"
        keys.generate(["symmetric"], client_id="client1")
        with keys.use(KID) as key:
            before = key.bytes()
        for _ in range(3):
            rotated = subprocess.run(
                [KEYLOADER, "--keys-dir", str(keys_dir), "keys", "rotate", KID],
                capture_output=True,
                env=dict(os.environ),
                timeout=60,
                check=False,
            )
            assert rotated.returncode == 0, rotated.stderr
            with keys.use(KID) as key:
                now = key.bytes()
            assert now != before, "a stale key after the rotation completed"
            assert now == fresh_value(keys_dir, master)
            before = now


def test_cache_size_zero_still_reads_every_time(
    tmp_path: Path, master: MasterKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACRA_MASTER_KEY", text_of(master))
    with keyloader.open_keystore(keys_dir=tmp_path / "k", cache_size=0) as keys:
        assert keys._cache is None


def test_a_store_without_revision_tokens_is_not_cached_unless_a_ttl_is_given(
    tmp_path: Path, master: MasterKey
) -> None:
    class NoRevisions(FilesystemKeyStore):
        reads = 0

        def get(self, name: str) -> bytes:
            type(self).reads += 1
            return super().get(name)

        def revision(self, name: str, timestamp: str | None = None) -> None:
            return None

    for ttl, expected_reads in ((0.0, 4), (60.0, 1)):
        NoRevisions.reads = 0
        store = NoRevisions({"keys_dir": tmp_path / f"k{ttl}"})
        with KeyManager(
            store, MasterKey(SecretBytes(master.encryption.buffer)), cache_ttl=ttl
        ) as keys:
            keys.generate(["symmetric"], client_id="client1")
            for _ in range(4):
                with keys.use(KID):
                    pass
        assert NoRevisions.reads == expected_reads, f"cache_ttl={ttl}"


# -- master-key changes --------------------------------------------------------------


def open_service(keys_dir: Path, key_file: Path, **kwargs: Any) -> tuple[KeyManager, Recorder]:
    recorder = Recorder()
    pm = make_plugin_manager(autoload=False, env={}, plugins=[env_plugin, recorder])
    keys = keyloader.open_keystore(
        plugin_manager=pm,
        keys_dir=keys_dir,
        provider_options={"file": str(key_file)},
        **kwargs,
    )
    return keys, recorder


def rewrap_to(keys_dir: Path, old: MasterKey, new: MasterKey) -> None:
    settings = keyloader.resolve(
        keys_dir=keys_dir,
        env={"ACRA_MASTER_KEY": text_of(old), "DST_ACRA_MASTER_KEY": text_of(new)},
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ACRA_MASTER_KEY", text_of(old))
        patch.setenv("DST_ACRA_MASTER_KEY", text_of(new))
        report = keyloader.api.rewrap_keystore(settings, to_provider="env")
    assert report.rewrapped >= 1


def test_reload_master_key_picks_up_a_rewrap_without_reopening(
    tmp_path: Path, master: MasterKey, key_file: Path
) -> None:
    keys_dir = tmp_path / ".acrakeys"
    keys, recorder = open_service(keys_dir, key_file)
    with keys:
        keys.generate(["symmetric", "searchable"], client_id="client1")
        with keys.use(KID) as key:
            value = key.bytes()
        assert keys.reload_master_key() is False, "nothing changed yet"
        with generate_master_key() as new:
            rewrap_to(keys_dir, master, new)
            with pytest.raises(IntegrityError, match=master.fingerprint):
                keys.read(KID)  # the service still holds the old key
            replace_key_file(key_file, new)
            assert keys.reload_master_key() is True
            assert keys.fingerprint == new.fingerprint
            with keys.use(KID) as key:
                assert key.bytes() == value
    reloads = [e for e in recorder.events if e.action == "master_key_reloaded"]
    assert [(e.ok, e.fingerprint) for e in reloads] == [
        (True, master.fingerprint),
        (True, new.fingerprint),
    ]


def test_the_replaced_key_stays_a_fallback_for_keys_not_rewrapped_yet(
    tmp_path: Path, master: MasterKey, key_file: Path
) -> None:
    keys_dir = tmp_path / ".acrakeys"
    keys, _ = open_service(keys_dir, key_file)
    with keys, generate_master_key() as new:
        keys.generate(["symmetric"], client_id="client1")
        with keys.use(KID) as key:
            value = key.bytes()
        replace_key_file(key_file, new)  # the new key first, the rewrap not yet
        assert keys.reload_master_key() is True
        with keys.use(KID) as key:
            assert key.bytes() == value, "the key sealed with the replaced key"
        (keys_dir / "client1_storage_sym").write_bytes(b"tampered" * 10)
        with pytest.raises(IntegrityError, match="the master key it replaced"):
            keys.read(KID)


def test_auto_reload_retries_once_after_a_rewrap(
    tmp_path: Path, master: MasterKey, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys_dir = tmp_path / ".acrakeys"
    keys, recorder = open_service(keys_dir, key_file, auto_reload=True)
    with keys, generate_master_key() as new:
        keys.generate(["symmetric"], client_id="client1")
        with keys.use(KID) as key:
            value = key.bytes()
        rewrap_to(keys_dir, master, new)
        replace_key_file(key_file, new)
        with keys.use(KID) as key:  # fails under the old key, reloads, retries
            assert key.bytes() == value
        assert keys.fingerprint == new.fingerprint
    assert [e.action for e in recorder.events].count("master_key_reloaded") == 1


def test_auto_reload_does_not_hammer_the_provider(
    tmp_path: Path, master: MasterKey, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys_dir = tmp_path / ".acrakeys"
    keys, recorder = open_service(keys_dir, key_file, auto_reload=True)
    with keys:
        keys.generate(["symmetric"], client_id="client1")
        (keys_dir / "client1_storage_sym").write_bytes(b"tampered" * 10)
        for _ in range(5):
            with pytest.raises(IntegrityError):
                keys.read(KID)
    reloads = [e for e in recorder.events if e.action == "master_key_reloaded"]
    assert len(reloads) == 1, "a tampered file made the provider load again and again"


def test_auto_reload_is_off_by_default_and_a_setting(
    tmp_path: Path, master: MasterKey, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys, _ = open_service(tmp_path / "a", key_file)
    with keys:
        assert keys.auto_reload is False
    monkeypatch.setenv("KEYLOADER_AUTO_RELOAD", "yes")
    keys, _ = open_service(tmp_path / "b", key_file)
    with keys:
        assert keys.auto_reload is True
    assert (
        keyloader.resolve(auto_reload=False, env={"KEYLOADER_AUTO_RELOAD": "1"}).auto_reload
        is False
    )


def test_a_manager_given_a_key_cannot_reload(tmp_path: Path, master: MasterKey) -> None:
    store = FilesystemKeyStore({"keys_dir": tmp_path / "k"})
    with KeyManager(store, MasterKey(SecretBytes(master.encryption.buffer))) as keys:
        with pytest.raises(ConfigError, match="nothing to reload"):
            keys.reload_master_key()


def test_a_failed_reload_is_audited_and_the_old_key_stays(
    tmp_path: Path, master: MasterKey, key_file: Path
) -> None:
    keys, recorder = open_service(tmp_path / ".acrakeys", key_file)
    with keys:
        keys.generate(["symmetric"], client_id="client1")
        key_file.write_bytes(b"short")
        with pytest.raises(keyloader.errors.InvalidMasterKeyError):
            keys.reload_master_key()
        assert keys.fingerprint == master.fingerprint
        with keys.use(KID):
            pass
    [failed] = [e for e in recorder.events if e.action == "master_key_reloaded"]
    assert (failed.ok, failed.error_type) == (False, "InvalidMasterKeyError")


# -- fork ------------------------------------------------------------------------------


def _child_report(keys: KeyManager, write: Any) -> None:
    """In a forked child: use the key, try the writer lock, report, exit."""
    try:
        held = keys.store._lock.held  # type: ignore[attr-defined]
        cache = keys._cache
        assert cache is not None
        inherited = len(cache._entries)  # the cache's pages read as zeroes here: dropped
        with keys.use(KID) as key:
            value = key.bytes().hex()
        held = f"{held},{inherited}"
        try:
            keys.rotate(KID)
            rotated = "rotated"
        except KeyStoreError as exc:
            rotated = "timed out" if "timed out" in str(exc) else str(exc)
        os.write(write, f"{held}|{value}|{rotated}".encode())
    finally:
        os._exit(0)


def test_a_forked_child_shares_no_lock_state_and_no_cached_key(
    tmp_path: Path, master: MasterKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACRA_MASTER_KEY", text_of(master))
    keys_dir = tmp_path / ".acrakeys"
    keys = keyloader.open_keystore(keys_dir=keys_dir, store_options={"lock_timeout": 0.5})
    with keys:
        keys.generate(["symmetric"], client_id="client1")
        with keys.use(KID) as key:
            value = key.bytes().hex()
        cache = keys._cache
        assert cache is not None
        assert len(cache._entries) == 1
        holding = threading.Event()
        release = threading.Event()

        def hold_the_lock() -> None:
            with keys.store.lock():
                holding.set()
                release.wait(30)

        holder = threading.Thread(target=hold_the_lock)
        holder.start()
        holding.wait(10)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            _child_report(keys, write)
        os.close(write)
        _, status = os.waitpid(pid, 0)
        report = os.read(read, 4096).decode()
        os.close(read)
        release.set()
        holder.join(10)
        assert os.waitstatus_to_exitcode(status) == 0
        held, child_value, rotated = report.split("|")
        assert held == "False,0", "the child held the parent's lock, or its cached keys"
        assert child_value == value
        assert rotated == "timed out", "the child wrote while the parent held the lock"
        assert len(cache._entries) == 1, "the parent's cache was reset"
        with keys.use(KID) as key:  # served from the parent's cache, intact
            assert key.bytes().hex() == value
        keys.rotate(KID)  # the parent's lock still works after the child left
        with keys.use(KID) as key:
            assert key.bytes().hex() != value


_PRELOADED: KeyManager | None = None


def _use_preloaded(_: int) -> str:
    assert _PRELOADED is not None
    with _PRELOADED.use(KID) as key:
        return key.bytes().hex()


def _open_and_use(keys_dir: str) -> str:
    with keyloader.open_keystore(keys_dir=keys_dir) as keys, keys.use(KID) as key:
        return key.bytes().hex()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_multiprocessing_preload_with_fork_and_open_per_process_with_spawn(
    method: str, tmp_path: Path, master: MasterKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    global _PRELOADED
    monkeypatch.setenv("ACRA_MASTER_KEY", text_of(master))
    keys_dir = tmp_path / ".acrakeys"
    with keyloader.open_keystore(keys_dir=keys_dir) as keys:
        keys.generate(["symmetric"], client_id="client1")
        with keys.use(KID) as key:
            value = key.bytes().hex()
        context = multiprocessing.get_context(method)
        if method == "fork":  # gunicorn --preload: open once, fork workers
            _PRELOADED = keys
            try:
                with context.Pool(3) as pool:
                    results = pool.map(_use_preloaded, range(6))
            finally:
                _PRELOADED = None
        else:  # spawn: each process opens its own (a KeyManager is not picklable)
            with context.Pool(2) as pool:
                results = pool.map(_open_and_use, [str(keys_dir)] * 4)
    assert set(results) == {value}
