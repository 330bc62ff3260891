"""Writing a master key to a file of its own, mode 0600, never over an existing one unless forced.

``keyloader master-key generate --output`` and the env provider's ``file`` option
use this layout: v1 keys raw, v2 pairs as their text form. The environment a
provider returns from ``store`` (aws-kms: the KMS ciphertext) is written the same
way, as an env file (``NAME=value`` lines, what systemd's ``EnvironmentFile=`` and
``docker run --env-file`` read).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError, KeyExistsError
from .secret import SecretBytes

if TYPE_CHECKING:
    from .masterkey import MasterKey

__all__ = ["check_new_file", "write_environment_file", "write_master_key_file"]

_ENV_FILE = "the environment file"


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


def check_new_file(path: str | Path, *, what: str = _ENV_FILE) -> Path:
    """Refuse a path that exists or whose directory does not, before work that writes it."""
    target = Path(path)
    if os.path.lexists(target):
        raise KeyExistsError(f"file {target} already exists: choose another path for {what}")
    if not target.parent.is_dir():
        raise ConfigError(
            f"cannot write {what} to {target}: directory {target.parent} does not exist; "
            f"create it first"
        )
    return target


def write_environment_file(path: str | Path, environment: Mapping[str, str]) -> Path:
    """Write ``NAME=value`` lines to a new file of mode 0600 (never over an existing one)."""
    target = Path(path)
    lines = []
    for name, value in environment.items():
        if not name or "=" in name or any(char in name + value for char in "\0\n\r"):
            raise ConfigError(f"cannot write variable {name!r} to an environment file")
        lines.append(f"{name}={value}\n")
    with SecretBytes("".join(lines).encode()) as content:
        _write_new(target, target, content.view, what=_ENV_FILE, forcible=False)
    _fsync_directory(target.parent)
    return target


def _write_new(
    path: Path,
    target: Path,
    data: memoryview,
    *,
    what: str = "the master key",
    forcible: bool = True,
) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        hint = ", or force to replace it" if forcible else ""
        raise KeyExistsError(f"file {target} already exists: choose another path{hint}") from None
    except FileNotFoundError:
        raise ConfigError(
            f"cannot write {what} to {target}: directory {target.parent} does not "
            f"exist; create it first"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot write {what} to {target}: {exc.strerror or exc}") from None
    try:
        os.fchmod(fd, 0o600)
        written = 0
        while written < len(data):
            written += os.write(fd, data[written:])
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {what} to {target}: {exc.strerror or exc}") from None
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
