"""The key-store engine (KeyManager) on the built-in stores, with real Secure Cell blobs."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keyloader import secret_pages
from keyloader.audit import AuditEvent
from keyloader.errors import (
    ConfigError,
    IntegrityError,
    KeyExistsError,
    KeyNotFoundError,
    MasterKeyNotFoundError,
)
from keyloader.keyids import KeyId, KeyKind
from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader.secret import SecretBytes
from keyloader.secret_mappings import address_of
from keyloader.stores.filesystem import FilesystemKeyStore
from keyloader.stores.memory import MemoryKeyStore
from keyloader.themis import keys as themis_keys
from keyloader.themis import scell

from ..acrabackup import acra_export_problems

SYM = "client/client1/symmetric"


def fs_store(path: Path) -> FilesystemKeyStore:
    return FilesystemKeyStore({"keys_dir": path, "lock_timeout": 5.0})


@pytest.fixture
def master() -> Iterator[MasterKey]:
    with generate_master_key() as key:
        yield key


@pytest.fixture(params=["filesystem", "memory"])
def manager(
    request: pytest.FixtureRequest, tmp_path: Path, master: MasterKey
) -> Iterator[KeyManager]:
    store: Any
    if request.param == "filesystem":
        store = fs_store(tmp_path / ".acrakeys")
    else:
        store = MemoryKeyStore({"keys_dir": ".acrakeys"})
    with KeyManager(store, _copy(master)) as km:
        yield km
    keys = tmp_path / ".acrakeys"
    if request.param == "filesystem" and keys.exists() and "tampers" not in request.keywords:
        # after the test's writes, Acra's backup (acra-keys export) would read every file
        assert acra_export_problems(keys, master.encryption.bytes()).problems == []


def _copy(key: MasterKey) -> MasterKey:
    return MasterKey(SecretBytes(key.encryption.buffer))


def test_generate_then_read_and_use(manager: KeyManager) -> None:
    kids = manager.generate([KeyKind.SYMMETRIC, KeyKind.SEARCHABLE], client_id="client1")
    assert [str(k) for k in kids] == [SYM, "client/client1/searchable"]
    first = manager.read(SYM)
    assert len(first) == 32
    with manager.use(SYM) as key:
        assert key == first
        held = key
    assert held.wiped
    assert manager.read("client/client1/searchable") != first


def test_client_id_applies_to_client_kinds_only(manager: KeyManager) -> None:
    kids = manager.generate(["symmetric", "audit-log"], client_id="client1")
    assert [str(k) for k in kids] == [SYM, "audit-log"]


def test_global_kinds(manager: KeyManager) -> None:
    manager.generate(["audit-log", "poison-record-symmetric"])
    names = {b.name for b in manager.store.list()}
    assert names == {"secure_log_key", ".poison_key/poison_key_sym"}
    assert len(manager.read("audit-log")) == 32


def test_generate_existing_key_fails_and_writes_nothing(manager: KeyManager) -> None:
    manager.generate(["symmetric"], client_id="client1")
    before = manager.read(SYM)
    with pytest.raises(KeyExistsError, match="keys rotate"):
        manager.generate(["searchable", "symmetric"], client_id="client1")
    assert manager.read(SYM) == before
    assert "client1_hmac" not in {b.name for b in manager.store.list()}


@pytest.mark.parametrize(
    ("kinds", "client_id"),
    [
        (["symmetric"], None),
        (["audit-log"], "client1"),
        (["audit-log", "poison-record-symmetric"], "client1"),
        (["storage"], None),
        (["poison-record"], "client1"),
        ([], None),
        (["nonsense"], None),
        (["symmetric"], "bad!"),
    ],
)
def test_generate_rejects_bad_requests(
    manager: KeyManager, kinds: list[str], client_id: str | None
) -> None:
    with pytest.raises(ConfigError):
        manager.generate(kinds, client_id=client_id)
    assert manager.store.list() == []


def test_rotation_numbering_is_stable(manager: KeyManager) -> None:
    manager.generate(["symmetric"], client_id="client1")
    versions = [manager.read(SYM).bytes()]
    for _ in range(3):
        manager.rotate(SYM)
        versions.append(manager.read(SYM).bytes())
    # index 1 = current, 2 = oldest ... 4 = newest history entry
    assert manager.read(SYM, 1).bytes() == versions[3]
    assert manager.read(SYM, 2).bytes() == versions[0]
    assert manager.read(SYM, 3).bytes() == versions[1]
    assert manager.read(SYM, 4).bytes() == versions[2]
    with pytest.raises(KeyNotFoundError, match="indexes 2 to 4"):
        manager.read(SYM, 5)
    with pytest.raises(ConfigError):
        manager.read(SYM, 0)
    listing = [(i.index, i.state) for i in manager.list(rotated=True)]
    assert listing == [(1, "current"), (2, "rotated"), (3, "rotated"), (4, "rotated")]
    assert [i.index for i in manager.list()] == [1]


def test_destroy_current_keeps_history(manager: KeyManager) -> None:
    manager.generate(["symmetric"], client_id="client1")
    old = manager.read(SYM).bytes()
    manager.rotate(SYM)
    manager.destroy(SYM)
    with pytest.raises(KeyNotFoundError):
        manager.read(SYM)
    assert manager.read(SYM, 2).bytes() == old
    manager.destroy(SYM, index=2)
    with pytest.raises(KeyNotFoundError):
        manager.read(SYM, 2)
    with pytest.raises(KeyNotFoundError):
        manager.destroy("client/nobody/symmetric")


def test_rotate_missing_keys_and_keypairs(manager: KeyManager) -> None:
    with pytest.raises(KeyNotFoundError):
        manager.rotate(SYM)
    with pytest.raises(KeyNotFoundError, match="nothing to rotate"):
        manager.rotate("client/client1/storage")
    assert manager.store.list() == []


def test_wrong_master_key_is_integrity_error(manager: KeyManager) -> None:
    manager.generate(["symmetric"], client_id="client1")
    with generate_master_key() as other, KeyManager(manager.store, _copy(other)) as km:
        with pytest.raises(IntegrityError, match="wrong master key") as info:
            km.read(SYM)
        assert other.fingerprint in str(info.value)


@pytest.mark.tampers
def test_swapped_blob_is_integrity_error(manager: KeyManager) -> None:
    manager.generate(["symmetric"], client_id="client1")
    manager.generate(["symmetric"], client_id="client2")
    store = manager.store
    with store.lock():
        store.put("client2_storage_sym", store.get("client1_storage_sym"))
    with pytest.raises(IntegrityError):
        manager.read("client/client2/symmetric")


def test_tampered_and_truncated_blobs(tmp_path: Path, master: MasterKey) -> None:
    keys = tmp_path / "keys"
    with KeyManager(fs_store(keys), _copy(master)) as km:
        km.generate(["symmetric"], client_id="client1")
        path = keys / "client1_storage_sym"
        good = path.read_bytes()
        for bad in (good[:-1], good[:10], b"", good[:-1] + bytes([good[-1] ^ 1]), good + b"x"):
            path.write_bytes(bad)
            with pytest.raises(IntegrityError):
                km.read(SYM)
        seen: list[tuple[int, int]] = []
        results = km.verify(progress=lambda done, total: seen.append((done, total)))
        assert [r.ok for r in results] == [False]
        assert seen == [(1, 1)]
        assert results[0].error_type == "IntegrityError"


def test_verify_reports_each_failure_and_unknown_files(tmp_path: Path, master: MasterKey) -> None:
    keys = tmp_path / "keys"
    with KeyManager(fs_store(keys), _copy(master)) as km:
        km.generate(["symmetric", "searchable"], client_id="client1")
        km.rotate(SYM)
        (keys / "client1_hmac").write_bytes(b"garbage")
        legacy = keys / "client1_zone"
        legacy.write_bytes(b"old acra zone key")
        legacy.chmod(0o600)
        results = km.verify()
    by_path = {Path(r.path).name: r for r in results}
    assert by_path["client1_hmac"].ok is False
    assert by_path["client1_storage_sym"].ok is True
    assert by_path["client1_zone"].error_type == "unknown"
    assert by_path["client1_zone"].ok is None  # reported, but not a key: not a failure
    assert [r.ok for r in results].count(True) == 2  # current + one history entry
    assert legacy.read_bytes() == b"old acra zone key"


def test_verify_reports_each_checked_key_to_audit_observers(
    tmp_path: Path, master: MasterKey
) -> None:
    keys = tmp_path / "keys"
    events: list[AuditEvent] = []
    with KeyManager(fs_store(keys), _copy(master), emit=events.append) as km:
        km.generate(["symmetric", "searchable"], client_id="client1")
        km.rotate(SYM)
        (keys / "client1_hmac").write_bytes(b"garbage")
        events.clear()
        km.verify()
    verified = [e for e in events if e.action == "key_verified"]
    assert sorted((e.key_id, e.index, e.ok, e.error_type) for e in verified) == [
        ("client/client1/searchable", 1, False, "IntegrityError"),
        ("client/client1/symmetric", 1, True, None),
        ("client/client1/symmetric", 2, True, None),
    ]
    assert all(e.fingerprint == master.fingerprint for e in verified)


class CountingProvider:
    """A master-key source that counts loads (the engine accepts any callable)."""

    def __init__(self, key: MasterKey | None) -> None:
        self.key = key
        self.loads = 0

    def __call__(self) -> MasterKey:
        self.loads += 1
        if self.key is None:
            raise MasterKeyNotFoundError("no master key here")
        return self.key


def test_listing_does_not_load_the_master_key(tmp_path: Path, master: MasterKey) -> None:
    keys = tmp_path / "keys"
    with KeyManager(fs_store(keys), _copy(master)) as km:
        km.generate(["symmetric"], client_id="client1")
    source = CountingProvider(None)
    with KeyManager(fs_store(keys), source) as km:
        assert [i.key_id for i in km.list(rotated=True)] == [SYM]
        assert source.loads == 0
        with pytest.raises(MasterKeyNotFoundError):
            km.list(check=True)
    with KeyManager(fs_store(keys), _copy(master)) as km:
        assert [i.decrypts for i in km.list(check=True)] == [True]


def test_v2_master_key_and_v2_directory_are_refused(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    with generate_master_key("v2") as v2, KeyManager(fs_store(keys), v2) as km:
        with pytest.raises(ConfigError, match="keystore v2 is not supported"):
            km.generate(["symmetric"], client_id="client1")
    keys.mkdir(mode=0o700, exist_ok=True)
    (keys / "version").write_text("Acra Keystore v2\n")
    with generate_master_key() as v1, pytest.raises(ConfigError, match="keystore v2"):
        KeyManager(fs_store(keys), v1)


def test_acra_written_directory_is_read(tmp_path: Path, master: MasterKey) -> None:
    """A directory laid out the Acra way: names, contexts, .old history, .pub, an unknown file."""
    keys = tmp_path / ".acrakeys"
    (keys / ".poison_key").mkdir(parents=True, mode=0o700)
    keys.chmod(0o700)
    raw = {name: os.urandom(32) for name in ("sym", "old", "hmac", "log", "poison")}
    private, public = themis_keys.generate_keypair()  # what Acra's keymaker writes: Themis EC
    with private:
        raw["storage"] = private.bytes()
    mk = master.encryption.bytes()

    def write(rel: str, data: bytes, mode: int = 0o600) -> None:
        path = keys / rel
        path.parent.mkdir(mode=0o700, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)

    write("client1_storage_sym", scell.encrypt(mk, raw["sym"], b"client1"))
    write(
        "client1_storage_sym.old/2024-01-02T03:04:05.123456789",
        scell.encrypt(mk, raw["old"], b"client1"),
    )
    write("client1_hmac", scell.encrypt(mk, raw["hmac"], b"client1"))
    write("secure_log_key", scell.encrypt(mk, raw["log"], b"secure_log_key"))
    write(
        ".poison_key/poison_key_sym",
        scell.encrypt(mk, raw["poison"], b".poison_key/poison_key_sym"),
    )
    write("client1_storage", scell.encrypt(mk, raw["storage"], b"client1"))
    write("client1_storage.pub", public, 0o644)
    write("client1_server", b"pre-0.85 acra transport key")

    with KeyManager(fs_store(keys), _copy(master)) as km:
        assert km.read(SYM).bytes() == raw["sym"]
        assert km.read(SYM, 2).bytes() == raw["old"]
        assert km.read("client/client1/searchable").bytes() == raw["hmac"]
        assert km.read("audit-log").bytes() == raw["log"]
        assert km.read("poison-record-symmetric").bytes() == raw["poison"]
        assert km.read("client/client1/storage").bytes() == raw["storage"]
        assert km.read_public("client/client1/storage") == public
        rows = {(Path(i.path).name, i.state, i.index) for i in km.list(rotated=True)}
        assert ("client1_server", "unknown", None) in rows
        assert ("client1_storage.pub", "public", None) in rows
        assert ("2024-01-02T03:04:05.123456789", "rotated", 2) in rows
        created = [i.created for i in km.list(rotated=True) if i.state == "rotated"]
        assert created == [pytest.approx(1704164645.123456789)]
        assert all(r.ok for r in km.verify() if r.error_type != "unknown")


def test_cache_serves_without_reading_and_revalidates(tmp_path: Path, master: MasterKey) -> None:
    keys = tmp_path / "keys"

    class CountingStore(FilesystemKeyStore):
        reads = 0

        def get(self, name: str) -> bytes:
            type(self).reads += 1
            return super().get(name)

    store = CountingStore({"keys_dir": keys, "lock_timeout": 5.0})
    with KeyManager(store, _copy(master), cache_size=10) as km:
        km.generate(["symmetric"], client_id="client1")
        first = km.read(SYM).bytes()
        reads = CountingStore.reads
        for _ in range(5):
            with km.use(SYM) as key:
                assert key.bytes() == first
        assert CountingStore.reads == reads  # served from the cache
        # another process rotates the key: the cache notices the file changed
        with KeyManager(fs_store(keys), _copy(master)) as other:
            other.rotate(SYM)
            fresh = other.read(SYM).bytes()
        assert km.read(SYM).bytes() == fresh
        assert CountingStore.reads == reads + 1
        # the cache holds keys in secret pages only
        entries = km._cache._entries.values()  # type: ignore[union-attr]
        assert entries
        regions = [(r.address, r.address + r.length) for r in secret_pages.stats().regions]
        for *_, key in entries:
            address = address_of(key.buffer)
            assert any(start <= address < end for start, end in regions)


def test_cache_drops_entries_on_rotate_and_destroy(manager: KeyManager, master: MasterKey) -> None:
    km = KeyManager(manager.store, _copy(master), cache_size=4)
    km.generate(["symmetric"], client_id="client1")
    before = km.read(SYM).bytes()
    km.rotate(SYM)
    assert km.read(SYM).bytes() != before
    km.destroy(SYM)
    with pytest.raises(KeyNotFoundError):
        km.read(SYM)


def test_cache_size_must_not_be_negative(master: MasterKey) -> None:
    with pytest.raises(ConfigError, match="cache_size"):
        KeyManager(MemoryKeyStore({"keys_dir": "x"}), master, cache_size=-1)


def test_previous_master_key_fallback(master: MasterKey) -> None:
    store = MemoryKeyStore({"keys_dir": "x"})
    with KeyManager(store, _copy(master)) as old:
        old.generate(["symmetric"], client_id="client1")
        expected = old.read(SYM).bytes()
    with generate_master_key() as new:
        with KeyManager(store, _copy(new)) as km, pytest.raises(IntegrityError):
            km.read(SYM)
        with KeyManager(store, _copy(new), previous=_copy(master)) as km:
            assert km.read(SYM).bytes() == expected
        with (
            generate_master_key() as unrelated,
            KeyManager(store, _copy(new), previous=unrelated) as km,
        ):
            with pytest.raises(IntegrityError, match="previous master key"):
                km.read(SYM)


def test_audit_events_carry_no_key_material(master: MasterKey) -> None:
    events: list[AuditEvent] = []
    store = MemoryKeyStore({"keys_dir": "x"})
    with KeyManager(store, _copy(master), emit=events.append, provider_name="test") as km:
        km.generate(["symmetric"], client_id="client1")
        with km.use(SYM) as key:
            secret = key.bytes()
        km.rotate(SYM)
        km.destroy(SYM, index=2)
        with pytest.raises(KeyNotFoundError):
            km.read("client/client2/symmetric")
    actions = [e.action for e in events]
    assert actions == [
        "master_key_loaded",
        "key_generated",
        "key_used",
        "key_rotated",
        "key_destroyed",
        "key_read",
    ]
    assert events[-1].ok is False
    assert events[-1].error_type == "KeyNotFoundError"
    assert all(e.fingerprint == master.fingerprint and e.provider == "test" for e in events)
    dump = repr(events).encode()
    for form in (
        secret,
        secret.hex().encode(),
        base64.b64encode(secret),
        master.encryption.bytes(),
        base64.b64encode(master.encryption.bytes()),
    ):
        assert form not in dump


def test_repr_shows_no_secrets(manager: KeyManager) -> None:
    manager.generate(["symmetric"], client_id="client1")
    text = repr(manager) + repr(manager.master_key)
    assert base64.b64encode(manager.master_key.encryption.bytes()).decode() not in text
    assert "redacted" in repr(manager.read(SYM)) or "bytes" in repr(manager.read(SYM))


def test_close_wipes_the_master_key(master: MasterKey) -> None:
    key = _copy(master)
    buffer = key.encryption
    km = KeyManager(MemoryKeyStore({"keys_dir": "x"}), key)
    km.generate(["symmetric"], client_id="client1")
    km.close()
    assert buffer.wiped
    assert key.closed


def test_key_ids_accept_objects(manager: KeyManager) -> None:
    kid = KeyId(KeyKind.SEARCHABLE, "client9")
    manager.generate([kid.kind], client_id=kid.client_id)
    assert len(manager.read(kid)) == 32


def test_a_key_in_use_survives_its_eviction_and_close_wipes_the_cache(
    tmp_path: Path, master: MasterKey
) -> None:
    store = fs_store(tmp_path / "keys")
    with KeyManager(store, _copy(master), cache_size=1) as km:
        km.generate(["symmetric", "searchable"], client_id="client1")
        expected = km.read(SYM).bytes()
        with km.use(SYM) as key:
            slot = key.view[:]
            with km.use("client/client1/searchable"):
                pass  # evicts SYM's entry (cache_size 1) while the block still uses it
            assert key.bytes() == expected
            assert SYM.split("/")[1] + "_storage_sym" not in {s[0] for s in km._cache._entries}  # type: ignore[union-attr]
        assert slot == bytes(32)  # evicted, and no longer leased: zeroed
        with km.use(SYM) as key:
            cached = key.view[:]
        assert cached == expected  # cached again
    assert cached == bytes(32)  # close() wiped the cache
