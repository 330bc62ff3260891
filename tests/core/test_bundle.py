"""Export bundles and their import: round trips, the byte format, tampering, refusals."""

from __future__ import annotations

import base64
import os
import stat
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from keyloader import api
from keyloader.audit import AuditEvent
from keyloader.bundle import ExportReport, ImportReport, export_keys, import_keys
from keyloader.bundle_format import BUNDLE_CONTEXT
from keyloader.errors import (
    ConfigError,
    InsecurePermissionsError,
    IntegrityError,
    KeyExistsError,
    KeyloaderError,
    KeyNotFoundError,
    KeyStoreError,
)
from keyloader.keyids import classify
from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader.rewrap import rewrap_keys
from keyloader.secret import SecretBytes
from keyloader.stores.base import KeyStore
from keyloader.stores.filesystem import FilesystemKeyStore
from keyloader.stores.memory import MemoryKeyStore
from keyloader.themis import scell

Slot = tuple[str, str | None]


def copy(key: MasterKey) -> MasterKey:
    return MasterKey(SecretBytes(key.encryption.buffer))


@pytest.fixture
def key_a() -> Iterator[MasterKey]:
    with generate_master_key() as key:
        yield key


@pytest.fixture
def key_b() -> Iterator[MasterKey]:
    with generate_master_key() as key:
        yield key


def populate(manager: KeyManager) -> None:
    for i in range(3):
        manager.generate(["symmetric", "searchable"], client_id=f"client{i}")
    manager.rotate("client/client0/symmetric")
    manager.rotate("client/client0/symmetric")
    manager.generate(["audit-log", "poison-record-symmetric"])
    manager.rotate("poison-record-symmetric")
    key = manager.master_key.encryption.buffer
    store = manager.store
    with store.lock():
        store.put("client1_storage", scell.encrypt(key, os.urandom(64), b"client1"))
        store.put("client1_storage.pub", b"client1 public key", public=True)
        poison = scell.encrypt(key, os.urandom(48), b".poison_key/poison_key")
        store.put(".poison_key/poison_key", poison)
        store.put(".poison_key/poison_key.pub", b"poison public", public=True)


def contents(store: KeyStore, key: MasterKey) -> dict[Slot, bytes]:
    """Every blob: the plaintext of private ones (decrypted with ``key``), public ones as is."""
    found: dict[Slot, bytes] = {}
    for blob in store.list():
        what = classify(blob.name)
        assert what.key_id is not None, blob.name
        stamps: list[str | None] = [None] if blob.current else []
        for ts in [*stamps, *blob.history]:
            data = store.get(blob.name) if ts is None else store.get_history(blob.name, ts)
            if what.public:
                found[(blob.name, ts)] = data
            else:
                with scell.decrypt(key.encryption.buffer, data, what.key_id.context) as plain:
                    found[(blob.name, ts)] = plain.bytes()
    return found


def tree(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file and directory under ``root`` with content (files) and mode."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else b"", p.stat().st_mode)
        for p in sorted(root.rglob("*"))
        if p.name != ".keyloader.lock"
    }


def leaks(text: str, secrets: list[bytes]) -> list[str]:
    found = []
    for secret in secrets:
        for form in (secret.hex(), base64.b64encode(secret).decode(), secret.decode("latin-1")):
            if form in text:
                found.append(form[:8])
    return found


@pytest.fixture
def events() -> list[AuditEvent]:
    return []


@pytest.fixture
def source(tmp_path: Path, key_a: MasterKey, events: list[AuditEvent]) -> Iterator[KeyManager]:
    store = FilesystemKeyStore({"keys_dir": tmp_path / "keys-a"})
    with KeyManager(store, copy(key_a), emit=events.append) as manager:
        populate(manager)
        yield manager


@pytest.fixture
def dest(tmp_path: Path, key_b: MasterKey, events: list[AuditEvent]) -> Iterator[KeyManager]:
    store = FilesystemKeyStore({"keys_dir": tmp_path / "keys-b"})
    with KeyManager(store, copy(key_b), emit=events.append) as manager:
        yield manager


@pytest.fixture
def exported(source: KeyManager, tmp_path: Path) -> tuple[Path, Path]:
    export_keys(source, None, tmp_path / "keys.bundle", tmp_path / "keys.secret")
    return tmp_path / "keys.bundle", tmp_path / "keys.secret"


# -- round trip ------------------------------------------------------------------------------


def test_round_trip_across_directories_and_master_keys(
    source: KeyManager,
    dest: KeyManager,
    key_a: MasterKey,
    key_b: MasterKey,
    tmp_path: Path,
    events: list[AuditEvent],
) -> None:
    before = contents(source.store, key_a)
    bundle, secret = tmp_path / "out.bundle", tmp_path / "out.secret"
    report = export_keys(source, None, bundle, secret)
    assert report == ExportReport(
        output=bundle,
        secret_output=secret,
        store=source.store.location,
        fingerprint=key_a.fingerprint,
        key_ids=(
            "poison-record",
            "poison-record-symmetric",
            "client/client0/searchable",
            "client/client0/symmetric",
            "client/client1/searchable",
            "client/client1/storage",
            "client/client1/symmetric",
            "client/client2/searchable",
            "client/client2/symmetric",
            "audit-log",
        ),
        entries=len(before),
        history=3,
        public=2,
    )
    for path in (bundle, secret):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(secret.read_bytes()) == 32
    data = bundle.read_bytes()
    for plain in before.values():  # the whole payload is sealed, public parts included
        assert plain not in data
    result = import_keys(dest, bundle, secret)
    after = contents(dest.store, key_b)
    assert after == before  # same names, history timestamps, plaintexts and public files
    keys_b = Path(dest.store.location)
    assert result == ImportReport(
        input=bundle,
        store=dest.store.location,
        fingerprint=key_b.fingerprint,
        imported=tuple(sorted(result.imported)),
        replaced=(),
        kept=(),
        identical=(),
    )
    assert len(result.imported) == len(before)
    assert f"{keys_b}/client0_storage_sym.old/" in " ".join(result.imported)
    for path in keys_b.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.is_dir():
            assert mode == 0o700, path
        elif path.name.endswith(".pub"):
            assert mode == 0o644, path
        else:
            assert mode == 0o600, path
    assert not list(keys_b.glob(".keyloader-import-*"))
    with pytest.raises(IntegrityError):
        contents(dest.store, key_a)  # re-sealed under the destination's key
    actions = [(e.action, e.ok) for e in events if e.action.startswith("keys_")]
    assert actions == [("keys_exported", True), ("keys_imported", True)]


def test_rerun_reports_identical_keys(
    dest: KeyManager, exported: tuple[Path, Path], key_b: MasterKey
) -> None:
    first = import_keys(dest, *exported)
    files = tree(Path(dest.store.location))
    second = import_keys(dest, *exported)
    assert (second.imported, second.kept, second.replaced) == ((), (), ())
    assert sorted(second.identical) == sorted(first.imported)
    assert tree(Path(dest.store.location)) == files


def test_progress_of_export_and_import(
    source: KeyManager, dest: KeyManager, tmp_path: Path
) -> None:
    exported: list[tuple[int, int]] = []
    report = export_keys(
        source, None, tmp_path / "b", tmp_path / "s", progress=lambda d, t: exported.append((d, t))
    )
    assert exported == [(i, report.entries) for i in range(1, report.entries + 1)]
    imported: list[tuple[int, int]] = []
    import_keys(dest, tmp_path / "b", tmp_path / "s", progress=lambda d, t: imported.append((d, t)))
    total = report.entries + 1  # and the write of them all
    assert imported == [(i, total) for i in range(1, total + 1)]


def test_an_empty_public_file_round_trips(
    source: KeyManager, dest: KeyManager, tmp_path: Path
) -> None:
    with source.store.lock():
        source.store.put("client1_storage.pub", b"", public=True)
    export_keys(source, ["client/client1/storage"], tmp_path / "b", tmp_path / "s")
    import_keys(dest, tmp_path / "b", tmp_path / "s")
    assert dest.store.get("client1_storage.pub") == b""


def test_export_selected_keys(source: KeyManager, dest: KeyManager, tmp_path: Path) -> None:
    report = export_keys(
        source,
        ["client/client0/symmetric", "client/client1/storage", "client/client0/symmetric"],
        tmp_path / "b",
        tmp_path / "s",
    )
    assert report.key_ids == ("client/client0/symmetric", "client/client1/storage")
    assert (report.entries, report.history, report.public) == (5, 2, 1)
    import_keys(dest, tmp_path / "b", tmp_path / "s")
    names = [(b.name, len(b.history)) for b in dest.store.list()]
    assert names == [
        ("client0_storage_sym", 2),
        ("client1_storage", 0),
        ("client1_storage.pub", 0),
    ]


def test_export_through_the_previous_key_of_a_half_rewrapped_store(
    source: KeyManager, key_a: MasterKey, dest: KeyManager, tmp_path: Path
) -> None:
    before = contents(source.store, key_a)
    with generate_master_key() as key_c:
        with pytest.raises(KeyboardInterrupt):
            rewrap_keys(source, key_c, progress=_interrupt_at(len(before) + 4))
        store = FilesystemKeyStore({"keys_dir": source.store.location})
        with KeyManager(store, copy(key_c), previous=copy(key_a)) as half:
            export_keys(half, None, tmp_path / "b", tmp_path / "s")
    import_keys(dest, tmp_path / "b", tmp_path / "s")
    assert contents(dest.store, dest.master_key) == before


def _interrupt_at(step: int) -> Any:
    def progress(done: int, total: int) -> None:
        if done == step:
            raise KeyboardInterrupt

    return progress


def test_the_byte_format_is_the_documented_one(
    source: KeyManager, key_a: MasterKey, exported: tuple[Path, Path]
) -> None:
    """An independent reader of docs/format.md's "Export bundle" layout."""
    bundle, secret = exported
    plain = scell.decrypt(secret.read_bytes(), bundle.read_bytes(), b"keyloader export bundle")
    payload = plain.bytes()
    assert payload[:8] == b"KLBUNDLE"
    version, count = struct.unpack_from("<HI", payload, 8)
    assert version == 1
    pos, entries = 14, {}
    for _ in range(count):
        flags, name_len = struct.unpack_from("<BH", payload, pos)
        pos += 3
        name = payload[pos : pos + name_len].decode()
        pos += name_len
        ts = None
        if flags & 2:
            ts_len = payload[pos]
            ts = payload[pos + 1 : pos + 1 + ts_len].decode("ascii")
            pos += 1 + ts_len
        (size,) = struct.unpack_from("<I", payload, pos)
        pos += 4
        entries[(name, ts)] = payload[pos : pos + size]
        pos += size
        assert bool(flags & 1) == name.endswith(".pub")
    assert pos == len(payload)
    assert entries == contents(source.store, key_a)


def test_memory_and_generic_stores(
    source: KeyManager, key_a: MasterKey, key_b: MasterKey, exported: tuple[Path, Path]
) -> None:
    before = contents(source.store, key_a)

    class GenericStore(MemoryKeyStore):
        """A store with only the KeyStore defaults for batches (put/create_history one by one)."""

        name: ClassVar[str] = "generic"
        put_many = KeyStore.put_many

    for store in (MemoryKeyStore({}), GenericStore({})):
        with KeyManager(store, copy(key_b)) as manager:
            report = import_keys(manager, *exported)
            assert len(report.imported) == len(before)
            assert contents(store, key_b) == before


def test_a_store_without_history_support_imports_current_keys_only(
    source: KeyManager, key_b: MasterKey, tmp_path: Path
) -> None:
    class NoHistoryStore(MemoryKeyStore):
        name: ClassVar[str] = "no-history"
        put_many = KeyStore.put_many
        create_history = KeyStore.create_history

    with KeyManager(NoHistoryStore({}), copy(key_b)) as manager:
        export_keys(source, ["client/client1/symmetric"], tmp_path / "b", tmp_path / "s")
        assert len(import_keys(manager, tmp_path / "b", tmp_path / "s").imported) == 1
        export_keys(source, ["client/client0/symmetric"], tmp_path / "b2", tmp_path / "s2")
        with pytest.raises(KeyStoreError, match="cannot create history entries"):
            import_keys(manager, tmp_path / "b2", tmp_path / "s2")


def test_api_wrappers(
    source: KeyManager,
    key_a: MasterKey,
    key_b: MasterKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KEY_A", key_a.to_text().bytes().decode())
    monkeypatch.setenv("KEY_B", key_b.to_text().bytes().decode())
    settings_a = api.resolve(
        provider="env", provider_options={"variable": "KEY_A"}, keys_dir=source.store.location
    )
    settings_b = api.resolve(
        provider="env", provider_options={"variable": "KEY_B"}, keys_dir=tmp_path / "api"
    )
    report = api.export_keystore(settings_a, ["audit-log"], tmp_path / "b", tmp_path / "s")
    assert report.key_ids == ("audit-log",)
    imported = api.import_keystore(settings_b, tmp_path / "b", tmp_path / "s")
    assert imported.imported == (f"{tmp_path / 'api'}/secure_log_key",)


# -- existing keys ----------------------------------------------------------------------------


def test_existing_keys_are_kept_unless_forced(
    source: KeyManager, dest: KeyManager, exported: tuple[Path, Path], key_a: MasterKey
) -> None:
    dest.generate(["symmetric"], client_id="client0")
    dest.generate(["symmetric"], client_id="client9")  # not in the bundle: never touched
    mine = dest.read("client/client0/symmetric").bytes()
    other = dest.read("client/client9/symmetric").bytes()
    keys_b = Path(dest.store.location)
    report = import_keys(dest, *exported)
    assert report.kept == (f"{keys_b}/client0_storage_sym",)
    assert dest.read("client/client0/symmetric").bytes() == mine
    theirs = source.read("client/client0/symmetric").bytes()
    forced = import_keys(dest, *exported, force=True)
    assert forced.replaced == (f"{keys_b}/client0_storage_sym",)
    assert forced.imported == ()
    assert len(forced.identical) == len(report.imported)
    assert dest.read("client/client0/symmetric").bytes() == theirs
    assert dest.read("client/client9/symmetric").bytes() == other


# -- outputs of an export ---------------------------------------------------------------------


@pytest.mark.parametrize("existing", ["bundle", "secret"])
def test_export_never_overwrites_without_force(
    source: KeyManager, tmp_path: Path, existing: str
) -> None:
    bundle, secret = tmp_path / "bundle", tmp_path / "secret"
    (tmp_path / existing).write_bytes(b"precious")
    with pytest.raises(KeyExistsError, match=f"{tmp_path / existing} already exists"):
        export_keys(source, None, bundle, secret)
    assert (tmp_path / existing).read_bytes() == b"precious"
    other = secret if existing == "bundle" else bundle
    assert not other.exists()
    export_keys(source, None, bundle, secret, force=True)
    assert stat.S_IMODE((tmp_path / existing).stat().st_mode) == 0o600
    assert len(secret.read_bytes()) == 32
    assert not list(tmp_path.glob(".keyloader-tmp-*"))


def test_forced_export_replaces_both_with_a_fresh_secret(
    source: KeyManager, dest: KeyManager, exported: tuple[Path, Path]
) -> None:
    bundle, secret = exported
    old_secret = secret.read_bytes()
    export_keys(source, None, bundle, secret, force=True)
    assert secret.read_bytes() != old_secret
    secret.write_bytes(old_secret)
    with pytest.raises(IntegrityError, match="wrong secret"):
        import_keys(dest, bundle, secret)


def test_export_output_errors(source: KeyManager, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="two different files"):
        export_keys(source, None, tmp_path / "same", tmp_path / "." / "same")
    with pytest.raises(ConfigError, match="does not exist; create it first"):
        export_keys(source, None, tmp_path / "missing" / "b", tmp_path / "s")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keys-a"]


def test_export_refuses_missing_keys_and_writes_nothing(source: KeyManager, tmp_path: Path) -> None:
    with pytest.raises(KeyNotFoundError, match="client/client7/symmetric does not exist"):
        export_keys(
            source, ["audit-log", "client/client7/symmetric"], tmp_path / "b", tmp_path / "s"
        )
    with pytest.raises(ConfigError, match="invalid key id"):
        export_keys(source, ["nonsense"], tmp_path / "b", tmp_path / "s")
    empty = KeyManager(MemoryKeyStore({}), generate_master_key())
    with pytest.raises(KeyNotFoundError, match="no keys to export"):
        export_keys(empty, None, tmp_path / "b", tmp_path / "s")
    assert not (tmp_path / "b").exists()
    assert not (tmp_path / "s").exists()


def test_export_refuses_undecryptable_keys(
    source: KeyManager, tmp_path: Path, events: list[AuditEvent]
) -> None:
    with source.store.lock():
        source.store.put("client5_hmac", b"garbage, not a Secure Cell")
    with pytest.raises(IntegrityError, match="client5_hmac"):
        export_keys(source, None, tmp_path / "b", tmp_path / "s")
    assert not (tmp_path / "b").exists()
    assert not (tmp_path / "s").exists()
    failed = [e for e in events if e.action == "keys_exported"]
    assert [(e.ok, e.error_type) for e in failed] == [(False, "IntegrityError")]


def test_export_all_reports_unknown_files(source: KeyManager, tmp_path: Path) -> None:
    with source.store.lock():
        source.store.put("auth_key", b"an old acra key")
    report = export_keys(source, None, tmp_path / "b", tmp_path / "s")
    assert report.unknown == (f"{source.store.location}/auth_key",)


# -- bad bundles: nothing is written ----------------------------------------------------------


def _flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1 :]


TAMPERING: dict[str, Callable[[bytes], bytes]] = {
    "algorithm": lambda d: _flip(d, 0),
    "length": lambda d: _flip(d, 12),
    "iv": lambda d: _flip(d, 20),
    "tag": lambda d: _flip(d, 30),
    "ciphertext": lambda d: _flip(d, 60),
    "last byte": lambda d: _flip(d, len(d) - 1),
    "truncated": lambda d: d[:-1],
    "extended": lambda d: d + b"\0",
    "empty": lambda d: b"",
}


@pytest.mark.parametrize("how", sorted(TAMPERING))
def test_tampered_bundle_is_refused(
    dest: KeyManager, exported: tuple[Path, Path], how: str, events: list[AuditEvent]
) -> None:
    dest.generate(["audit-log"])
    bundle, secret = exported
    bundle.write_bytes(TAMPERING[how](bundle.read_bytes()))
    files = tree(Path(dest.store.location))
    with pytest.raises(IntegrityError, match="wrong secret file, or the bundle was modified"):
        import_keys(dest, bundle, secret)
    assert tree(Path(dest.store.location)) == files
    assert [(e.ok, e.error_type) for e in events if e.action == "keys_imported"] == [
        (False, "IntegrityError")
    ]


def test_wrong_secret_is_refused(
    source: KeyManager, dest: KeyManager, exported: tuple[Path, Path], tmp_path: Path
) -> None:
    export_keys(source, None, tmp_path / "other.bundle", tmp_path / "other.secret")
    with pytest.raises(IntegrityError, match="wrong secret"):
        import_keys(dest, exported[0], tmp_path / "other.secret")
    assert dest.store.list() == []


def test_secret_and_bundle_file_errors(
    dest: KeyManager, exported: tuple[Path, Path], tmp_path: Path
) -> None:
    bundle, secret = exported
    short = tmp_path / "short"
    short.write_bytes(secret.read_bytes()[:31])
    short.chmod(0o600)
    with pytest.raises(ConfigError, match="is 31 bytes, not a bundle secret"):
        import_keys(dest, bundle, short)
    long = tmp_path / "long"
    long.write_bytes(secret.read_bytes() + b"\n")
    long.chmod(0o600)
    with pytest.raises(ConfigError, match="is too large, not a bundle secret"):
        import_keys(dest, bundle, long)
    with pytest.raises(ConfigError, match="does not exist"):
        import_keys(dest, bundle, tmp_path / "nope")
    with pytest.raises(ConfigError, match="does not exist"):
        import_keys(dest, tmp_path / "nope", secret)
    with pytest.raises(ConfigError, match="is a directory"):
        import_keys(dest, tmp_path, secret)
    secret.chmod(0o644)
    with pytest.raises(InsecurePermissionsError, match="chmod 600"):
        import_keys(dest, bundle, secret)
    assert dest.store.list() == []


def _payload(*entries: bytes, count: int | None = None, magic: bytes = b"KLBUNDLE") -> bytes:
    n = len(entries) if count is None else count
    return magic + struct.pack("<HI", 1, n) + b"".join(entries)


def _entry(name: str, data: bytes = b"k" * 32, flags: int = 0, ts: str | None = None) -> bytes:
    encoded = name.encode()
    out = struct.pack("<BH", flags, len(encoded)) + encoded
    if ts is not None:
        out += bytes([len(ts)]) + ts.encode()
    return out + struct.pack("<I", len(data)) + data


MALFORMED: dict[str, tuple[bytes, str]] = {
    "bad magic": (_payload(_entry("secure_log_key"), magic=b"NOTABNDL"), "bad magic"),
    "short": (b"KLBUNDLE\x01", "shorter than its header"),
    "unknown flags": (_payload(_entry("secure_log_key", flags=8)), "unknown flags"),
    "unknown name": (_payload(_entry("auth_key")), "not an Acra keystore v1 key"),
    "escaping name": (_payload(_entry("../client1_hmac")), "not an Acra keystore v1 key"),
    "public flag": (_payload(_entry("client1_storage.pub")), "wrong public flag"),
    "public history of a symmetric key": (
        _payload(_entry("secure_log_key.pub", flags=3, ts="2020-01-01T00:00:00")),
        "not an Acra keystore v1 key",
    ),
    "bad timestamp": (
        _payload(_entry("secure_log_key", flags=2, ts="yesterday")),
        "bad history timestamp",
    ),
    "empty key": (_payload(_entry("secure_log_key", b"")), "is empty"),
    "duplicate": (
        _payload(_entry("secure_log_key"), _entry("secure_log_key")),
        "appears twice",
    ),
    "trailing bytes": (_payload(_entry("secure_log_key")) + b"\0", "1 bytes follow"),
    "missing entry": (_payload(_entry("secure_log_key"), count=2), "ends inside entry 2"),
    "cut data": (_payload(_entry("secure_log_key"))[:-1], "ends inside the data of entry 1"),
    "bad utf-8": (_payload(_entry("secure_log_key")).replace(b"secure", b"\xffecure"), "UTF-8"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_authentic_but_malformed_payloads_are_refused(
    dest: KeyManager, tmp_path: Path, case: str
) -> None:
    payload, message = MALFORMED[case]
    secret = os.urandom(32)
    (tmp_path / "b").write_bytes(scell.encrypt(secret, payload, BUNDLE_CONTEXT))
    (tmp_path / "s").write_bytes(secret)
    (tmp_path / "s").chmod(0o600)
    with pytest.raises(IntegrityError, match="is malformed") as caught:
        import_keys(dest, tmp_path / "b", tmp_path / "s")
    assert message.lower() in str(caught.value).lower()
    assert "nothing was imported" in str(caught.value)
    assert dest.store.list() == []


def test_a_newer_format_version_is_a_config_error(dest: KeyManager, tmp_path: Path) -> None:
    secret = os.urandom(32)
    (tmp_path / "s").write_bytes(secret)
    (tmp_path / "s").chmod(0o600)
    for version, message in (
        (3, "format version 3; this keyloader reads version 1"),
        (2, "holds Acra keystore v2 key rings: import it into a keystore v2 store"),
    ):
        payload = b"KLBUNDLE" + struct.pack("<HI", version, 0)
        (tmp_path / "b").write_bytes(scell.encrypt(secret, payload, BUNDLE_CONTEXT))
        with pytest.raises(ConfigError, match=message):
            import_keys(dest, tmp_path / "b", tmp_path / "s")


def test_a_failing_target_leaves_the_destination_unchanged(
    dest: KeyManager, exported: tuple[Path, Path]
) -> None:
    """One target cannot be replaced (a directory sits there): no other key is written."""
    dest.generate(["audit-log"])
    keys_b = Path(dest.store.location)
    (keys_b / "client2_hmac").mkdir(mode=0o700)
    files = tree(keys_b)
    with pytest.raises(KeyStoreError, match="client2_hmac is not a regular file"):
        import_keys(dest, *exported, force=True)
    assert tree(keys_b) == files
    assert not list(keys_b.glob(".keyloader-import-*"))


def test_reports_and_errors_carry_no_key_material(
    source: KeyManager,
    dest: KeyManager,
    key_a: MasterKey,
    key_b: MasterKey,
    exported: tuple[Path, Path],
    tmp_path: Path,
    events: list[AuditEvent],
) -> None:
    bundle, secret = exported
    secrets = [
        key_a.encryption.bytes(),
        key_b.encryption.bytes(),
        secret.read_bytes(),
        *(v for k, v in contents(source.store, key_a).items() if not k[0].endswith(".pub")),
    ]
    texts = [repr(import_keys(dest, bundle, secret)), repr(import_keys(dest, bundle, secret))]
    texts.append(repr(export_keys(source, None, tmp_path / "b2", tmp_path / "s2")))
    failures: list[Any] = [
        lambda: import_keys(dest, bundle, tmp_path / "s2"),
        lambda: import_keys(dest, tmp_path / "b2", secret),
        lambda: export_keys(source, None, bundle, secret),
    ]
    for fail in failures:
        with pytest.raises(KeyloaderError) as caught:
            fail()
        texts.append(str(caught.value))
    texts += [repr(e) for e in events]
    for text in texts:
        assert leaks(text, secrets) == [], text


def test_a_rotated_keypair_travels_with_both_histories(tmp_path: Path) -> None:
    with generate_master_key() as source_key, generate_master_key() as target_key:
        source = KeyManager(
            FilesystemKeyStore({"keys_dir": tmp_path / "a"}),
            MasterKey(SecretBytes(source_key.encryption.buffer)),
        )
        with source:
            source.generate(["storage"], client_id="client1")
            source.rotate("client/client1/storage")
            report = export_keys(source, None, tmp_path / "b.bundle", tmp_path / "b.secret")
            listing = {b.name: b for b in source.store.list()}
            publics = {
                ts: source.store.get_history("client1_storage.pub", ts)
                for ts in listing["client1_storage.pub"].history
            }
        assert (report.entries, report.history, report.public) == (4, 2, 2)
        target = KeyManager(
            FilesystemKeyStore({"keys_dir": tmp_path / "c"}),
            MasterKey(SecretBytes(target_key.encryption.buffer)),
        )
        with target:
            import_keys(target, tmp_path / "b.bundle", tmp_path / "b.secret")
            copied = {b.name: b for b in target.store.list()}
            assert copied["client1_storage.pub"].history == listing["client1_storage.pub"].history
            for ts, public in publics.items():
                assert target.store.get_history("client1_storage.pub", ts) == public
            assert all(r.ok for r in target.verify())
