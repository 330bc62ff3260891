"""The ``env`` provider: the master key from an environment variable or a key file.

Acra-compatible: ``ACRA_MASTER_KEY`` holds the base64 text form (v1 or v2), as
Acra's ``env_master_key`` strategy reads it. A key file holds what
``keyloader master-key generate --output`` writes: raw v1 key bytes, or a v2
pair's text form; it must not be accessible by group or others.

The variable is read as the ``bytes`` Python keeps for it (``os.environb``):
no ``str`` copy is made, and the parser copies the text only into buffers it
wipes. With option ``scrub`` (``KEYLOADER_ENV_SCRUB=1``; off by default, since
a child process may rely on the variable), the value is then overwritten in
this process's memory and the variable removed (:mod:`keyloader_env.scrub`);
the key can then be loaded from the variable only once per process.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from keyloader import hookimpl
from keyloader.errors import (
    InsecurePermissionsError,
    InvalidMasterKeyError,
    MasterKeyError,
    MasterKeyNotFoundError,
)
from keyloader.providers import REWRAP_ENV_VARIABLE, MasterKeyProvider, Option

if TYPE_CHECKING:
    from keyloader.masterkey import MasterKey

__all__ = ["DEFAULT_VARIABLE", "EnvProvider", "keyloader_master_key_providers"]

DEFAULT_VARIABLE = "ACRA_MASTER_KEY"
MAX_FILE_SIZE = 64 * 1024
"""A key file larger than this is not a master key file."""

_FIX = "generate one with `keyloader master-key generate`"


def _check_variable_name(value: object) -> None:
    if not isinstance(value, str) or not value or "=" in value or "\0" in value:
        raise ValueError("must be an environment variable name (not empty, no '=')")


class EnvProvider(MasterKeyProvider):
    """Loads the master key from an environment variable (base64) or a raw key file."""

    name: ClassVar[str] = "env"
    aliases: ClassVar[tuple[str, ...]] = ("env_master_key",)
    description: ClassVar[str] = (
        "The master key from an environment variable holding its base64 text form "
        "(ACRA_MASTER_KEY, as Acra reads it), or from a key file (mode 0600)."
    )
    options: ClassVar[tuple[Option, ...]] = (
        Option(
            "variable",
            "Environment variable holding the base64 master key (v1, or a v2 pair).",
            default=DEFAULT_VARIABLE,
            validator=_check_variable_name,
        ),
        Option(
            "file",
            "Key file written by `keyloader master-key generate --output` (raw v1 bytes or "
            "a v2 text form), mode 0600; when given, it is used instead of the variable.",
            type="path",
        ),
        Option(
            "scrub",
            "Once the key is loaded from the variable, overwrite its value in this process's "
            "memory (/proc/PID/environ included) and remove it from the environment; a child "
            "started later does not get it, and the key can be loaded only once.",
            type="bool",
            default=False,
        ),
    )

    @classmethod
    def rewrap_target_defaults(cls, given: frozenset[str]) -> dict[str, object]:
        """As a rewrap target, ``DST_ACRA_MASTER_KEY`` unless ``variable`` or ``file`` is given."""
        return {} if given & {"variable", "file"} else {"variable": REWRAP_ENV_VARIABLE}

    @property
    def variable(self) -> str:
        """The environment variable read when no file is given."""
        return str(self.config.get("variable") or DEFAULT_VARIABLE)

    @property
    def file(self) -> Path | None:
        """The key file, if one is configured."""
        value = self.config.get("file")
        return None if value is None or value == "" else Path(value)

    @property
    def scrub(self) -> bool:
        """Whether the variable is scrubbed from the process once the key is loaded."""
        return bool(self.config.get("scrub"))

    def consumed_environment(self) -> tuple[str, ...]:
        """The variable the key is read from (unless a key file is given)."""
        extra = () if self.config.get("file") else (self.variable,)
        return (*super().consumed_environment(), *extra)

    def load(self) -> MasterKey:
        """Read the key file if one is given, else the variable (at call time)."""
        path = self.file
        if path is not None:
            return self._load_file(path)
        return self._load_variable(self.variable)

    def _load_variable(self, name: str) -> MasterKey:
        from keyloader.masterkey import parse_master_key

        text = _variable_text(name)
        if text is None:
            if _was_scrubbed(name):
                raise MasterKeyNotFoundError(
                    f"environment variable {name} was scrubbed from this process when the "
                    f"master key was first loaded from it (option 'scrub' of provider 'env', "
                    f"KEYLOADER_ENV_SCRUB): it cannot be read again; to load the key more than "
                    f"once, point option 'file' at a key file, or turn 'scrub' off"
                )
            raise MasterKeyNotFoundError(
                f"environment variable {name} is not set: export it with the base64 master "
                f"key ({_FIX}), or point option 'file' of provider 'env' at a key file"
            )
        source = f"environment variable {name}"
        try:
            key = parse_master_key(text, keystore_version=self.keystore_version, source=source)
        finally:
            del text  # the environment's own object: scrub_variable needs the only reference
        if self.scrub:
            from .scrub import scrub_variable  # here: ctypes only when asked for

            try:
                scrub_variable(name)
            except BaseException:
                key.close()
                raise
        return key

    def _load_file(self, path: Path) -> MasterKey:
        from keyloader.masterkey import master_key_from_file_content

        buffer = _read_key_file(path)
        try:
            return master_key_from_file_content(
                buffer, keystore_version=self.keystore_version, source=f"key file {path}"
            )
        finally:
            buffer[:] = bytes(len(buffer))

    def __repr__(self) -> str:
        where = f"file={str(self.file)!r}" if self.file else f"variable={self.variable!r}"
        return f"<{type(self).__name__} {self.name!r} {where}>"


def _was_scrubbed(name: str) -> bool:
    """True if option ``scrub`` removed ``name`` earlier in this process."""
    scrub = sys.modules.get(f"{__package__}.scrub")  # never imported: nothing was scrubbed
    return scrub is not None and bool(scrub.was_scrubbed(name))


def _variable_text(name: str) -> bytes | str | None:
    """The variable's value as Python holds it, without a copy (``None`` if unset).

    On POSIX that is the ``bytes`` object of ``os.environb`` (``os.environ``
    would decode a new ``str`` on every read, which nothing can wipe).
    """
    if os.supports_bytes_environ:
        return os.environb.get(os.fsencode(name))
    return os.environ.get(name)


def _shell_quoted(path: Path) -> str:
    """``path`` quoted for a shell command in an error message."""
    import shlex  # here: only error messages need it

    return shlex.quote(str(path))


def _read_key_file(path: Path) -> bytearray:
    """The file's bytes in a buffer the caller wipes; refuses group/other access."""
    try:
        # O_NONBLOCK: a FIFO must not block the open; regular files ignore it
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise MasterKeyNotFoundError(
            f"key file {path} (option 'file' of provider 'env') does not exist: write one "
            f"with `keyloader master-key generate --output {_shell_quoted(path)}`"
        ) from None
    except OSError as exc:
        raise MasterKeyError(
            f"cannot open key file {path} (option 'file' of provider 'env'): {exc.strerror or exc}"
        ) from None
    buffer = bytearray(MAX_FILE_SIZE + 1)
    size = 0
    try:
        _check_key_file(fd, path)
        with memoryview(buffer) as view:
            while size < len(buffer):
                count = os.readv(fd, [view[size:]])
                if not count:
                    break
                size += count
    except OSError as exc:
        buffer[:] = bytes(len(buffer))
        raise MasterKeyError(f"cannot read key file {path}: {exc.strerror or exc}") from None
    except BaseException:
        buffer[:] = bytes(len(buffer))
        raise
    finally:
        os.close(fd)
    if size > MAX_FILE_SIZE:
        buffer[:] = bytes(len(buffer))
        raise InvalidMasterKeyError(f"key file {path} is too large for a master key: {_FIX}")
    content = bytearray(size)
    with memoryview(content) as target, memoryview(buffer) as source:
        target[:] = source[:size]
    buffer[:] = bytes(len(buffer))
    return content


def _check_key_file(fd: int, path: Path) -> None:
    """Refuse what is not a regular file private to its owner, or is too large."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise MasterKeyNotFoundError(
            f"key file {path} (option 'file' of provider 'env') is not a regular file"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise InsecurePermissionsError(
            f"key file {path} is accessible by group or others (mode {mode:04o}): fix it "
            f"with `chmod 600 {_shell_quoted(path)}`"
        )
    if info.st_size > MAX_FILE_SIZE:
        raise InvalidMasterKeyError(
            f"key file {path} is {info.st_size} bytes, too large for a master key: {_FIX}"
        )


@hookimpl
def keyloader_master_key_providers() -> list[type[MasterKeyProvider]]:
    """The ``env`` provider."""
    return [EnvProvider]
