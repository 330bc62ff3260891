"""Master-key rotation (rewrap): re-sealing, resuming, refusals, dry run, the API entry point."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pytest

import keyloader
from keyloader import api
from keyloader.audit import AuditEvent
from keyloader.config import Layer, load_settings
from keyloader.errors import (
    ConfigError,
    EnterpriseFeatureError,
    IntegrityError,
    KeyloaderError,
    MasterKeyNotFoundError,
    ProviderNotFoundError,
)
from keyloader.keyids import classify
from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, generate_master_key, master_key_from_raw
from keyloader.plugins import KeyloaderPluginManager, make_plugin_manager
from keyloader.providers import MasterKeyProvider, Option
from keyloader.rewrap import RewrapReport, rewrap_keys
from keyloader.secret import SecretBytes
from keyloader.stores.base import KeyStore
from keyloader.stores.filesystem import FilesystemKeyStore
from keyloader.stores.memory import MemoryKeyStore
from keyloader.themis import scell

Slot = tuple[str, str | None]


def copy(key: MasterKey) -> MasterKey:
    return MasterKey(SecretBytes(key.encryption.buffer))


@pytest.fixture
def old() -> Iterator[MasterKey]:
    with generate_master_key() as key:
        yield key


@pytest.fixture
def new() -> Iterator[MasterKey]:
    with generate_master_key() as key:
        yield key


def populate(manager: KeyManager, clients: int = 4) -> None:
    """Symmetric and searchable keys (some rotated), a storage keypair, global keys."""
    for i in range(clients):
        manager.generate(["symmetric", "searchable"], client_id=f"client{i}")
    manager.rotate("client/client0/symmetric")
    manager.rotate("client/client0/symmetric")
    manager.rotate("client/client1/searchable")
    manager.generate(["audit-log", "poison-record-symmetric"])
    manager.rotate("poison-record-symmetric")
    manager.generate(["storage"], client_id="client0")
    manager.generate(["poison-record"])


def snapshot(store: KeyStore, key: MasterKey) -> dict[Slot, bytes]:
    """Every private blob's plaintext, decrypted with ``key`` (fails loudly otherwise)."""
    found: dict[Slot, bytes] = {}
    for blob in store.list():
        what = classify(blob.name)
        if what.key_id is None or what.public:
            continue
        stamps: list[str | None] = [None] if blob.current else []
        for ts in [*stamps, *blob.history]:
            data = store.get(blob.name) if ts is None else store.get_history(blob.name, ts)
            with scell.decrypt(key.encryption.buffer, data, what.key_id.context) as plain:
                found[(blob.name, ts)] = plain.bytes()
    return found


def raw_files(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``root``: content and inode (to prove nothing was rewritten)."""
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_ino)
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".keyloader")
    }


def leaks(text: str, *secrets: bytes) -> list[str]:
    """Which secrets appear in ``text`` as raw, hex or base64."""
    found = []
    for secret in secrets:
        for form in (secret.hex(), base64.b64encode(secret).decode(), secret.decode("latin-1")):
            if form and form in text:
                found.append(form[:8])
    return found


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    return tmp_path / "keys"


@pytest.fixture
def events() -> list[AuditEvent]:
    return []


@pytest.fixture
def manager(keys_dir: Path, old: MasterKey, events: list[AuditEvent]) -> Iterator[KeyManager]:
    store = FilesystemKeyStore({"keys_dir": keys_dir})
    with KeyManager(store, copy(old), emit=events.append) as km:
        populate(km)
        yield km


# -- the rewrap itself -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["filesystem", "memory"])
def test_rewrap_reseals_everything_under_the_new_key(
    kind: str, tmp_path: Path, old: MasterKey, new: MasterKey
) -> None:
    store: KeyStore = (
        FilesystemKeyStore({"keys_dir": tmp_path / "keys"})
        if kind == "filesystem"
        else MemoryKeyStore({})
    )
    events: list[AuditEvent] = []
    with KeyManager(store, copy(old), emit=events.append) as manager:
        populate(manager)
        listing = store.list()
        publics = {b.name: store.get(b.name) for b in listing if b.name.endswith(".pub")}
        before = snapshot(store, old)
        events.clear()
        report = rewrap_keys(manager, new)
    same_names = [(b.name, b.current, b.history) for b in store.list()]
    assert same_names == [(b.name, b.current, b.history) for b in listing]  # and timestamps
    assert snapshot(store, new) == before  # same plaintexts, now under the new key
    with pytest.raises(IntegrityError):
        snapshot(store, old)
    assert {name: store.get(name) for name in publics} == publics  # .pub untouched
    # 8 client keys + 3 rotations, 2 global + 1 rotation, 2 keypair private files
    assert len(before) == 16
    assert report == RewrapReport(
        store=store.location,
        old_fingerprint=old.fingerprint,
        new_fingerprint=new.fingerprint,
        dry_run=False,
        rewrapped=16,
        skipped=0,
        verified=16,
    )
    assert report.complete
    rewrapped = [e for e in events if e.action == "key_rewrapped"]
    assert len(rewrapped) == 16
    assert {e.fingerprint for e in rewrapped} == {new.fingerprint}
    assert ("client/client0/symmetric", 3) in {(e.key_id, e.index) for e in rewrapped}
    assert all(e.ok for e in rewrapped)


def test_file_modes_and_names_are_kept(manager: KeyManager, keys_dir: Path, new: MasterKey) -> None:
    names = sorted(str(p.relative_to(keys_dir)) for p in keys_dir.rglob("*"))
    rewrap_keys(manager, new)
    after = sorted(str(p.relative_to(keys_dir)) for p in keys_dir.rglob("*"))
    assert after == names  # no temp files left, nothing added or removed
    for path in keys_dir.rglob("*"):
        mode = path.stat().st_mode & 0o777
        if path.is_dir():
            assert mode == 0o700, path
        elif path.name.endswith(".pub"):
            assert mode == 0o644, path
        elif not path.name.startswith(".keyloader"):
            assert mode == 0o600, path


def test_rerun_skips_keys_already_under_the_new_key(manager: KeyManager, new: MasterKey) -> None:
    first = rewrap_keys(manager, new)
    inodes = {p: p.stat().st_ino for p in Path(manager.store.location).rglob("*") if p.is_file()}
    second = rewrap_keys(manager, new)
    assert (second.rewrapped, second.skipped, second.verified) == (0, first.rewrapped, 16)
    assert {p: p.stat().st_ino for p in inodes} == inodes  # nothing was rewritten


def test_interrupted_rewrap_resumes(manager: KeyManager, new: MasterKey, old: MasterKey) -> None:
    before = snapshot(manager.store, old)
    seen: list[tuple[int, int]] = []

    def interrupt(done: int, total: int) -> None:
        seen.append((done, total))
        if done == total // 3 + 6:  # the survey is a third of the steps, then six writes
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rewrap_keys(manager, new, progress=interrupt)
    store = manager.store
    with store.lock():  # the interrupted run released the lock
        pass
    under_new = under_old = 0
    for blob in store.list():
        kid = classify(blob.name).key_id
        if kid is None or blob.name.endswith(".pub"):
            continue
        for ts in ([None] if blob.current else []) + list(blob.history):
            data = store.get(blob.name) if ts is None else store.get_history(blob.name, ts)
            try:
                scell.decrypt(new.encryption.buffer, data, kid.context).wipe()
                under_new += 1
            except IntegrityError:
                scell.decrypt(old.encryption.buffer, data, kid.context).wipe()
                under_old += 1
    assert (under_new, under_old) == (6, 10)  # progress runs after each write
    assert seen[-1] == (22, 48)
    report = rewrap_keys(manager, new)
    assert (report.rewrapped, report.skipped) == (10, 6)
    assert snapshot(store, new) == before


def test_progress_counts_every_pass(manager: KeyManager, new: MasterKey) -> None:
    calls: list[tuple[int, int]] = []
    rewrap_keys(manager, new, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 48) for i in range(1, 49)]  # survey, rewrap, verify: 16 each
    dry: list[tuple[int, int]] = []
    rewrap_keys(manager, new, dry_run=True, progress=lambda d, t: dry.append((d, t)))
    assert dry == [(i, 16) for i in range(1, 17)]


def test_dry_run_writes_nothing(
    manager: KeyManager, keys_dir: Path, new: MasterKey, events: list[AuditEvent]
) -> None:
    files = raw_files(keys_dir)
    report = rewrap_keys(manager, new, dry_run=True)
    assert report.dry_run
    assert (report.rewrapped, report.skipped, report.verified) == (16, 0, 0)
    assert not report.complete
    assert raw_files(keys_dir) == files
    assert [e for e in events if e.action == "key_rewrapped"] == []
    rewrap_keys(manager, new)
    again = rewrap_keys(manager, new, dry_run=True)
    assert (again.rewrapped, again.skipped) == (0, 16)


def test_the_manager_keeps_reading_with_the_new_key_as_previous(
    manager: KeyManager, keys_dir: Path, old: MasterKey, new: MasterKey
) -> None:
    rewrap_keys(manager, new)
    with KeyManager(FilesystemKeyStore({"keys_dir": keys_dir}), copy(new)) as fresh:
        assert all(r.ok for r in fresh.verify())


# -- refusals: nothing changes -----------------------------------------------------------------


def test_refuses_the_same_key(manager: KeyManager, keys_dir: Path, old: MasterKey) -> None:
    files = raw_files(keys_dir)
    for same in (old, copy(old)):
        with pytest.raises(ConfigError, match="new master key is the current master key") as caught:
            rewrap_keys(manager, same)
        assert old.fingerprint in str(caught.value)
    assert raw_files(keys_dir) == files


def test_refuses_a_v2_key(manager: KeyManager, keys_dir: Path) -> None:
    files = raw_files(keys_dir)
    with generate_master_key("v2") as pair, pytest.raises(ConfigError, match="keystore v2"):
        rewrap_keys(manager, pair)
    assert raw_files(keys_dir) == files


def test_refuses_undecryptable_keys_listing_them(
    manager: KeyManager, keys_dir: Path, new: MasterKey
) -> None:
    stranger = generate_master_key()
    store = manager.store
    with store.lock():
        store.put("client9_hmac", scell.encrypt(stranger.encryption.buffer, b"k" * 32, b"client9"))
        # a blob moved to another key's name: the context no longer matches
        store.put("client8_hmac", store.get("client0_hmac"))
    files = raw_files(keys_dir)
    with pytest.raises(IntegrityError) as caught:
        rewrap_keys(manager, new)
    message = str(caught.value)
    assert "2 keys decrypt with neither" in message
    assert f"{keys_dir}/client9_hmac" in message
    assert f"{keys_dir}/client8_hmac" in message
    assert "--skip-undecryptable" in message
    assert "Nothing was changed" in message
    assert raw_files(keys_dir) == files
    with pytest.raises(IntegrityError):  # a dry run refuses the same way
        rewrap_keys(manager, new, dry_run=True)
    report = rewrap_keys(manager, new, skip_undecryptable=True)
    assert report.undecryptable == (f"{keys_dir}/client8_hmac", f"{keys_dir}/client9_hmac")
    assert (report.rewrapped, report.failed) == (16, ())
    assert not report.complete
    for name in ("client8_hmac", "client9_hmac"):  # left exactly as they were
        assert (keys_dir / name).read_bytes() == files[name][0]


def test_refuses_unknown_files_listing_them(
    manager: KeyManager, keys_dir: Path, old: MasterKey, new: MasterKey
) -> None:
    store = manager.store
    with store.lock():
        store.put("auth_key", b"an old Acra key")
        store.put("client0_zone", b"zone")
    files = raw_files(keys_dir)
    with pytest.raises(ConfigError) as caught:
        rewrap_keys(manager, new)
    message = str(caught.value)
    assert "2 files are not Acra keystore v1 keys" in message
    assert f"{keys_dir}/auth_key" in message
    assert f"{keys_dir}/client0_zone" in message
    assert "--skip-unknown" in message
    assert raw_files(keys_dir) == files
    report = rewrap_keys(manager, new, skip_unknown=True)
    assert report.unknown == (f"{keys_dir}/auth_key", f"{keys_dir}/client0_zone")
    assert report.complete
    assert (keys_dir / "auth_key").read_bytes() == b"an old Acra key"


def test_refusal_lists_at_most_twenty_names(manager: KeyManager, new: MasterKey) -> None:
    with manager.store.lock():
        for i in range(25):
            manager.store.put(f"unknown{i:02d}", b"x")
    with pytest.raises(ConfigError) as caught:
        rewrap_keys(manager, new)
    assert "25 files" in str(caught.value)
    assert "and 5 more" in str(caught.value)
    assert "unknown24" not in str(caught.value)


def test_checks_run_before_the_first_write(
    manager: KeyManager, keys_dir: Path, new: MasterKey
) -> None:
    """The problem sorts last: every other key would be rewrapped before it in one pass."""
    with manager.store.lock():
        manager.store.put("zzzzz_hmac", b"not a Secure Cell at all")
    files = raw_files(keys_dir)
    with pytest.raises(IntegrityError, match="zzzzz_hmac"):
        rewrap_keys(manager, new)
    assert raw_files(keys_dir) == files


def test_previous_key_blobs_are_rewrapped_too(
    keys_dir: Path, old: MasterKey, new: MasterKey
) -> None:
    """A store half-way from A to B, opened with B and previous A, rewraps to C."""
    with KeyManager(FilesystemKeyStore({"keys_dir": keys_dir}), copy(old)) as first:
        populate(first)
        before = snapshot(first.store, old)
        with pytest.raises(KeyboardInterrupt):
            rewrap_keys(first, new, progress=_interrupt_at(22))
    with (
        generate_master_key() as third,
        KeyManager(
            FilesystemKeyStore({"keys_dir": keys_dir}), copy(new), previous=copy(old)
        ) as manager,
    ):
        report = rewrap_keys(manager, third)
        assert report.rewrapped == 16
        assert snapshot(manager.store, third) == before


def _interrupt_at(step: int) -> Any:
    def progress(done: int, total: int) -> None:
        if done == step:
            raise KeyboardInterrupt

    return progress


def test_reports_and_errors_carry_no_key_material(
    manager: KeyManager, old: MasterKey, new: MasterKey, events: list[AuditEvent]
) -> None:
    plaintexts = list(snapshot(manager.store, old).values())
    secrets = [old.encryption.bytes(), new.encryption.bytes(), *plaintexts]
    with manager.store.lock():
        manager.store.put("client7_hmac", b"garbage blob")
        manager.store.put("auth_key", b"old acra key")
    texts: list[str] = []
    for skip in (False, True):
        with pytest.raises(KeyloaderError) as caught:
            rewrap_keys(manager, new, skip_undecryptable=skip)
        texts.append(str(caught.value))
    with pytest.raises(ConfigError) as same:
        rewrap_keys(manager, old)
    texts.append(str(same.value))
    report = rewrap_keys(manager, new, skip_undecryptable=True, skip_unknown=True)
    texts += [repr(report), str(report)]
    texts += [repr(e) for e in events]
    for text in texts:
        assert leaks(text, *secrets) == [], text


# -- the API entry point: target provider and its options ------------------------------------


class KeyFileTestProvider(MasterKeyProvider):
    """A second real provider: raw key bytes from ``path`` (rewrap across providers)."""

    name: ClassVar[str] = "keyfile-test"
    description: ClassVar[str] = "Raw master key bytes from a file (tests)."
    options: ClassVar[tuple[Option, ...]] = (Option("path", "The key file.", type="path"),)

    def load(self) -> MasterKey:
        path = self.config.get("path")
        if path is None or not Path(path).exists():
            raise MasterKeyNotFoundError(f"key file {path} (option 'path') does not exist")
        return master_key_from_raw(Path(path).read_bytes(), source=f"key file {path}")


def _providers_module() -> ModuleType:
    module = ModuleType("keyfile_test_plugin")
    module.keyloader_master_key_providers = keyloader.hookimpl(  # type: ignore[attr-defined]
        lambda: [KeyFileTestProvider]
    )
    return module


@pytest.fixture
def pm() -> KeyloaderPluginManager:
    return make_plugin_manager(env={}, plugins=[_providers_module()])


def _text(key: MasterKey) -> str:
    return key.to_text().bytes().decode()


def _settings(keys_dir: Path, to: dict[str, object] | None = None, **api_kwargs: Any) -> Any:
    api_layer = Layer(
        provider="env",
        provider_options={"variable": "SRC_ACRA_MASTER_KEY"},
        keys_dir=keys_dir,
        **api_kwargs,
    )
    return load_settings(api=api_layer, cli=Layer(rewrap_to_options=to or {}))


@pytest.fixture
def configured(
    keys_dir: Path, old: MasterKey, monkeypatch: pytest.MonkeyPatch, pm: KeyloaderPluginManager
) -> dict[Slot, bytes]:
    monkeypatch.setenv("SRC_ACRA_MASTER_KEY", _text(old))
    with api.open_keystore(_settings(keys_dir), plugin_manager=pm) as manager:
        populate(manager, clients=2)
        return snapshot(manager.store, old)


def test_env_target_defaults_to_dst_acra_master_key(
    configured: dict[Slot, bytes],
    keys_dir: Path,
    new: MasterKey,
    monkeypatch: pytest.MonkeyPatch,
    pm: KeyloaderPluginManager,
) -> None:
    monkeypatch.setenv("DST_ACRA_MASTER_KEY", _text(new))
    monkeypatch.setenv("ACRA_MASTER_KEY", _text(generate_master_key()))  # not read
    report = api.rewrap_keystore(_settings(keys_dir), to_provider="env", plugin_manager=pm)
    assert report.new_fingerprint == new.fingerprint
    assert report.rewrapped == len(configured)
    assert snapshot(FilesystemKeyStore({"keys_dir": keys_dir}), new) == configured


def test_env_target_variable_option(
    configured: dict[Slot, bytes],
    keys_dir: Path,
    new: MasterKey,
    monkeypatch: pytest.MonkeyPatch,
    pm: KeyloaderPluginManager,
) -> None:
    monkeypatch.setenv("NEW_KEY", _text(new))
    monkeypatch.setenv("DST_ACRA_MASTER_KEY", _text(generate_master_key()))  # not read
    settings = _settings(keys_dir, to={"variable": "NEW_KEY"})
    report = api.rewrap_keystore(settings, to_provider="env", plugin_manager=pm)
    assert report.new_fingerprint == new.fingerprint
    # an explicit ACRA_MASTER_KEY is honoured too, even though it is the option's default
    monkeypatch.setenv("SRC_ACRA_MASTER_KEY", _text(new))  # the keys are under `new` now
    with generate_master_key() as third:
        monkeypatch.setenv("ACRA_MASTER_KEY", _text(third))
        explicit = _settings(keys_dir, to={"variable": "ACRA_MASTER_KEY"})
        dry = api.rewrap_keystore(explicit, to_provider="env", plugin_manager=pm, dry_run=True)
        assert dry.new_fingerprint == third.fingerprint
        assert dry.rewrapped == len(configured)


def test_rewrap_across_providers(
    configured: dict[Slot, bytes],
    keys_dir: Path,
    new: MasterKey,
    tmp_path: Path,
    pm: KeyloaderPluginManager,
) -> None:
    key_file = tmp_path / "new.key"
    key_file.write_bytes(new.encryption.bytes())
    settings = _settings(keys_dir, to={"path": str(key_file)})
    dry = api.rewrap_keystore(settings, to_provider="keyfile-test", plugin_manager=pm, dry_run=True)
    assert (dry.rewrapped, dry.dry_run) == (len(configured), True)
    report = api.rewrap_keystore(settings, to_provider="keyfile-test", plugin_manager=pm)
    assert report.complete
    assert snapshot(FilesystemKeyStore({"keys_dir": keys_dir}), new) == configured


def test_target_options_from_the_config_file(
    configured: dict[Slot, bytes],
    keys_dir: Path,
    new: MasterKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pm: KeyloaderPluginManager,
) -> None:
    key_file = tmp_path / "new.key"
    key_file.write_bytes(new.encryption.bytes())
    config = tmp_path / "keyloader.toml"
    config.write_text(f'[rewrap.to]\npath = "{key_file}"\n')
    settings = load_settings(
        api=Layer(
            provider="env",
            provider_options={"variable": "SRC_ACRA_MASTER_KEY"},
            keys_dir=keys_dir,
            config_file=config,
        )
    )
    report = api.rewrap_keystore(settings, to_provider="keyfile-test", plugin_manager=pm)
    assert report.new_fingerprint == new.fingerprint


def test_target_that_cannot_load_changes_nothing(
    configured: dict[Slot, bytes], keys_dir: Path, pm: KeyloaderPluginManager
) -> None:
    files = raw_files(keys_dir)
    with pytest.raises(MasterKeyNotFoundError) as caught:
        api.rewrap_keystore(_settings(keys_dir), to_provider="env", plugin_manager=pm)
    assert str(caught.value).startswith("rewrap target provider 'env': ")
    assert "DST_ACRA_MASTER_KEY" in str(caught.value)
    with pytest.raises(ProviderNotFoundError):
        api.rewrap_keystore(_settings(keys_dir), to_provider="no-such", plugin_manager=pm)
    with pytest.raises(EnterpriseFeatureError):
        api.rewrap_keystore(_settings(keys_dir), to_provider="aws-kms", plugin_manager=pm)
    settings = _settings(keys_dir, to={"nope": "1"})
    with pytest.raises(ConfigError, match="unknown option 'nope'"):
        api.rewrap_keystore(settings, to_provider="env", plugin_manager=pm)
    assert raw_files(keys_dir) == files


def test_target_equal_to_the_current_key_is_refused(
    configured: dict[Slot, bytes],
    keys_dir: Path,
    old: MasterKey,
    monkeypatch: pytest.MonkeyPatch,
    pm: KeyloaderPluginManager,
) -> None:
    monkeypatch.setenv("DST_ACRA_MASTER_KEY", _text(old))
    files = raw_files(keys_dir)
    with pytest.raises(ConfigError, match="is the current master key"):
        api.rewrap_keystore(_settings(keys_dir), to_provider="env", plugin_manager=pm)
    assert raw_files(keys_dir) == files
