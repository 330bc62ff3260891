"""The ``filesystem`` key store: an Acra keystore v1 directory (docs/format.md, Key directory)."""

from __future__ import annotations

import builtins
import errno
import fcntl
import json
import logging
import os
import secrets
import shlex
import shutil
import stat
import threading
import time
from collections.abc import Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, ClassVar

from ..errors import (
    ConfigError,
    InsecurePermissionsError,
    KeyExistsError,
    KeyloaderError,
    KeyNotFoundError,
    KeyStoreError,
)
from ..providers import Option
from .base import BlobWrite, KeyStore, StoredBlob
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
from .timestamps import next_history_timestamp, parse_history_timestamp

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
    "lock_timeout_option",
]

log = logging.getLogger("keyloader.stores.filesystem")

# Helper names contain no "_" and do not end in "old", so Acra's listing skips them.
LOCK_NAME = ".keyloader.lock"
TEMP_PREFIX = ".keyloader-tmp-"
# A staged batch of put_many(): the files, a JSON manifest, then the commit marker.
IMPORT_PREFIX = ".keyloader-import-"
STAGE_MANIFEST = "manifest"
STAGE_COMPLETE = "complete"

DIR_MODE = 0o700
PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644
# link(2) failures that mean "no hard links here": copy instead.
LINK_UNSUPPORTED = frozenset(
    {errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS}
)
_POLL_FIRST = 0.001
_POLL_MAX = 0.05


def _quoted(path: str | Path) -> str:
    return shlex.quote(str(path))


def _check_dir_stat(path: str | Path, st: os.stat_result) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise KeyStoreError(f"{path} is a symbolic link: key store directories must be real ones")
    if not stat.S_ISDIR(st.st_mode):
        raise KeyStoreError(f"{path} is not a directory: move it away so the key store can use it")
    if st.st_mode & 0o077:
        raise InsecurePermissionsError(
            f"{path} has mode {stat.S_IMODE(st.st_mode):04o}: group or others can access this "
            f"key directory; fix it with `chmod 700 {_quoted(path)}`"
        )


def _check_file_stat(path: str | Path, st: os.stat_result, public: bool) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise KeyStoreError(
            f"{path} is a symbolic link: key files must be regular files (replace the link "
            "with the file it points to)"
        )
    if not stat.S_ISREG(st.st_mode):
        raise KeyStoreError(f"{path} is not a regular file: move it out of the key directory")
    mode = stat.S_IMODE(st.st_mode)
    if public and mode & 0o022:
        raise InsecurePermissionsError(
            f"{path} has mode {mode:04o}: group or others can write this public key; fix it "
            f"with `chmod 644 {_quoted(path)}`"
        )
    if not public and mode & 0o077:
        raise InsecurePermissionsError(
            f"{path} has mode {mode:04o}: group or others can access this private key; fix it "
            f"with `chmod 600 {_quoted(path)}`"
        )


def _is_public(base: str) -> bool:
    return base.endswith(".pub")


def fsync_dir(path: Path) -> None:
    """fsync a directory, so a rename or link in it is durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def unlink_quietly(path: Path) -> None:
    """Remove ``path`` if it exists."""
    with suppress(FileNotFoundError):
        os.unlink(path)


@contextmanager
def _os_errors(action: str) -> Iterator[None]:
    """Turn unexpected ``OSError`` into ``KeyStoreError`` (paths and strerror only)."""
    try:
        yield
    except KeyloaderError:
        raise
    except OSError as exc:
        raise KeyStoreError(f"cannot {action}: {exc}") from exc


class FilesystemKeyStore(KeyStore):
    """Named blobs as files in an Acra keystore v1 directory.

    Reads never create anything; the first write (or :meth:`lock`) creates the
    directory with mode 0700. Every file, directory and mode follows docs/format.md,
    and writes are atomic renames of fsynced temp files.
    """

    name: ClassVar[str] = "filesystem"
    description: ClassVar[str] = "Acra keystore v1 directory on the local filesystem (default)."
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
        self._thread_lock = threading.RLock()
        self._lock_depth = 0
        self._lock_fd: int | None = None

    # -- where things are ----------------------------------------------------------------

    @property
    def location(self) -> str:
        return str(self.path)

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_NAME

    def _current_path(self, name: str) -> tuple[str, str | None, bool]:
        """The file of ``name``, its sub-directory (``.poison_key``) or None, and publicness."""
        hit = self._paths.get(name)
        if hit is None:
            directory, base = self._locate(name)
            subdir = str(directory) if directory != self.path else None
            hit = (os.path.join(str(directory), base), subdir, _is_public(base))
            if len(self._paths) < 65536:
                self._paths[name] = hit
        return hit

    def _locate(self, name: str) -> tuple[Path, str]:
        """The directory holding ``name`` and its file name there."""
        parts = check_name(name)
        directory = self.path if len(parts) == 1 else self.path / parts[0]
        return directory, parts[-1]

    # -- checks ----------------------------------------------------------------------------

    def _check_dirs(self, directory: Path) -> None:
        """Check the key directory (and ``.poison_key``); ``FileNotFoundError`` if missing."""
        _check_dir_stat(self.path, os.stat(self.path))
        if directory != self.path:
            _check_dir_stat(directory, os.lstat(directory))

    def _existing_file(self, path: Path, public: bool) -> os.stat_result | None:
        """The stat of an existing key file after the permission checks, or None if absent."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        _check_file_stat(path, st, public)
        return st

    def _read(self, path: str | Path, public: bool, what: str) -> bytes:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            raise KeyNotFoundError(f"{what} does not exist ({path})") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise KeyStoreError(
                    f"{path} is a symbolic link: key files must be regular files (replace the "
                    "link with the file it points to)"
                ) from None
            raise
        try:
            st = os.fstat(fd)
            _check_file_stat(path, st, public)
            data = os.read(fd, st.st_size + 1)
            if len(data) != st.st_size:  # the file changed under us: read to the end
                chunks = [data]
                while chunk := os.read(fd, 1 << 16):
                    chunks.append(chunk)
                data = b"".join(chunks)
            return data
        finally:
            os.close(fd)

    def _ensure_dir(self, path: Path) -> None:
        """Create ``path`` 0700 (fsyncing its parent), or check the existing one."""
        is_top = path == self.path
        if is_top:
            os.makedirs(path.parent, exist_ok=True)
        try:
            os.mkdir(path, DIR_MODE)
        except FileExistsError:
            _check_dir_stat(path, os.stat(path) if is_top else os.lstat(path))
            return
        os.chmod(path, DIR_MODE)  # exact mode whatever the umask
        fsync_dir(path.parent)

    def _write_temp(self, directory: Path, data: bytes, mode: int) -> Path:
        """Write ``data`` to a new fsynced ``.keyloader-tmp-<random>`` file in ``directory``."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        while True:
            path = directory / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
            try:
                fd = os.open(path, flags, PRIVATE_MODE)
            except FileExistsError:
                continue
            break
        try:
            try:
                os.fchmod(fd, mode)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            unlink_quietly(path)
            raise
        return path

    def _publish(self, temp: Path, final: Path) -> bool:
        """Move ``temp`` to ``final`` unless ``final`` exists (then False, temp kept)."""
        try:
            os.link(temp, final, follow_symlinks=False)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in LINK_UNSUPPORTED:
                raise
            # No hard links on this filesystem: we hold the lock, so check then rename.
            if os.path.lexists(final):
                return False
            os.replace(temp, final)
            return True
        os.unlink(temp)
        return True

    # -- reading ---------------------------------------------------------------------------

    def version(self) -> str | None:
        try:
            data = (self.path / VERSION_FILE).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise KeyStoreError(f"cannot read {self.path / VERSION_FILE}: {exc.strerror}") from exc
        return data.decode("utf-8", errors="replace").strip()

    def list(self) -> list[StoredBlob]:
        with _os_errors(f"list {self.path}"):
            try:
                _check_dir_stat(self.path, os.stat(self.path))
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
                    _check_dir_stat(poison, poison_stat)
                    self._scan(poison, f"{POISON_DIR}/", blobs)
        return [blobs[name] for name in sorted(blobs) if blobs[name].current or blobs[name].history]

    def _scan(self, directory: Path, prefix: str, blobs: dict[str, StoredBlob]) -> None:
        with os.scandir(directory) as entries:
            for entry in entries:
                base = entry.name
                if base.startswith(HELPER_PREFIX) or (not prefix and base == VERSION_FILE):
                    continue
                if not prefix and base == POISON_DIR:
                    continue
                st = entry.stat(follow_symlinks=False)
                if base.endswith(HISTORY_SUFFIX) and stat.S_ISDIR(st.st_mode):
                    path = Path(entry.path)
                    _check_dir_stat(path, st)
                    name = prefix + base[: -len(HISTORY_SUFFIX)]
                    found = blobs.get(name) or StoredBlob(name, current=False)
                    history = self._history(path)
                    blobs[name] = StoredBlob(name, found.current, history, found.created)
                elif stat.S_ISREG(st.st_mode):
                    name = prefix + base
                    found = blobs.get(name) or StoredBlob(name, current=False)
                    blobs[name] = StoredBlob(name, True, found.history, st.st_mtime)
                else:
                    log.debug("ignoring %s: not a regular file", entry.path)

    def _history(self, history_dir: Path) -> tuple[str, ...]:
        """The history timestamps in a ``.old`` directory, oldest first by parsed time."""
        stamps: list[tuple[int, str]] = []
        with os.scandir(history_dir) as entries:
            for entry in entries:
                if entry.name.startswith(HELPER_PREFIX):
                    continue
                if not entry.is_file(follow_symlinks=False):
                    log.warning("ignoring %s: not a regular file", entry.path)
                    continue
                try:
                    stamps.append((parse_history_timestamp(entry.name), entry.name))
                except ValueError:
                    log.warning("ignoring %s: not a history timestamp", entry.path)
        return tuple(name for _, name in sorted(stamps))

    def get(self, name: str) -> bytes:
        # The hot path of every uncached use(): plain strings, no pathlib, no context managers.
        path, subdir, public = self._current_path(name)
        try:
            try:
                _check_dir_stat(self._dir, os.stat(self._dir))
                if subdir is not None:
                    _check_dir_stat(subdir, os.lstat(subdir))
            except (FileNotFoundError, NotADirectoryError):
                raise KeyNotFoundError(f"{name} does not exist in {self.path}") from None
            return self._read(path, public, name)
        except OSError as exc:
            raise KeyStoreError(f"cannot read {path}: {exc}") from exc

    def get_history(self, name: str, timestamp: str) -> bytes:
        directory, base = self._locate(name)
        check_history_timestamp(timestamp)
        history_dir = directory / (base + HISTORY_SUFFIX)
        what = f"history entry {timestamp} of {name}"
        with _os_errors(f"read {history_dir / timestamp}"):
            try:
                self._check_dirs(directory)
                _check_dir_stat(history_dir, os.lstat(history_dir))
            except (FileNotFoundError, NotADirectoryError):
                raise KeyNotFoundError(f"{what} does not exist in {self.path}") from None
            return self._read(history_dir / timestamp, _is_public(base), what)

    def revision(self, name: str, timestamp: str | None = None) -> Hashable | None:
        path: str | Path
        if timestamp is None:
            path = self._current_path(name)[0]
        else:
            directory, base = self._locate(name)
            path = directory / (base + HISTORY_SUFFIX) / check_history_timestamp(timestamp)
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise KeyStoreError(f"cannot stat {path}: {exc.strerror}") from exc
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    # -- writing ---------------------------------------------------------------------------

    def _prepare(self, name: str) -> tuple[Path, str]:
        """Locate ``name`` and make sure its directories exist and are private."""
        directory, base = self._locate(name)
        self._ensure_dir(self.path)
        if directory != self.path:
            self._ensure_dir(directory)
        return directory, base

    def create(self, name: str, data: bytes, *, public: bool = False) -> None:
        check_public_flag(name, public)
        with self.lock(), _os_errors(f"create {name} in {self.path}"):
            directory, base = self._prepare(name)
            target = directory / base
            exists = KeyExistsError(f"{name} already exists in {self.path}")
            if os.path.lexists(target):
                raise exists
            temp = self._write_temp(directory, data, PUBLIC_MODE if public else PRIVATE_MODE)
            try:
                if not self._publish(temp, target):
                    raise exists
            finally:
                unlink_quietly(temp)
            fsync_dir(directory)

    def put(self, name: str, data: bytes, *, public: bool = False) -> None:
        check_public_flag(name, public)
        with self.lock(), _os_errors(f"write {name} in {self.path}"):
            directory, base = self._prepare(name)
            target = directory / base
            self._existing_file(target, _is_public(base))
            temp = self._write_temp(directory, data, PUBLIC_MODE if public else PRIVATE_MODE)
            try:
                os.replace(temp, target)
            except BaseException:
                unlink_quietly(temp)
                raise
            fsync_dir(directory)

    def rotate(self, name: str, data: bytes) -> str:
        with self.lock(), _os_errors(f"rotate {name} in {self.path}"):
            directory, base = self._prepare(name)
            public = _is_public(base)
            current = directory / base
            current_stat = self._existing_file(current, public)
            if current_stat is None:
                raise KeyNotFoundError(f"{name} does not exist in {self.path}: nothing to rotate")
            # 1. the new blob, written and synced
            temp = self._write_temp(directory, data, PUBLIC_MODE if public else PRIVATE_MODE)
            try:
                # 2. the current blob linked (or copied) into history, directory synced
                history_dir = directory / (base + HISTORY_SUFFIX)
                self._ensure_dir(history_dir)
                timestamp = self._link_into_history(current, current_stat, history_dir)
                fsync_dir(history_dir)
                # 3. the new blob renamed over the current one
                os.replace(temp, current)
            except BaseException:
                unlink_quietly(temp)
                raise
            # 4. the key directory synced
            fsync_dir(directory)
            return timestamp

    def _link_into_history(self, current: Path, current_stat: os.stat_result, history: Path) -> str:
        """Hard-link (or copy) ``current`` to a new ``<history>/<timestamp>``; never overwrite."""
        taken = set(os.listdir(history))
        copy: Path | None = None
        try:
            while True:
                timestamp = next_history_timestamp(taken)
                target = history / timestamp
                if copy is None:
                    try:
                        os.link(current, target, follow_symlinks=False)
                        return timestamp
                    except FileExistsError:
                        taken.add(timestamp)
                        continue
                    except OSError as exc:
                        if exc.errno not in LINK_UNSUPPORTED:
                            raise
                    blob = self._read(current, _is_public(current.name), current.name)
                    copy = self._write_temp(history, blob, stat.S_IMODE(current_stat.st_mode))
                if self._publish(copy, target):
                    return timestamp
                taken.add(timestamp)
        finally:
            if copy is not None:
                unlink_quietly(copy)

    def put_history(self, name: str, timestamp: str, data: bytes) -> None:
        directory, base = self._locate(name)
        check_history_timestamp(timestamp)
        history_dir = directory / (base + HISTORY_SUFFIX)
        target = history_dir / timestamp
        what = f"history entry {timestamp} of {name}"
        with self.lock(), _os_errors(f"write {target}"):
            try:
                self._check_dirs(directory)
                _check_dir_stat(history_dir, os.lstat(history_dir))
            except (FileNotFoundError, NotADirectoryError):
                raise KeyNotFoundError(f"{what} does not exist in {self.path}") from None
            public = _is_public(base)
            if self._existing_file(target, public) is None:
                raise KeyNotFoundError(f"{what} does not exist in {self.path}")
            temp = self._write_temp(history_dir, data, PUBLIC_MODE if public else PRIVATE_MODE)
            try:
                os.replace(temp, target)
            except BaseException:
                unlink_quietly(temp)
                raise
            fsync_dir(history_dir)

    def create_history(self, name: str, timestamp: str, data: bytes) -> None:
        check_history_timestamp(timestamp)
        what = f"history entry {timestamp} of {name}"
        with self.lock(), _os_errors(f"create {what} in {self.path}"):
            directory, base = self._prepare(name)
            history_dir = directory / (base + HISTORY_SUFFIX)
            self._ensure_dir(history_dir)
            target = history_dir / timestamp
            exists = KeyExistsError(f"{what} already exists in {self.path}")
            if os.path.lexists(target):
                raise exists
            mode = PUBLIC_MODE if _is_public(base) else PRIVATE_MODE
            temp = self._write_temp(history_dir, data, mode)
            try:
                if not self._publish(temp, target):
                    raise exists
            finally:
                unlink_quietly(temp)
            fsync_dir(history_dir)

    def put_many(self, writes: Sequence[BlobWrite]) -> None:
        """All or nothing: stage the files in ``.keyloader-import-<random>/``, then rename them in.

        Every target is checked first; the blobs are written and fsynced in a
        private staging directory with a manifest; a ``complete`` marker commits
        the batch; then each file is renamed over its target. A crash before the
        marker leaves nothing behind (the next ``put_many`` removes the
        directory); after it, the next writer (any :meth:`lock`) finishes the renames.
        """
        targets = self._batch_targets(writes)
        with self.lock(), _os_errors(f"write {len(writes)} blobs in {self.path}"):
            self._ensure_dir(self.path)
            self._recover_stages(self._stages(), incomplete=True)
            if not targets:
                return
            for write, _ in targets:
                self._check_batch_target(write)
            stage = self.path / f"{IMPORT_PREFIX}{secrets.token_hex(8)}"
            os.mkdir(stage, DIR_MODE)
            try:
                os.chmod(stage, DIR_MODE)
                fsync_dir(self.path)
                manifest = [
                    [self._write_temp(stage, write.data, mode).name, write.name, write.timestamp]
                    for write, mode in targets
                ]
                self._write_temp(stage, json.dumps(manifest).encode(), PRIVATE_MODE).rename(
                    stage / STAGE_MANIFEST
                )
                fsync_dir(stage)
                self._write_temp(stage, b"%d\n" % len(manifest), PRIVATE_MODE).rename(
                    stage / STAGE_COMPLETE
                )
                fsync_dir(stage)
            except BaseException:
                shutil.rmtree(stage, ignore_errors=True)
                raise
            self._finish_stage(stage)

    def _batch_targets(self, writes: Sequence[BlobWrite]) -> builtins.list[tuple[BlobWrite, int]]:
        """Each write with the mode of its file; ``ConfigError`` for bad or repeated names."""
        seen: set[tuple[str, str | None]] = set()
        targets: builtins.list[tuple[BlobWrite, int]] = []
        for write in writes:
            base = check_name(write.name)[-1]
            check_public_flag(write.name, write.public)
            if write.timestamp is not None:
                check_history_timestamp(write.timestamp)
            slot = (write.name, write.timestamp)
            if slot in seen:
                what = write.name if write.timestamp is None else f"{write.name} {write.timestamp}"
                raise ConfigError(f"{what} is written twice in one batch: give each blob once")
            seen.add(slot)
            public = write.public if write.timestamp is None else _is_public(base)
            targets.append((write, PUBLIC_MODE if public else PRIVATE_MODE))
        return targets

    def _check_batch_target(self, write: BlobWrite) -> None:
        """Refuse a target that cannot be replaced: not a regular file, loose modes, bad dirs."""
        directory, base = self._locate(write.name)
        for path in self._target_dirs(directory, base, write.timestamp):
            with suppress(FileNotFoundError):
                _check_dir_stat(path, os.lstat(path))
        target = self._batch_target_path(directory, base, write.timestamp)
        self._existing_file(target, _is_public(base))

    def _target_dirs(
        self, directory: Path, base: str, timestamp: str | None
    ) -> builtins.list[Path]:
        """The directories a write needs besides the keys dir (``.poison_key``, ``*.old``)."""
        dirs = [directory] if directory != self.path else []
        if timestamp is not None:
            dirs.append(directory / (base + HISTORY_SUFFIX))
        return dirs

    @staticmethod
    def _batch_target_path(directory: Path, base: str, timestamp: str | None) -> Path:
        if timestamp is None:
            return directory / base
        return directory / (base + HISTORY_SUFFIX) / timestamp

    def _finish_stage(self, stage: Path) -> None:
        """Rename the files of a committed stage in (idempotent), then remove the stage."""
        try:
            manifest = json.loads((stage / STAGE_MANIFEST).read_bytes())
            if not isinstance(manifest, builtins.list):
                raise ValueError("the manifest is not a JSON array")
            entries = [(str(f), str(n), None if t is None else str(t)) for f, n, t in manifest]
            if any(not f.startswith(TEMP_PREFIX) or "/" in f for f, _, _ in entries):
                raise ValueError("a staged file outside the stage")
        except (OSError, ValueError, TypeError) as exc:
            raise KeyStoreError(
                f"cannot finish the interrupted import staged in {stage}: its manifest is "
                f"unreadable ({exc.__class__.__name__}); remove that directory to abandon it"
            ) from None
        touched: dict[Path, None] = {}
        for file, name, timestamp in entries:
            source = stage / file
            if not os.path.lexists(source):
                continue  # renamed in before a crash
            directory, base = self._locate(name)
            if timestamp is not None:
                check_history_timestamp(timestamp)
            for path in self._target_dirs(directory, base, timestamp):
                self._ensure_dir(path)
            target = self._batch_target_path(directory, base, timestamp)
            os.replace(source, target)
            touched[target.parent] = None
        for directory in touched:
            fsync_dir(directory)
        unlink_quietly(stage / STAGE_COMPLETE)
        fsync_dir(stage)
        shutil.rmtree(stage)
        fsync_dir(self.path)

    def _recover_stages(self, stages: builtins.list[Path], *, incomplete: bool = False) -> None:
        """Finish committed stages left by a writer that died (we hold the lock).

        With ``incomplete``, also remove stages without the commit marker: only
        :meth:`put_many` does, since every lock holder sees them.
        """
        for stage in stages:
            if os.path.lexists(stage / STAGE_COMPLETE):
                log.warning("finishing the interrupted import staged in %s", stage)
                self._finish_stage(stage)
            elif incomplete:
                log.info("removing the incomplete import staged in %s", stage)
                shutil.rmtree(stage)
                fsync_dir(self.path)

    def _stages(self) -> builtins.list[Path]:
        with os.scandir(self.path) as entries:
            return [
                Path(e.path)
                for e in entries
                if e.name.startswith(IMPORT_PREFIX) and e.is_dir(follow_symlinks=False)
            ]

    def delete(self, name: str) -> None:
        directory, base = self._locate(name)
        target = directory / base
        with self.lock(), _os_errors(f"delete {target}"):
            self._unlink_key_file(directory, target, f"{name} does not exist in {self.path}")
            fsync_dir(directory)

    def delete_history(self, name: str, timestamp: str) -> None:
        directory, base = self._locate(name)
        check_history_timestamp(timestamp)
        history_dir = directory / (base + HISTORY_SUFFIX)
        missing = f"history entry {timestamp} of {name} does not exist in {self.path}"
        with self.lock(), _os_errors(f"delete {history_dir / timestamp}"):
            try:
                self._check_dirs(directory)
                _check_dir_stat(history_dir, os.lstat(history_dir))
            except (FileNotFoundError, NotADirectoryError):
                raise KeyNotFoundError(missing) from None
            self._unlink_key_file(history_dir, history_dir / timestamp, missing)
            fsync_dir(history_dir)
            try:
                os.rmdir(history_dir)  # only when that was the last entry
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
            else:
                fsync_dir(directory)

    def _unlink_key_file(self, directory: Path, target: Path, missing: str) -> None:
        try:
            self._check_dirs(directory)
            st = os.lstat(target)
        except (FileNotFoundError, NotADirectoryError):
            raise KeyNotFoundError(missing) from None
        if stat.S_ISDIR(st.st_mode):
            raise KeyStoreError(f"{target} is a directory, not a key file: remove it by hand")
        os.unlink(target)

    # -- the writer lock -------------------------------------------------------------------

    @contextmanager
    def lock(self) -> Iterator[None]:
        """``flock`` on ``<keys_dir>/.keyloader.lock``; re-entrant within this object.

        Threads sharing this object wait for each other. The first (outermost)
        acquisition creates the key directory if needed and removes stale temp
        files. Waiting longer than ``lock_timeout`` raises ``KeyStoreError``.
        """
        deadline = time.monotonic() + self.lock_timeout
        if not self._thread_lock.acquire(timeout=self.lock_timeout):
            raise KeyStoreError(
                f"timed out after {self.lock_timeout:g} s waiting for the key store lock of "
                f"{self.path}: another thread of this process holds it; raise lock_timeout "
                "or let that thread finish"
            )
        try:
            if self._lock_depth == 0:
                self._acquire_file_lock(deadline)
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
                if self._lock_depth == 0:
                    self._release_file_lock()
        finally:
            self._thread_lock.release()

    def _acquire_file_lock(self, deadline: float) -> None:
        with _os_errors(f"open the lock file {self.lock_path}"):
            self._ensure_dir(self.path)
            flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(self.lock_path, flags, PRIVATE_MODE)
        try:
            delay = _POLL_FIRST
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise KeyStoreError(self._timeout_message(fd)) from None
                    time.sleep(min(delay, remaining))
                    delay = min(delay * 2, _POLL_MAX)
                except OSError as exc:
                    raise KeyStoreError(f"cannot lock {self.lock_path}: {exc.strerror}") from exc
            with _os_errors(f"remove stale temp files in {self.path}"):
                stages = self._remove_stale_temp_files()
            with _os_errors(f"recover interrupted imports in {self.path}"):
                self._recover_stages(stages)
        except BaseException:
            os.close(fd)  # closing drops the flock, if it was taken
            raise
        self._lock_fd = fd

    def _release_file_lock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)

    def _timeout_message(self, fd: int) -> str:
        holders = _lock_holders(os.fstat(fd))
        who = (
            f"process {', '.join(holders)} holds it"
            if holders
            else f"another process holds it (see `fuser {_quoted(self.lock_path)}`)"
        )
        return (
            f"timed out after {self.lock_timeout:g} s waiting for the key store lock "
            f"{self.lock_path}: {who}. Wait for that keyloader command to finish (or stop it), "
            "or raise the store option lock_timeout"
        )

    def _remove_stale_temp_files(self) -> builtins.list[Path]:
        """Delete ``.keyloader-tmp-*`` left by a writer that died (we hold the lock).

        Returns the ``.keyloader-import-*`` staging directories found on the way.
        """
        directories = [self.path]
        stages: builtins.list[Path] = []
        poison = self.path / POISON_DIR
        if poison.is_dir() and not poison.is_symlink():
            directories.append(poison)
        for directory in list(directories):
            with os.scandir(directory) as entries:
                for e in entries:
                    if e.name.endswith(HISTORY_SUFFIX):
                        found = directories
                    elif directory == self.path and e.name.startswith(IMPORT_PREFIX):
                        found = stages
                    else:
                        continue
                    if e.is_dir(follow_symlinks=False):
                        found.append(Path(e.path))
        for directory in directories:
            with os.scandir(directory) as entries:
                stale = [Path(e.path) for e in entries if e.name.startswith(TEMP_PREFIX)]
            for path in stale:
                log.info("removing stale temp file %s", path)
                unlink_quietly(path)
        return stages

    def close(self) -> None:
        if self._lock_depth == 0:
            self._release_file_lock()

    def __repr__(self) -> str:
        return f"<FilesystemKeyStore {self.path}>"


def _lock_holders(lock_stat: os.stat_result) -> list[str]:
    """PIDs holding a flock on the lock file, from ``/proc/locks`` (Linux; best effort)."""
    wanted = f"{os.major(lock_stat.st_dev):02x}:{os.minor(lock_stat.st_dev):02x}:"
    wanted += str(lock_stat.st_ino)
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            lines = locks.read().splitlines()
    except OSError:
        return []
    holders: list[str] = []
    for line in lines:
        fields = line.split()
        if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK":
            continue
        if fields[5] == wanted and fields[4] not in holders:
            holders.append(fields[4])
    return holders
