"""Files of the ``filesystem`` store: layout, permission checks, checked reads, atomic writes.

Plain functions over paths, shared by the store, its lock and its staged
batches. Every write goes through :func:`write_temp` (a new fsynced
``.keyloader-tmp-<random>`` file, ``O_EXCL|O_NOFOLLOW``, exact mode) and then
a rename or a link (:func:`publish`); directories are fsynced after.
"""

from __future__ import annotations

import errno
import os
import secrets
import shlex
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from ..errors import InsecurePermissionsError, KeyloaderError, KeyNotFoundError, KeyStoreError
from .names import MAX_BLOB_SIZE, PUBLIC_SUFFIX, check_blob_size, check_name

__all__ = [
    "DIR_MODE",
    "LINK_UNSUPPORTED",
    "PRIVATE_MODE",
    "PUBLIC_MODE",
    "TEMP_PREFIX",
    "check_dir_stat",
    "check_dirs",
    "check_file_stat",
    "ensure_dir",
    "existing_file",
    "fsync_dir",
    "is_public",
    "locate",
    "os_errors",
    "prepare",
    "publish",
    "quoted",
    "read_file",
    "unlink_key_file",
    "unlink_quietly",
    "write_temp",
]

# Helper names contain no "_" and do not end in "old", so Acra's listing skips them.
TEMP_PREFIX = ".keyloader-tmp-"

DIR_MODE = 0o700
PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644
# link(2) failures that mean "no hard links here": copy instead.
LINK_UNSUPPORTED = frozenset(
    {errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS}
)


def quoted(path: str | Path) -> str:
    """``path`` quoted for a shell command in a message (``chmod 600 '...'``)."""
    return shlex.quote(str(path))


def locate(keys_dir: Path, name: str) -> tuple[Path, str]:
    """The directory holding store name ``name`` and its file name there (name checked)."""
    parts = check_name(name)
    directory = keys_dir if len(parts) == 1 else keys_dir / parts[0]
    return directory, parts[-1]


def is_public(base: str) -> bool:
    """Whether a file name is a public key (``*.pub``, mode 0644)."""
    return base.endswith(PUBLIC_SUFFIX)


def check_dir_stat(path: str | Path, st: os.stat_result) -> None:
    """Refuse a key directory that is a link, not a directory, or open to group or others."""
    if stat.S_ISLNK(st.st_mode):
        raise KeyStoreError(f"{path} is a symbolic link: key store directories must be real ones")
    if not stat.S_ISDIR(st.st_mode):
        raise KeyStoreError(f"{path} is not a directory: move it away so the key store can use it")
    if st.st_mode & 0o077:
        raise InsecurePermissionsError(
            f"{path} has mode {stat.S_IMODE(st.st_mode):04o}: group or others can access this "
            f"key directory; fix it with `chmod 700 {quoted(path)}`"
        )


def check_file_stat(path: str | Path, st: os.stat_result, public: bool) -> None:
    """Refuse a key file that is a link, not a regular file, or has loose modes."""
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
            f"with `chmod 644 {quoted(path)}`"
        )
    if not public and mode & 0o077:
        raise InsecurePermissionsError(
            f"{path} has mode {mode:04o}: group or others can access this private key; fix it "
            f"with `chmod 600 {quoted(path)}`"
        )


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
def os_errors(action: str) -> Iterator[None]:
    """Turn unexpected ``OSError`` into ``KeyStoreError`` (paths and strerror only)."""
    try:
        yield
    except KeyloaderError:
        raise
    except OSError as exc:
        raise KeyStoreError(f"cannot {action}: {exc}") from exc


def existing_file(path: Path, public: bool) -> os.stat_result | None:
    """The stat of an existing key file after the permission checks, or None if absent."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    check_file_stat(path, st, public)
    return st


def read_file(path: str | Path, public: bool, what: str) -> bytes:
    """A key file's bytes, after the checks on the open descriptor (no symlink followed)."""
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
        check_file_stat(path, st, public)
        if st.st_size > MAX_BLOB_SIZE:  # the hot path of every use(): no message built
            check_blob_size(st.st_size, what, os.path.dirname(path))
        data = os.read(fd, st.st_size + 1)
        if len(data) != st.st_size:  # the file changed under us: read to the end, bounded
            chunks = [data]
            while (chunk := os.read(fd, 1 << 12)) and sum(map(len, chunks)) <= MAX_BLOB_SIZE:
                chunks.append(chunk)
            data = b"".join(chunks)
            check_blob_size(len(data), what, os.path.dirname(path))
        return data
    finally:
        os.close(fd)


def ensure_dir(path: Path, *, top: bool = False) -> None:
    """Create ``path`` 0700 (fsyncing its parent), or check the existing one.

    ``top``: the keys directory itself (its parents are created; it may be
    reached through a symlinked parent, so it is checked with ``stat``).
    """
    if top:
        os.makedirs(path.parent, exist_ok=True)
    try:
        os.mkdir(path, DIR_MODE)
    except FileExistsError:
        check_dir_stat(path, os.stat(path) if top else os.lstat(path))
        return
    os.chmod(path, DIR_MODE)  # exact mode whatever the umask
    fsync_dir(path.parent)


def write_temp(directory: Path, data: bytes, mode: int) -> Path:
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


def publish(temp: Path, final: Path) -> bool:
    """Move ``temp`` to ``final`` unless ``final`` exists (then False, temp kept).

    Callers hold the store's lock, so the check-then-rename fallback (for
    filesystems without hard links) cannot race another keyloader writer.
    """
    try:
        os.link(temp, final, follow_symlinks=False)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in LINK_UNSUPPORTED:
            raise
        if os.path.lexists(final):
            return False
        os.replace(temp, final)
        return True
    os.unlink(temp)
    return True


def check_dirs(keys_dir: Path, directory: Path) -> None:
    """Check the key directory (and ``.poison_key``); ``FileNotFoundError`` if missing."""
    check_dir_stat(keys_dir, os.stat(keys_dir))
    if directory != keys_dir:
        check_dir_stat(directory, os.lstat(directory))


def prepare(keys_dir: Path, name: str) -> tuple[Path, str]:
    """Locate ``name`` and make sure its directories exist and are private."""
    directory, base = locate(keys_dir, name)
    ensure_dir(keys_dir, top=True)
    if directory != keys_dir:
        ensure_dir(directory)
    return directory, base


def unlink_key_file(keys_dir: Path, directory: Path, target: Path, missing: str) -> None:
    """Remove one key file; ``KeyNotFoundError(missing)`` if absent, never a directory."""
    try:
        check_dirs(keys_dir, directory)
        st = os.lstat(target)
    except (FileNotFoundError, NotADirectoryError):
        raise KeyNotFoundError(missing) from None
    if stat.S_ISDIR(st.st_mode):
        raise KeyStoreError(f"{target} is a directory, not a key file: remove it by hand")
    os.unlink(target)
