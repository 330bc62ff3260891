"""An Acra keystore v2 directory on the filesystem, kept the way Acra's own code keeps it.

Acra 0.96 (``keystore/v2/keystore/filesystem/backend/filesystem.go``, ``file_lock.go``):

- the root is a directory of mode 0700 exactly; ``version`` holds the 16 bytes
  ``Acra Keystore v2`` (mode 0644); ``.lock`` is an empty file;
- a ring ``<path>`` is the file ``<path>.keyring`` (mode 0600, directories 0700), one DER
  signed container (:mod:`keyloader.keyrings.format`);
- readers hold ``flock(LOCK_SH)`` on ``.lock``, writers ``flock(LOCK_EX)``: keyloader and
  Acra running side by side exclude each other;
- a writer writes ``<path>.keyring.new`` (created exclusively, 0600), fsyncs it and renames
  it over the ring. Acra leaves a ``.new`` behind when it dies mid-write, and then refuses
  every later write of that ring; keyloader, holding the exclusive lock, removes it first
  (no live writer can own it) and also fsyncs the directory after the rename.

Every failure is a :class:`~keyloader.errors.KeyStoreError` (or
:class:`~keyloader.errors.InsecurePermissionsError` with the ``chmod`` that fixes it).
"""

from __future__ import annotations

import fcntl
import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import InsecurePermissionsError, KeyStoreError
from ..stores.fs_stat import RevisionStat
from .backend import VERSION_TEXT

__all__ = [
    "LOCK_FILE",
    "RING_SUFFIX",
    "VERSION_FILE",
    "VERSION_TEXT",
    "RingDirectory",
    "is_v2",
    "sync",
]

VERSION_FILE = "version"
LOCK_FILE = ".lock"
RING_SUFFIX = ".keyring"
_NEW_SUFFIX = ".new"


def is_v2(root: Path) -> bool:
    """Whether ``root`` is a keystore v2 directory, decided as Acra decides it: its
    ``version`` file reads exactly ``Acra Keystore v2``."""
    try:
        return (root / VERSION_FILE).read_bytes() == VERSION_TEXT
    except OSError:
        return False


class RingDirectory:
    """The rings of the v2 directory ``root`` (a :class:`~keyloader.keyrings.backend.RingBackend`);
    :meth:`create` makes one, the constructor opens an existing one (root mode and
    version checked)."""

    name = "filesystem"
    """The store's name in audit events (Acra's directory backend)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._held = threading.local()
        self._names: dict[str, str] = {}
        self._stat = RevisionStat(str(self.root))
        self._check_root()
        try:
            version = (self.root / VERSION_FILE).read_bytes()
        except FileNotFoundError:
            raise KeyStoreError(
                f"{self.root} is not an Acra keystore v2 directory: it has no version file"
            ) from None
        except OSError as exc:
            raise KeyStoreError(f"cannot read {self.root / VERSION_FILE}: {exc.strerror}") from exc
        if version != VERSION_TEXT:
            raise KeyStoreError(f"{self.root / VERSION_FILE}: invalid keystore version file")

    @classmethod
    def create(cls, root: Path) -> RingDirectory:
        """A v2 directory at ``root``: made (0700, ``version``, ``.lock``) if absent."""
        root = Path(root)
        try:
            root.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise KeyStoreError(f"cannot create {root}: {exc.strerror}") from exc
        version = root / VERSION_FILE
        if not version.exists():
            try:
                fd = os.open(version, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            except FileExistsError:
                pass
            except OSError as exc:
                raise KeyStoreError(f"cannot create {version}: {exc.strerror}") from exc
            else:
                try:
                    os.write(fd, VERSION_TEXT)
                    os.fsync(fd)
                finally:
                    os.close(fd)
        return cls(root)

    def _check_root(self) -> None:
        try:
            st = os.stat(self.root)
        except FileNotFoundError:
            raise KeyStoreError(f"{self.root} does not exist") from None
        except OSError as exc:
            raise KeyStoreError(f"cannot stat {self.root}: {exc.strerror}") from exc
        if not stat.S_ISDIR(st.st_mode):
            raise KeyStoreError(f"{self.root} is not a directory")
        if stat.S_IMODE(st.st_mode) != 0o700:  # Acra wants 0700 exactly
            raise InsecurePermissionsError(
                f"{self.root} has mode {stat.S_IMODE(st.st_mode):04o}; an Acra keystore v2 "
                f"root must be 0700: chmod 700 '{self.root}'"
            )

    @property
    def location(self) -> str:
        return str(self.root)

    def close(self) -> None:
        """Nothing is held between calls."""

    # -- locking -------------------------------------------------------------------------

    @contextmanager
    def locked(self, *, exclusive: bool) -> Iterator[None]:
        """Hold Acra's ``.lock``: shared to read, exclusive to write. Re-entrant in one
        thread (a read inside a write is covered by the write's lock; a write inside a
        read is refused); other threads and processes each take their own."""
        held = getattr(self._held, "mode", None)
        if held is not None:
            if exclusive and held != "exclusive":
                raise KeyStoreError(f"{self.root}: a write inside a read of the same store")
            yield
            return
        path = self.root / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise KeyStoreError(f"cannot open {path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            self._held.mode = "exclusive" if exclusive else "shared"
            try:
                yield
            finally:
                self._held.mode = None
        finally:
            os.close(fd)  # releases the flock

    # -- rings ---------------------------------------------------------------------------

    def ring_file(self, path: str) -> Path:
        """The file of ring ``path`` (``client/<id>/storage-sym`` -> ``...storage-sym.keyring``)."""
        return Path(self._file_name(path))

    def where(self, path: str) -> str:
        """The file of ring ``path``, as text."""
        return self._file_name(path)

    def _file_name(self, path: str) -> str:
        found = self._names.get(path)
        if found is None:
            parts = path.split("/")
            if not path or any(part in ("", ".", "..") for part in parts) or "\0" in path:
                raise KeyStoreError(f"invalid key ring path {path!r}")
            found = str(self.root.joinpath(*parts[:-1], parts[-1] + RING_SUFFIX))
            if len(self._names) < 4096:
                self._names[path] = found
        return found

    def read(self, path: str) -> bytes | None:
        """The bytes of ring ``path``, or None if it does not exist."""
        try:
            with open(self._file_name(path), "rb") as file:
                return file.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise KeyStoreError(f"cannot read key ring {path}: {exc.strerror}") from exc

    def write(self, path: str, data: bytes, *, sync_directory: bool = True) -> None:
        """Replace ring ``path`` with ``data`` atomically (call with the exclusive lock).
        Without ``sync_directory`` the caller fsyncs the ring's directory later (a
        migration, once per directory before it renames its staging directory)."""
        target = self.ring_file(path)
        directory = target.parent
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise KeyStoreError(f"cannot create {directory}: {exc.strerror}") from exc
        temp = target.with_name(target.name + _NEW_SUFFIX)
        temp.unlink(missing_ok=True)  # left by a writer that died: the lock says none lives
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(temp, target)
            if sync_directory:
                sync(directory)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise KeyStoreError(f"cannot write key ring {path}: {exc.strerror}") from exc

    def list(self) -> list[str]:
        """Every ring path, in the order of Go's ``filepath.Walk`` (each directory's names
        sorted, a subdirectory walked where its name falls), as Acra's ``ListAll``."""
        found: list[str] = []

        def walk(directory: Path, prefix: str) -> None:
            try:
                entries = sorted(os.scandir(directory), key=lambda entry: os.fsencode(entry.name))
            except OSError as exc:
                raise KeyStoreError(f"cannot list {directory}: {exc.strerror}") from exc
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    walk(Path(entry.path), f"{prefix}{entry.name}/")
                elif entry.name.endswith(RING_SUFFIX):
                    found.append(prefix + entry.name[: -len(RING_SUFFIX)])

        walk(self.root, "")
        return found

    def revision(self, path: str) -> tuple[int, int, int, int] | None:
        """``(inode, mtime_ns, ctime_ns, size)`` of ring ``path``: a new value after any
        write (a rename puts a new inode in place); None if it does not exist. One
        ``statx`` that keeps the GIL on a local filesystem, as v1's revision tokens."""
        try:
            return self._stat.token(self._file_name(path))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise KeyStoreError(f"cannot stat key ring {path}: {exc.strerror}") from exc


def sync(directory: Path) -> None:
    """fsync ``directory`` (its entries: a rename in it is durable once this returns)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
