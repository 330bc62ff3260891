"""Writing a master key to a file of its own, mode 0600, never over an existing one unless forced.

``keyloader master-key generate --output`` and the env provider's ``file`` option
use this layout: v1 keys raw, v2 pairs as their text form.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError, KeyExistsError
from .secret import SecretBytes

if TYPE_CHECKING:
    from .masterkey import MasterKey

__all__ = ["write_master_key_file"]


def write_master_key_file(key: MasterKey, path: str | Path, *, force: bool = False) -> Path:
    """Write ``key`` to a new file of mode 0600 and return its path.

    v1 keys are written as raw bytes, v2 pairs as their text form (what
    :func:`master_key_from_file_content` reads). An existing file is
    :class:`KeyExistsError` unless ``force``, which replaces it atomically.
    """
    target = Path(path)
    content = key.to_text() if key.version == "v2" else SecretBytes(key.encryption.buffer)
    with content:
        if not force:
            _write_new(target, target, content.view)
            return target
        temp = target.with_name(f".keyloader-tmp-{os.urandom(8).hex()}")
        _write_new(temp, target, content.view)
        try:
            os.replace(temp, target)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise ConfigError(
                f"cannot write the master key to {target}: {exc.strerror or exc}"
            ) from None
        _fsync_directory(target.parent)
    return target


def _write_new(path: Path, target: Path, data: memoryview) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise KeyExistsError(
            f"file {target} already exists: choose another path, or force to replace it"
        ) from None
    except FileNotFoundError:
        raise ConfigError(
            f"cannot write the master key to {target}: directory {target.parent} does not "
            f"exist; create it first"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot write the master key to {target}: {exc.strerror or exc}"
        ) from None
    try:
        os.fchmod(fd, 0o600)
        written = 0
        while written < len(data):
            written += os.write(fd, data[written:])
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise ConfigError(
            f"cannot write the master key to {target}: {exc.strerror or exc}"
        ) from None
    os.close(fd)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:  # pragma: no cover - the file was just written there
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on directories
        pass
    finally:
        os.close(fd)
