"""The ``filesystem`` key store: the conformance suite plus docs/format.md's rules."""

from __future__ import annotations

import errno
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from keyloader.errors import (
    ConfigError,
    InsecurePermissionsError,
    KeyExistsError,
    KeyNotFoundError,
    KeyStoreError,
)
from keyloader.providers import Option
from keyloader.stores import FilesystemKeyStore, StoredBlob
from keyloader.stores.timestamps import parse_history_timestamp
from keyloader.testing import KeyStoreContract

TEMP_NAME = re.compile(r"\.keyloader-tmp-[0-9a-f]+")


def make_store(keys: Path | str, timeout: float = 5.0) -> FilesystemKeyStore:
    return FilesystemKeyStore({"keys_dir": keys, "lock_timeout": timeout})


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def temp_files(root: Path) -> list[str]:
    return [
        os.path.join(top, name)
        for top, dirs, files in os.walk(root)
        for name in files + dirs
        if name.startswith(".keyloader-tmp-")
    ]


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    return tmp_path / "keys"


@pytest.fixture
def store(keys: Path) -> Iterator[FilesystemKeyStore]:
    fs = make_store(keys)
    yield fs
    fs.close()


@pytest.fixture
def umask() -> Iterator[Callable[[int], int]]:
    saved = os.umask(0o022)
    os.umask(saved)
    yield os.umask
    os.umask(saved)


class TestFilesystemKeyStore(KeyStoreContract):
    """The conformance suite, on a fresh directory that does not exist yet."""

    @pytest.fixture
    def reopen_store(self, keys: Path) -> Callable[..., FilesystemKeyStore]:
        return lambda **options: FilesystemKeyStore({"keys_dir": keys, **options})


# -- construction and options --------------------------------------------------------------


def test_options_schema() -> None:
    options = {o.name: o for o in FilesystemKeyStore.options}
    assert set(options) == {"keys_dir", "lock_timeout", "keystore_version"}
    assert options["keystore_version"].choices == ("v1", "v2")
    with pytest.raises(ConfigError, match="not one of"):
        options["keystore_version"].convert("v3", origin="option 'keystore_version'")
    assert (options["keys_dir"].type, options["keys_dir"].default) == ("path", ".acrakeys")
    assert (options["lock_timeout"].type, options["lock_timeout"].default) == ("float", 30.0)
    assert FilesystemKeyStore.name == "filesystem"
    lock_timeout: Option = options["lock_timeout"]
    with pytest.raises(ConfigError, match="lock_timeout"):
        lock_timeout.convert("-1", origin="option 'lock_timeout' of key store 'filesystem'")


@pytest.mark.parametrize("timeout", [-0.5, "soon", float("nan"), True])
def test_bad_lock_timeout_is_refused(keys: Path, timeout: Any) -> None:
    with pytest.raises(ConfigError, match="lock_timeout"):
        make_store(keys, timeout=timeout)


def test_bad_keys_dir_is_refused() -> None:
    with pytest.raises(ConfigError, match="keys_dir"):
        FilesystemKeyStore({"keys_dir": 42, "lock_timeout": 1.0})


def test_relative_keys_dir_is_resolved_once(clean_environment: Path) -> None:
    store = FilesystemKeyStore({"keys_dir": ".acrakeys", "lock_timeout": 1.0})
    assert store.location == str(clean_environment / ".acrakeys")
    assert store.location in repr(store)
    with store.lock():
        store.create("client1_hmac", b"x")
    assert (clean_environment / ".acrakeys" / "client1_hmac").read_bytes() == b"x"


def test_nothing_is_created_until_the_first_write(tmp_path: Path) -> None:
    keys = tmp_path / "a" / "b" / "keys"
    store = make_store(keys)
    assert store.list() == []
    assert store.version() is None
    assert store.revision("client1_hmac") is None
    with pytest.raises(KeyNotFoundError):
        store.get("client1_hmac")
    with pytest.raises(KeyNotFoundError):
        store.get(".poison_key/poison_key_sym")
    with pytest.raises(KeyNotFoundError):
        store.get_history("client1_hmac", "2024-01-02T03:04:05")
    assert not (tmp_path / "a").exists()
    with store.lock():
        store.put("client1_hmac", b"first write")
    assert mode_of(keys) == 0o700
    assert store.get("client1_hmac") == b"first write"


# -- modes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mask", [0o000, 0o022, 0o077, 0o277])
def test_created_modes_do_not_depend_on_the_umask(
    keys: Path, store: FilesystemKeyStore, umask: Callable[[int], int], mask: int
) -> None:
    umask(mask)
    with store.lock():
        store.create("client1_storage_sym", b"private")
        store.create("client1_storage.pub", b"public", public=True)
        store.put(".poison_key/poison_key_sym", b"poison")
        store.rotate("client1_storage_sym", b"private 2")
        store.rotate("client1_storage.pub", b"public 2")
    history = keys / "client1_storage_sym.old"
    assert mode_of(keys) == 0o700
    assert mode_of(keys / ".poison_key") == 0o700
    assert mode_of(history) == 0o700
    assert mode_of(keys / "client1_storage.pub.old") == 0o700
    assert mode_of(keys / "client1_storage_sym") == 0o600
    assert mode_of(keys / ".poison_key" / "poison_key_sym") == 0o600
    assert [mode_of(p) for p in history.iterdir()] == [0o600]
    assert mode_of(keys / "client1_storage.pub") == 0o644
    assert [mode_of(p) for p in (keys / "client1_storage.pub.old").iterdir()] == [0o644]
    assert not (keys / ".keyloader.lock").exists()  # the lock is the directory's own flock


def test_public_flag_needs_a_pub_name(store: FilesystemKeyStore) -> None:
    with store.lock(), pytest.raises(ConfigError, match=r"\.pub"):
        store.create("client1_storage", b"x", public=True)
    assert store.list() == []


def _insecure(store: FilesystemKeyStore, keys: Path) -> None:
    with store.lock():
        store.create("client1_storage_sym", b"v1")
        store.rotate("client1_storage_sym", b"v2")
        store.create(".poison_key/poison_key_sym", b"p")
        store.create("client1_storage.pub", b"pub", public=True)


@pytest.mark.parametrize("mode", [0o755, 0o750, 0o701, 0o710])
def test_key_directory_open_to_others_is_refused(
    keys: Path, store: FilesystemKeyStore, mode: int
) -> None:
    _insecure(store, keys)
    keys.chmod(mode)
    fix = f"chmod 700 {keys}"
    calls: list[Callable[[], object]] = [
        store.list,
        lambda: store.get("client1_storage_sym"),
        lambda: store.get("client1_storage.pub"),
        lambda: store.put("client2_hmac", b"x"),
        lambda: store.rotate("client1_storage_sym", b"x"),
        lambda: store.delete("client1_storage_sym"),
    ]
    for call in calls:
        with pytest.raises(InsecurePermissionsError) as info:
            call()
        assert fix in str(info.value)
        assert f"{mode:04o}" in str(info.value)
    keys.chmod(0o700)
    assert store.get("client1_storage_sym") == b"v2"
    assert not (keys / "client2_hmac").exists()


@pytest.mark.parametrize("subdir", [".poison_key", "client1_storage_sym.old"])
def test_sub_directory_open_to_others_is_refused(
    keys: Path, store: FilesystemKeyStore, subdir: str
) -> None:
    _insecure(store, keys)
    path = keys / subdir
    path.chmod(0o750)
    with pytest.raises(InsecurePermissionsError, match=re.escape(f"chmod 700 {path}")):
        store.list()
    [history] = os.listdir(keys / "client1_storage_sym.old")
    if subdir == ".poison_key":
        calls: list[Callable[[], object]] = [
            lambda: store.get(".poison_key/poison_key_sym"),
            lambda: store.put(".poison_key/poison_key", b"x"),
        ]
    else:
        calls = [
            lambda: store.get_history("client1_storage_sym", history),
            lambda: store.rotate("client1_storage_sym", b"x"),
            lambda: store.put_history("client1_storage_sym", history, b"x"),
            lambda: store.delete_history("client1_storage_sym", history),
        ]
    for call in calls:
        with pytest.raises(InsecurePermissionsError, match=re.escape(f"chmod 700 {path}")):
            call()
    path.chmod(0o700)
    assert len(store.list()) == 3


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o700])
def test_private_file_open_to_others_is_refused(
    keys: Path, store: FilesystemKeyStore, mode: int
) -> None:
    _insecure(store, keys)
    path = keys / "client1_storage_sym"
    path.chmod(mode)
    if mode & 0o077:
        for call in (
            lambda: store.get("client1_storage_sym"),
            lambda: store.put("client1_storage_sym", b"x"),
            lambda: store.rotate("client1_storage_sym", b"x"),
        ):
            with pytest.raises(InsecurePermissionsError) as info:
                call()
            assert f"chmod 600 {path}" in str(info.value)
            assert "v2" not in str(info.value)
        path.chmod(0o600)
    assert store.get("client1_storage_sym") == b"v2"


def test_history_file_open_to_others_is_refused(keys: Path, store: FilesystemKeyStore) -> None:
    _insecure(store, keys)
    [timestamp] = os.listdir(keys / "client1_storage_sym.old")
    path = keys / "client1_storage_sym.old" / timestamp
    path.chmod(0o644)
    with pytest.raises(InsecurePermissionsError, match=re.escape(f"chmod 600 {path}")):
        store.get_history("client1_storage_sym", timestamp)
    with pytest.raises(InsecurePermissionsError):
        store.put_history("client1_storage_sym", timestamp, b"x")
    path.chmod(0o600)
    assert store.get_history("client1_storage_sym", timestamp) == b"v1"


@pytest.mark.parametrize(
    ("mode", "refused"),
    [(0o664, True), (0o646, True), (0o644, False), (0o600, False), (0o444, False)],
)
def test_public_file_is_refused_only_when_others_can_write(
    keys: Path, store: FilesystemKeyStore, mode: int, refused: bool
) -> None:
    _insecure(store, keys)
    path = keys / "client1_storage.pub"
    path.chmod(mode)
    if refused:
        with pytest.raises(InsecurePermissionsError, match=re.escape(f"chmod 644 {path}")):
            store.get("client1_storage.pub")
        with pytest.raises(InsecurePermissionsError):
            store.put("client1_storage.pub", b"x", public=True)
    else:
        assert store.get("client1_storage.pub") == b"pub"


def test_fix_command_is_quoted_for_the_shell(tmp_path: Path) -> None:
    keys = tmp_path / "my keys"
    store = make_store(keys)
    with store.lock():
        store.create("client1_hmac", b"x")
    keys.chmod(0o755)
    with pytest.raises(InsecurePermissionsError, match=re.escape(f"chmod 700 '{keys}'")):
        store.get("client1_hmac")


# -- symlinks, odd files, names ------------------------------------------------------------


def test_symlinked_key_file_is_refused(
    tmp_path: Path, keys: Path, store: FilesystemKeyStore
) -> None:
    _insecure(store, keys)
    outside = tmp_path / "outside"
    outside.write_bytes(b"attacker controlled")
    outside.chmod(0o600)
    (keys / "client2_hmac").symlink_to(outside)
    with pytest.raises(KeyStoreError, match="symbolic link") as info:
        store.get("client2_hmac")
    assert not isinstance(info.value, InsecurePermissionsError)
    with pytest.raises(KeyStoreError, match="symbolic link"):
        store.put("client2_hmac", b"overwrite through the link")
    with pytest.raises(KeyStoreError, match="symbolic link"):
        store.rotate("client2_hmac", b"x")
    assert outside.read_bytes() == b"attacker controlled"
    # listed, so that verify reports it (reading it says why it is no key), never followed
    assert "client2_hmac" in [b.name for b in store.list()]


def test_symlinked_history_and_poison_dir_are_refused(
    tmp_path: Path, keys: Path, store: FilesystemKeyStore
) -> None:
    _insecure(store, keys)
    history = keys / "client1_storage_sym.old"
    [timestamp] = os.listdir(history)
    os.rename(history / timestamp, tmp_path / "moved")
    (history / timestamp).symlink_to(tmp_path / "moved")
    with pytest.raises(KeyStoreError, match="symbolic link"):
        store.get_history("client1_storage_sym", timestamp)
    os.rename(keys / ".poison_key", tmp_path / "poison")
    (keys / ".poison_key").symlink_to(tmp_path / "poison")
    with pytest.raises(KeyStoreError, match="symbolic link"):
        store.get(".poison_key/poison_key_sym")


def test_symlinked_keys_dir_is_followed(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    store = make_store(tmp_path / "link")
    with store.lock():
        store.create("client1_hmac", b"through the link")
    assert (real / "client1_hmac").read_bytes() == b"through the link"


def test_keys_dir_that_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"")
    store = make_store(path)
    with pytest.raises(KeyStoreError, match="not a directory"):
        store.list()
    with pytest.raises(KeyStoreError, match="not a directory"):
        store.get("client1_hmac")


def test_fifo_is_not_read(keys: Path, store: FilesystemKeyStore) -> None:
    _insecure(store, keys)
    os.mkfifo(keys / "client2_hmac", 0o600)
    with pytest.raises(KeyStoreError, match="not a regular file"):
        store.get("client2_hmac")
    assert "client2_hmac" in [b.name for b in store.list()]  # reported, never read


BAD_NAMES = [
    "",
    "/etc/passwd",
    "../escape",
    "a/../b",
    "a//b",
    "./client1_hmac",
    ".poison_key/",
    ".poison_key/../x",
    "client\0hmac",
    "sub/client1_hmac",
    ".poison_key/a/b",
    ".keyloader.lock",
    ".keyloader-tmp-0a1b",
    ".poison_key/.keyloader-tmp-0a1b",
    "version",
    ".poison_key",
    "client1_hmac.old",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_unsafe_names_are_refused(keys: Path, store: FilesystemKeyStore, name: str) -> None:
    calls: list[Callable[[], object]] = [
        lambda: store.get(name),
        lambda: store.create(name, b"x"),
        lambda: store.put(name, b"x"),
        lambda: store.rotate(name, b"x"),
        lambda: store.delete(name),
        lambda: store.revision(name),
        lambda: store.get_history(name, "2024-01-02T03:04:05"),
    ]
    for call in calls:
        with pytest.raises(ConfigError, match="invalid key store name"):
            call()
    assert not (keys.parent / "escape").exists()
    assert not keys.exists() or store.list() == []


@pytest.mark.parametrize("timestamp", ["../client1_hmac", "", "2024-01-02T03:04:05Z", "x/y"])
def test_malformed_history_timestamps_are_refused(
    store: FilesystemKeyStore, timestamp: str
) -> None:
    with store.lock():
        store.create("client1_hmac", b"x")
    calls: list[Callable[[], object]] = [
        lambda: store.get_history("client1_hmac", timestamp),
        lambda: store.put_history("client1_hmac", timestamp, b"x"),
        lambda: store.delete_history("client1_hmac", timestamp),
        lambda: store.revision("client1_hmac", timestamp),
    ]
    for call in calls:
        with pytest.raises(ConfigError, match="history timestamp"):
            call()
    assert store.get("client1_hmac") == b"x"


# -- temp files ----------------------------------------------------------------------------


class OsSpy:
    """Records the os calls the store makes under ``root``; the real functions still run."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
        self.root = str(root)
        self.events: list[tuple[Any, ...]] = []
        self.fds: dict[int, str] = {}
        real_open, real_fsync = os.open, os.fsync
        real_link, real_replace = os.link, os.replace

        def spy_open(path: Any, flags: int, mode: int = 0o777, **kw: Any) -> int:
            fd = real_open(path, flags, mode, **kw)
            if str(path).startswith(self.root):
                self.fds[fd] = str(path)
                self.events.append(("open", str(path), flags, mode))
            return fd

        def spy_fsync(fd: int) -> None:
            real_fsync(fd)
            if fd in self.fds:
                self.events.append(("fsync", self.fds[fd]))

        def spy_link(src: Any, dst: Any, **kw: Any) -> None:
            self.events.append(("link", str(src), str(dst)))
            real_link(src, dst, **kw)

        def spy_replace(src: Any, dst: Any, **kw: Any) -> None:
            self.events.append(("replace", str(src), str(dst)))
            real_replace(src, dst, **kw)

        monkeypatch.setattr(os, "open", spy_open)
        monkeypatch.setattr(os, "fsync", spy_fsync)
        monkeypatch.setattr(os, "link", spy_link)
        monkeypatch.setattr(os, "replace", spy_replace)

    def temp_opens(self) -> list[tuple[Any, ...]]:
        return [e for e in self.events if e[0] == "open" and TEMP_NAME.search(e[1])]


def test_temp_files_are_named_and_opened_safely(
    keys: Path, store: FilesystemKeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    with store.lock():
        store.create("client1_hmac", b"x")
    spy = OsSpy(monkeypatch, keys)
    with store.lock():
        store.put("client1_hmac", b"y")
        store.create(".poison_key/poison_key_sym", b"z")
    opens = spy.temp_opens()
    assert [Path(e[1]).parent for e in opens] == [keys, keys / ".poison_key"]
    for _, path, flags, mode in opens:
        name = Path(path).name
        assert TEMP_NAME.fullmatch(name)
        assert "_" not in name
        assert not name.endswith("old")
        wanted = os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_WRONLY
        assert flags & wanted == wanted
        assert mode == 0o600
        assert ("fsync", path) in spy.events
    assert temp_files(keys) == []


def test_stale_temp_files_are_removed_under_the_lock(keys: Path, store: FilesystemKeyStore) -> None:
    _insecure(store, keys)
    stale = [
        keys / ".keyloader-tmp-dead01",
        keys / ".poison_key" / ".keyloader-tmp-dead02",
        keys / "client1_storage_sym.old" / ".keyloader-tmp-dead03",
    ]
    other = keys / ".keyloader-import-0a1b"  # an import that died before its commit marker
    legacy = keys / ".keyloader.lock"  # the lock file of keyloader < 0.2
    unknown = keys / ".keyloader-notes"
    unknown.write_bytes(b"not ours to delete")
    unknown.chmod(0o600)
    with store.lock():  # while a writer holds the lock (its own files), a read sweeps nothing
        for path in stale:
            path.write_bytes(b"half a blob")
        other.mkdir(mode=0o700)
        legacy.write_bytes(b"")
        names = [b.name for b in make_store(keys).list()]
        assert all(p.exists() for p in [*stale, other, legacy])
    assert ".keyloader-tmp-dead01" not in names  # and lists none of them
    # once no writer runs, the next command of any kind, a read included, sweeps them
    names = [b.name for b in make_store(keys).list()]
    assert names == [
        ".keyloader-notes",  # not a file keyloader leaves: reported as unknown, kept
        ".poison_key/poison_key_sym",
        "client1_storage.pub",
        "client1_storage_sym",
    ]
    assert not any(p.exists() for p in [*stale, other, legacy])
    assert unknown.read_bytes() == b"not ours to delete"
    legacy.write_bytes(b"something")  # a non-empty file by that name is not an old lock
    legacy.chmod(0o600)
    assert ".keyloader.lock" in [b.name for b in make_store(keys).list()]
    with store.lock():
        pass
    assert legacy.read_bytes() == b"something"
    blob = next(b for b in store.list() if b.name == "client1_storage_sym")
    assert len(blob.history) == 1


def test_failed_replace_leaves_no_temp_and_the_old_blob(
    keys: Path, store: FilesystemKeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _insecure(store, keys)

    def failing_replace(src: Any, dst: Any, **kw: Any) -> None:
        raise OSError(errno.EIO, "injected I/O error", str(dst))

    monkeypatch.setattr(os, "replace", failing_replace)
    with store.lock():
        with pytest.raises(KeyStoreError, match="injected I/O error"):
            store.put("client1_storage_sym", b"never")
        with pytest.raises(KeyStoreError, match="injected I/O error"):
            store.rotate("client1_storage_sym", b"never")
    monkeypatch.undo()
    assert store.get("client1_storage_sym") == b"v2"
    assert temp_files(keys) == []


# -- create, rotate and the rest of the write paths -----------------------------------------


def test_create_is_atomic_and_exclusive(
    keys: Path, store: FilesystemKeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    with store.lock():
        store.create("client1_hmac", b"first")
    spy = OsSpy(monkeypatch, keys)
    with store.lock():
        store.create("client2_hmac", b"second")
        with pytest.raises(KeyExistsError, match="client1_hmac"):
            store.create("client1_hmac", b"never")
    [(_, temp, *_)] = spy.temp_opens()
    links = [e for e in spy.events if e[0] == "link"]
    assert links == [("link", temp, str(keys / "client2_hmac"))]
    assert ("fsync", temp) in spy.events
    assert spy.events.index(("fsync", temp)) < spy.events.index(links[0])
    assert spy.events[-1] == ("fsync", str(keys))
    assert not [e for e in spy.events if e[0] == "replace"]
    assert store.get("client1_hmac") == b"first"
    assert os.lstat(keys / "client2_hmac").st_nlink == 1
    assert temp_files(keys) == []


def test_create_without_hard_links(
    keys: Path, store: FilesystemKeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(src: Any, dst: Any, **kw: Any) -> None:
        raise OSError(errno.EPERM, "hard links not permitted", str(dst))

    with store.lock():
        store.create("client1_hmac", b"first")
    monkeypatch.setattr(os, "link", no_links)
    with store.lock():
        store.create("client2_hmac", b"second")
        with pytest.raises(KeyExistsError):
            store.create("client1_hmac", b"never")
    assert store.get("client2_hmac") == b"second"
    assert store.get("client1_hmac") == b"first"
    assert temp_files(keys) == []


def test_rotation_order(
    keys: Path, store: FilesystemKeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    with store.lock():
        store.create("client1_storage_sym", b"old")
    old_inode = os.lstat(keys / "client1_storage_sym").st_ino
    spy = OsSpy(monkeypatch, keys)
    with store.lock():
        timestamp = store.rotate("client1_storage_sym", b"new")
    [(_, temp, *_)] = spy.temp_opens()
    current = str(keys / "client1_storage_sym")
    history_dir = keys / "client1_storage_sym.old"
    history = str(history_dir / timestamp)
    steps = [
        ("fsync", temp),  # 1. new blob written and synced
        ("link", current, history),  # 2. current linked into history
        ("fsync", str(history_dir)),  #    and the history directory synced
        ("replace", temp, current),  # 3. new blob renamed over the current one
        ("fsync", str(keys)),  # 4. key directory synced (also when .old was created)
    ]
    last = {step: i for i, step in enumerate(spy.events)}
    positions = [spy.events.index(step) for step in steps[:-1]] + [last[steps[-1]]]
    assert positions == sorted(positions)
    assert spy.events[-1] == ("fsync", str(keys))
    # the history entry is the old current file itself (a hard link), the current a new one
    assert os.lstat(history).st_ino == old_inode
    assert os.lstat(current).st_ino != old_inode
    assert os.lstat(history).st_nlink == 1
    assert Path(history).read_bytes() == b"old"
    assert store.get("client1_storage_sym") == b"new"
    assert temp_files(keys) == []


@pytest.mark.parametrize("code", [errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK])
def test_rotation_copies_when_links_fail(
    keys: Path, store: FilesystemKeyStore, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    with store.lock():
        store.create("client1_storage_sym", b"old")
        store.create("client1_storage.pub", b"old pub", public=True)
    old_inode = os.lstat(keys / "client1_storage_sym").st_ino

    def no_links(src: Any, dst: Any, **kw: Any) -> None:
        raise OSError(code, os.strerror(code), str(dst))

    monkeypatch.setattr(os, "link", no_links)
    with store.lock():
        timestamp = store.rotate("client1_storage_sym", b"new")
        pub_ts = store.rotate("client1_storage.pub", b"new pub")
    history = keys / "client1_storage_sym.old" / timestamp
    assert history.read_bytes() == b"old"
    assert os.lstat(history).st_ino != old_inode
    assert mode_of(history) == 0o600
    assert mode_of(keys / "client1_storage.pub.old" / pub_ts) == 0o644
    assert store.get("client1_storage_sym") == b"new"
    assert temp_files(keys) == []


def test_rotation_never_overwrites_an_existing_history_name(
    keys: Path, store: FilesystemKeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer (e.g. Acra) takes our timestamp between listing and linking."""
    with store.lock():
        store.create("client1_storage_sym", b"old")
    real_link = os.link
    squatted: list[Path] = []

    def racing_link(src: Any, dst: Any, **kw: Any) -> None:
        if not squatted:
            squatted.append(Path(dst))
            Path(dst).write_bytes(b"written by someone else")
            Path(dst).chmod(0o600)
        real_link(src, dst, **kw)

    monkeypatch.setattr(os, "link", racing_link)
    with store.lock():
        timestamp = store.rotate("client1_storage_sym", b"new")
    [taken] = squatted
    assert timestamp != taken.name
    assert parse_history_timestamp(timestamp) > parse_history_timestamp(taken.name)
    assert taken.read_bytes() == b"written by someone else"
    assert store.get_history("client1_storage_sym", timestamp) == b"old"


def test_rotation_timestamps_stay_ordered_when_the_clock_stands_still(
    store: FilesystemKeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    frozen = time.time_ns()
    monkeypatch.setattr(time, "time_ns", lambda: frozen)
    with store.lock():
        store.create("client1_hmac", b"0")
        stamps = [store.rotate("client1_hmac", str(i).encode()) for i in range(1, 4)]
    monkeypatch.undo()
    assert [parse_history_timestamp(t) - frozen for t in stamps] == [0, 1, 2]
    [blob] = store.list()
    assert blob.history == tuple(stamps)
    assert [store.get_history("client1_hmac", t) for t in stamps] == [b"0", b"1", b"2"]


def test_put_history_replaces_atomically(keys: Path, store: FilesystemKeyStore) -> None:
    with store.lock():
        store.create("client1_hmac", b"a")
        timestamp = store.rotate("client1_hmac", b"b")
    path = keys / "client1_hmac.old" / timestamp
    before = os.lstat(path).st_ino
    with store.lock():
        store.put_history("client1_hmac", timestamp, b"a rewrapped")
    assert os.lstat(path).st_ino != before
    assert mode_of(path) == 0o600
    assert path.read_bytes() == b"a rewrapped"
    assert temp_files(keys) == []


def test_delete_history_removes_the_empty_history_directory(
    keys: Path, store: FilesystemKeyStore
) -> None:
    with store.lock():
        store.create("client1_hmac", b"a")
        first = store.rotate("client1_hmac", b"b")
        second = store.rotate("client1_hmac", b"c")
        store.delete_history("client1_hmac", first)
        assert (keys / "client1_hmac.old").is_dir()
        store.delete_history("client1_hmac", second)
    assert not (keys / "client1_hmac.old").exists()
    assert store.get("client1_hmac") == b"c"


def test_delete_refuses_a_directory(keys: Path, store: FilesystemKeyStore) -> None:
    with store.lock():
        store.create("client1_hmac", b"a")
    (keys / "client2_hmac").mkdir(mode=0o700)
    with store.lock(), pytest.raises(KeyStoreError, match="directory"):
        store.delete("client2_hmac")
    assert (keys / "client2_hmac").is_dir()


def test_revision_is_inode_mtime_ctime_and_size(keys: Path, store: FilesystemKeyStore) -> None:
    with store.lock():
        store.create("client1_hmac", b"abc")
        timestamp = store.rotate("client1_hmac", b"defg")
    for path, revision in (
        (keys / "client1_hmac", store.revision("client1_hmac")),
        (keys / "client1_hmac.old" / timestamp, store.revision("client1_hmac", timestamp)),
    ):
        st = os.lstat(path)
        assert revision == (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)
    assert store.revision("client9_hmac") is None


# -- listing and layout --------------------------------------------------------------------


def test_acra_written_directory_is_listed(keys: Path) -> None:
    """A directory laid out by hand the way Acra writes it."""
    (keys / ".poison_key").mkdir(parents=True, mode=0o700)
    keys.chmod(0o700)

    def write(rel: str, data: bytes = b"blob", mode: int = 0o600) -> Path:
        path = keys / rel
        path.parent.mkdir(mode=0o700, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)
        return path

    current = write("client1_storage_sym", b"current")
    os.utime(current, ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789))
    # written out of order; a comma fraction sorts wrongly as text but right as time
    write("client1_storage_sym.old/2024-01-02T03:04:05.5", b"second")
    write("client1_storage_sym.old/2024-01-02T03:04:05,9", b"third")
    write("client1_storage_sym.old/2023-12-31T23:59:59", b"first")
    write("client1_storage_sym.old/not-a-timestamp", b"ignored")
    write("client1_storage", b"private half")
    write("client1_storage.pub", b"public half", 0o644)
    write("client1_storage.pub.old/2024-01-02T03:04:05", b"old public half", 0o644)
    write("client2_hmac.old/2024-05-06T07:08:09.000000001", b"history only")
    write(".poison_key/poison_key", b"poison private")
    write(".poison_key/poison_key.pub", b"poison public", 0o644)
    write(".poison_key/poison_key_sym.old/2024-01-02T03:04:05", b"rotated poison")
    for unknown in ("client1", "client1_server", "client1_translator", "x_zone", "auth_key"):
        write(unknown, b"older acra key")
    write("version", b"Acra Keystore v1\n", 0o644)
    write(".keyloader.lock", b"")
    (keys / "stray_dir").mkdir(mode=0o700)
    (keys / "dangling_link").symlink_to(keys / "nowhere")

    store = make_store(keys)
    listed = store.list()
    rows = {blob.name: (blob.current, blob.history) for blob in listed}
    assert [blob.name for blob in listed] == sorted(rows)
    assert rows == {
        ".poison_key/poison_key": (True, ()),
        ".poison_key/poison_key.pub": (True, ()),
        ".poison_key/poison_key_sym": (False, ("2024-01-02T03:04:05",)),
        "auth_key": (True, ()),
        "client1": (True, ()),
        "client1_server": (True, ()),
        "client1_storage": (True, ()),
        "client1_storage.pub": (True, ("2024-01-02T03:04:05",)),
        "client1_storage_sym": (
            True,
            ("2023-12-31T23:59:59", "2024-01-02T03:04:05.5", "2024-01-02T03:04:05,9"),
        ),
        "client1_translator": (True, ()),
        "client2_hmac": (False, ("2024-05-06T07:08:09.000000001",)),
        "dangling_link": (True, ()),  # listed as unknown files, never followed or removed
        "stray_dir": (True, ()),
        "x_zone": (True, ()),
    }
    by_name = {blob.name: blob for blob in listed}
    assert by_name["client1_storage_sym"].created == pytest.approx(1_700_000_000.123456789)
    assert by_name["client2_hmac"].created is None
    assert store.version() == "Acra Keystore v1"
    assert store.get("client1_storage.pub") == b"public half"
    assert store.get_history("client1_storage_sym", "2024-01-02T03:04:05,9") == b"third"
    assert store.get_history(".poison_key/poison_key_sym", "2024-01-02T03:04:05") == (
        b"rotated poison"
    )
    # writing next to Acra's files keeps its layout and numbering
    with store.lock():
        timestamp = store.rotate("client1_storage_sym", b"newest")
    history = next(b for b in store.list() if b.name == "client1_storage_sym").history
    assert history[:3] == by_name["client1_storage_sym"].history
    assert history[3] == timestamp
    assert store.get_history("client1_storage_sym", timestamp) == b"current"


def test_version_file(keys: Path, store: FilesystemKeyStore) -> None:
    with store.lock():
        store.create("client1_hmac", b"x")
    assert store.version() is None
    (keys / "version").write_text("  Acra Keystore v2\n")
    assert store.version() == "Acra Keystore v2"
    assert [b.name for b in store.list()] == ["client1_hmac"]


def test_listing_sees_files_only_once(keys: Path, store: FilesystemKeyStore) -> None:
    with store.lock():
        store.create("client1_hmac", b"x")
        store.rotate("client1_hmac", b"y")
    assert store.list() == [
        StoredBlob(
            "client1_hmac",
            True,
            tuple(os.listdir(keys / "client1_hmac.old")),
            os.lstat(keys / "client1_hmac").st_mtime,
        )
    ]


# -- the lock ------------------------------------------------------------------------------

HOLDER = """
import sys, time
from keyloader.stores import FilesystemKeyStore
store = FilesystemKeyStore({"keys_dir": sys.argv[1], "lock_timeout": 5.0})
with store.lock():
    print("locked", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def lock_holder(keys: Path) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(keys)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_lock_timeout_names_the_lock_and_its_holder(
    keys: Path, lock_holder: subprocess.Popen[str]
) -> None:
    store = make_store(keys, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(KeyStoreError, match="timed out") as info, store.lock():
        pytest.fail("the lock was acquired while another process holds it")
    waited = time.monotonic() - started
    assert 0.3 <= waited < 3
    message = str(info.value)
    assert f"lock {keys}:" in message
    assert "lock_timeout" in message
    if Path("/proc/locks").exists():
        assert f"process {lock_holder.pid}" in message
    # writes (which take the lock themselves) time out the same way and write nothing
    with pytest.raises(KeyStoreError, match="timed out"):
        store.put("client1_hmac", b"x")
    assert not (keys / "client1_hmac").exists()


def test_sigkill_of_the_holder_releases_the_lock(
    keys: Path, lock_holder: subprocess.Popen[str]
) -> None:
    (keys / ".keyloader-tmp-fromdeadwriter").write_bytes(b"half")
    store = make_store(keys, timeout=5.0)
    lock_holder.send_signal(signal.SIGKILL)
    lock_holder.wait(timeout=10)
    started = time.monotonic()
    with store.lock():
        store.create("client1_hmac", b"after the crash")
    assert time.monotonic() - started < 2
    assert temp_files(keys) == []
    assert store.get("client1_hmac") == b"after the crash"


def test_zero_timeout_tries_once(keys: Path, lock_holder: subprocess.Popen[str]) -> None:
    store = make_store(keys, timeout=0)
    with pytest.raises(KeyStoreError, match="timed out"), store.lock():
        pass


def test_threads_sharing_a_store_wait_for_each_other(keys: Path) -> None:
    store = make_store(keys, timeout=0.2)
    held = threading.Event()
    release = threading.Event()
    errors: list[BaseException] = []

    def hold() -> None:
        with store.lock():
            held.set()
            release.wait(5)

    def contend() -> None:
        try:
            with store.lock():
                pass
        except KeyStoreError as exc:
            errors.append(exc)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(5)
    contender = threading.Thread(target=contend)
    contender.start()
    contender.join(5)
    assert len(errors) == 1
    assert "thread" in str(errors[0])
    release.set()
    holder.join(5)
    contender = threading.Thread(target=contend)
    contender.start()
    contender.join(5)
    assert len(errors) == 1  # free again


def test_two_store_objects_exclude_each_other_like_processes(keys: Path) -> None:
    first, second = make_store(keys), make_store(keys, timeout=0.1)
    with first.lock(), pytest.raises(KeyStoreError, match="timed out"), second.lock():
        pass
    with second.lock():
        second.create("client1_hmac", b"x")
