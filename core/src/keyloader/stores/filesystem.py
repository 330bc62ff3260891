"""The ``filesystem`` key store: an Acra keystore v1 directory (docs/format.md, Key directory).

The store class maps store names to files and history directories; file
checks and atomic writes are in :mod:`.fs_files`, the writer lock in
:mod:`.fs_lock`, staged batches and the sweep after a crash in :mod:`.fs_batch`.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import os
import stat
from collections.abc import Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from ..errors import ConfigError, KeyExistsError, KeyNotFoundError, KeyStoreError
from ..keyrings.directory import RingDirectory, is_v2
from ..providers import Option
from . import fs_history
from .base import BlobWrite, KeyStore, StoredBlob
from .fs_batch import (
    IMPORT_PREFIX,
    batch_targets,
    check_target,
    finish_stage,
    is_helper,
    list_stages,
    recover_stages,
    stage_batch,
    sweep,
)
from .fs_files import (
    PRIVATE_MODE,
    PUBLIC_MODE,
    TEMP_PREFIX,
    check_dir_stat,
    ensure_dir,
    existing_file,
    fsync_dir,
    is_public,
    locate,
    os_errors,
    prepare,
    publish,
    read_file,
    unlink_key_file,
    unlink_quietly,
    write_temp,
)
from .fs_lock import DirectoryLock
from .fs_stat import RevisionStat
from .names import (
    HELPER_PREFIX,
    HISTORY_SUFFIX,
    POISON_DIR,
    VERSION_FILE,
    check_history_timestamp,
    check_name,
    check_public_flag,
    lock_timeout_option,
    non_negative_seconds,
)

__all__ = [
    "FilesystemKeyStore",
    "HISTORY_SUFFIX",
    "IMPORT_PREFIX",
    "LOCK_NAME",
    "POISON_DIR",
    "TEMP_PREFIX",
    "check_history_timestamp",
    "check_name",
    "check_public_flag",
    "fsync_dir",
    "lock_timeout_option",
    "unlink_quietly",
]

log = logging.getLogger("keyloader.stores.filesystem")

LOCK_NAME = ".keyloader.lock"
"""The lock file of keyloader before 0.2; the lock is now the directory's own ``flock``, and an
empty one left behind is removed by the sweep."""


class FilesystemKeyStore(KeyStore):
    """Named blobs as files in an Acra keystore v1 directory.

    Reads never create anything; the first write (or :meth:`lock`) creates the
    directory with mode 0700. Every file, directory and mode follows docs/format.md,
    and writes are atomic renames of fsynced temp files.
    """

    name: ClassVar[str] = "filesystem"
    description: ClassVar[str] = (
        "Acra keystore directory on the local filesystem (default): v1, or v2 key rings."
    )
    options: ClassVar[tuple[Option, ...]] = (
        Option(
            "keys_dir",
            "Directory of the key store (Acra's --keys_dir); created 0700 on the first write.",
            type="path",
            default=".acrakeys",
        ),
        Option(
            "lock_timeout",
            "Seconds to wait for the writer lock (<keys_dir>/.keyloader.lock) before giving up.",
            type="float",
            default=30.0,
            validator=non_negative_seconds,
        ),
        Option(
            "keystore_version",
            "Acra keystore version of a new keys_dir: v1 (files) or v2 (signed key rings); "
            "an existing directory keeps its own.",
            default="v1",
            choices=("v1", "v2"),
        ),
    )

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        raw_dir = self.config.get("keys_dir") or ".acrakeys"
        if not isinstance(raw_dir, str | os.PathLike):
            raise ConfigError(
                f"option 'keys_dir' of key store 'filesystem': {raw_dir!r} is not a path"
            )
        self.path = Path(os.path.abspath(Path(os.fspath(raw_dir)).expanduser()))
        self._dir = str(self.path)
        # name -> (file path, sub-directory or None, public): the read path avoids pathlib.
        self._paths: dict[str, tuple[str, str | None, bool]] = {}
        self.lock_timeout = lock_timeout_option(self.config, self.name)
        self._lock = DirectoryLock(self.path, self.lock_timeout, self._after_crash)
        self._helpers_seen = False
        self._stat = RevisionStat(self._dir)

    # -- where things are ----------------------------------------------------------------

    @property
    def location(self) -> str:
        return str(self.path)

    @property
    def lock_path(self) -> Path:
        """What the writer lock is held on: the key directory itself (``flock``)."""
        return self.path

    def _current_path(self, name: str) -> tuple[str, str | None, bool]:
        """The file of ``name``, its sub-directory (``.poison_key``) or None, and publicness."""
        hit = self._paths.get(name)
        if hit is None:
            directory, base = self._locate(name)
            subdir = str(directory) if directory != self.path else None
            hit = (os.path.join(str(directory), base), subdir, is_public(base))
            if len(self._paths) < 65536:
                self._paths[name] = hit
        return hit

    def _locate(self, name: str) -> tuple[Path, str]:
        """The directory holding ``name`` and its file name there."""
        return locate(self.path, name)

    # -- checks ----------------------------------------------------------------------------

    def _ensure_dir(self, path: Path) -> None:
        ensure_dir(path, top=path == self.path)

    # -- keystore v2 -----------------------------------------------------------------------

    def key_rings(self) -> RingDirectory | None:
        """The directory as an Acra keystore v2 one: when its ``version`` file says v2, or
        when it is new (absent or empty) and ``keystore_version`` is v2 (then made, as
        Acra makes one); None otherwise. The store is closed when a directory is returned."""
        if is_v2(self.path):  # an existing directory's own version wins
            self.close()
            return RingDirectory(self.path)
        new = not self.path.exists() or not any(self.path.iterdir())
        if new and self.config.get("keystore_version") == "v2":
            self.close()
            return RingDirectory.create(self.path)
        return None

    # -- reading ---------------------------------------------------------------------------

    def version(self) -> str | None:
        try:
            data = (self.path / VERSION_FILE).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise KeyStoreError(f"cannot read {self.path / VERSION_FILE}: {exc.strerror}") from exc
        return data.decode("utf-8", errors="replace").strip()

    def list(self) -> builtins.list[StoredBlob]:
        self._helpers_seen = False
        blobs = self._list()
        if self._helpers_seen and os.access(self.path, os.W_OK):
            # A dead writer's leftovers: swept now if no writer runs, so the directory
            # holds only Acra's files after any command (Acra's backup reads every file).
            with self._lock.hold_if_free() as held:
                if held:
                    self._after_crash()
                    blobs = self._list()
        return blobs

    def _list(self) -> builtins.list[StoredBlob]:
        with os_errors(f"list {self.path}"):
            try:
                check_dir_stat(self.path, os.stat(self.path))
            except (FileNotFoundError, NotADirectoryError):
                return []
            blobs: dict[str, StoredBlob] = {}
            self._scan(self.path, "", blobs)
            poison = self.path / POISON_DIR
            try:
                poison_stat = os.lstat(poison)
            except FileNotFoundError:
                pass
            else:
                if stat.S_ISDIR(poison_stat.st_mode):
                    check_dir_stat(poison, poison_stat)
                    self._scan(poison, f"{POISON_DIR}/", blobs)
        return [blobs[name] for name in sorted(blobs) if blobs[name].current or blobs[name].history]

    def _scan(self, directory: Path, prefix: str, blobs: dict[str, StoredBlob]) -> None:
        with os.scandir(directory) as entries:
            for entry in entries:
                base = entry.name
                if base.startswith(HELPER_PREFIX) and is_helper(base, top=not prefix):
                    legacy_lock = base == LOCK_NAME
                    if not legacy_lock or _empty_file(entry):  # else: not ours, reported
                        self._helpers_seen = True
                        continue
                if not prefix and base == VERSION_FILE:
                    continue
                if not prefix and base == POISON_DIR:
                    continue
                st = entry.stat(follow_symlinks=False)
                if base.endswith(HISTORY_SUFFIX) and stat.S_ISDIR(st.st_mode):
                    path = Path(entry.path)
                    check_dir_stat(path, st)
                    name = prefix + base[: -len(HISTORY_SUFFIX)]
                    found = blobs.get(name) or StoredBlob(name, current=False)
                    history = fs_history.entries(path, self._saw_helper)
                    blobs[name] = StoredBlob(name, found.current, history, found.created)
                else:
                    # A symlink, FIFO or directory in place of a key is listed too: reading
                    # it fails with the reason, so verify reports it instead of skipping it.
                    name = prefix + base
                    found = blobs.get(name) or StoredBlob(name, current=False)
                    created = st.st_mtime if stat.S_ISREG(st.st_mode) else None
                    blobs[name] = StoredBlob(name, True, found.history, created)

    def get(self, name: str) -> bytes:
        # The hot path of every uncached use(): plain strings, no pathlib, no context managers.
        path, subdir, public = self._current_path(name)
        try:
            try:
                check_dir_stat(self._dir, os.stat(self._dir))
                if subdir is not None:
                    check_dir_stat(subdir, os.lstat(subdir))
            except (FileNotFoundError, NotADirectoryError):
                raise KeyNotFoundError(f"{name} does not exist in {self.path}") from None
            return read_file(path, public, name)
        except OSError as exc:
            raise KeyStoreError(f"cannot read {path}: {exc}") from exc

    def get_history(self, name: str, timestamp: str) -> bytes:
        directory, base = self._locate(name)
        target = directory / (base + HISTORY_SUFFIX) / check_history_timestamp(timestamp)
        with os_errors(f"read {target}"):
            return fs_history.read_entry(self.path, name, timestamp)

    @property
    def revision_is_cheap(self) -> bool:
        """True on a local Linux filesystem (a stat that cannot wait on a server)."""
        return self._stat.holds_the_gil

    def revision(self, name: str, timestamp: str | None = None) -> Hashable | None:
        """``(inode, mtime_ns, ctime_ns, size)`` of the file (:mod:`.fs_stat`), or None."""
        path: str
        if timestamp is None:
            path = self._current_path(name)[0]
        else:
            directory, base = self._locate(name)
            path = str(directory / (base + HISTORY_SUFFIX) / check_history_timestamp(timestamp))
        try:
            return self._stat.token(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise KeyStoreError(f"cannot stat {path}: {exc.strerror}") from exc

    # -- writing ---------------------------------------------------------------------------

    def create(self, name: str, data: bytes, *, public: bool = False) -> None:
        check_public_flag(name, public)
        with self.lock(), os_errors(f"create {name} in {self.path}"):
            directory, base = prepare(self.path, name)
            target = directory / base
            exists = KeyExistsError(f"{name} already exists in {self.path}")
            if os.path.lexists(target):
                raise exists
            temp = write_temp(directory, data, PUBLIC_MODE if public else PRIVATE_MODE)
            try:
                if not publish(temp, target):
                    raise exists
            finally:
                unlink_quietly(temp)
            fsync_dir(directory)

    def put(self, name: str, data: bytes, *, public: bool = False) -> None:
        check_public_flag(name, public)
        with self.lock(), os_errors(f"write {name} in {self.path}"):
            directory, base = prepare(self.path, name)
            target = directory / base
            existing_file(target, is_public(base))
            temp = write_temp(directory, data, PUBLIC_MODE if public else PRIVATE_MODE)
            try:
                os.replace(temp, target)
            except BaseException:
                unlink_quietly(temp)
                raise
            fsync_dir(directory)

    def rotate(self, name: str, data: bytes) -> str:
        with self.lock(), os_errors(f"rotate {name} in {self.path}"):
            return fs_history.rotate(self.path, name, data)

    def put_history(self, name: str, timestamp: str, data: bytes) -> None:
        directory, base = self._locate(name)
        target = directory / (base + HISTORY_SUFFIX) / check_history_timestamp(timestamp)
        with self.lock(), os_errors(f"write {target}"):
            fs_history.replace_entry(self.path, name, timestamp, data)

    def create_history(self, name: str, timestamp: str, data: bytes) -> None:
        check_history_timestamp(timestamp)
        what = f"history entry {timestamp} of {name}"
        with self.lock(), os_errors(f"create {what} in {self.path}"):
            fs_history.create_entry(self.path, name, timestamp, data)

    def put_many(self, writes: Sequence[BlobWrite]) -> None:
        """All or nothing: stage the files in ``.keyloader-import-<random>/``, then rename them in.

        Every target is checked first; the blobs are written and fsynced in a
        private staging directory with a manifest; a ``complete`` marker commits
        the batch; then each file is renamed over its target. A crash before the
        marker leaves nothing behind (the next ``put_many`` removes the
        directory); after it, the next writer (any :meth:`lock`) finishes the renames.
        """
        targets = batch_targets(writes)
        with self.lock(), os_errors(f"write {len(writes)} blobs in {self.path}"):
            self._ensure_dir(self.path)
            recover_stages(self.path, list_stages(self.path), incomplete=True)
            if not targets:
                return
            for write, _ in targets:
                check_target(self.path, write)
            finish_stage(self.path, stage_batch(self.path, targets))

    def delete(self, name: str) -> None:
        directory, base = self._locate(name)
        target = directory / base
        with self.lock(), os_errors(f"delete {target}"):
            unlink_key_file(self.path, directory, target, f"{name} does not exist in {self.path}")
            fsync_dir(directory)

    def delete_history(self, name: str, timestamp: str) -> None:
        directory, base = self._locate(name)
        target = directory / (base + HISTORY_SUFFIX) / check_history_timestamp(timestamp)
        with self.lock(), os_errors(f"delete {target}"):
            fs_history.delete_entry(self.path, name, timestamp)

    # -- the writer lock -------------------------------------------------------------------

    @contextmanager
    def lock(self) -> Iterator[None]:
        """``flock`` on ``<keys_dir>/.keyloader.lock``; re-entrant within this object.

        Threads sharing this object wait for each other. The first (outermost)
        acquisition creates the key directory if needed, removes stale temp
        files and finishes committed imports a dead writer left. Waiting longer
        than ``lock_timeout`` raises ``KeyStoreError``.
        """
        with self._lock.hold():
            yield

    def _saw_helper(self) -> None:
        self._helpers_seen = True

    def _after_crash(self) -> None:
        """What a lock holder sweeps: stale temp files, an empty lock file of keyloader < 0.2,
        and imports a dead writer staged (finished if committed, else removed)."""
        with os_errors(f"remove stale temp files in {self.path}"):
            stages = sweep(self.path)
            legacy = self.path / LOCK_NAME
            with contextlib.suppress(FileNotFoundError):
                st = os.lstat(legacy)
                if stat.S_ISREG(st.st_mode) and st.st_size == 0:
                    os.unlink(legacy)
        with os_errors(f"recover interrupted imports in {self.path}"):
            recover_stages(self.path, stages, incomplete=True)

    def close(self) -> None:
        self._lock.release_if_idle()

    def __repr__(self) -> str:
        return f"<FilesystemKeyStore {self.path}>"


def _empty_file(entry: os.DirEntry[str]) -> bool:
    """Whether a directory entry is an empty regular file (an old lock file, nothing else)."""
    st = entry.stat(follow_symlinks=False)
    return stat.S_ISREG(st.st_mode) and st.st_size == 0
