"""History of the ``filesystem`` store: ``<name>.old/<timestamp>`` files, as Acra keeps them.

Rotation, in this order: the new blob written to a temp file and fsynced; the
current file hard-linked (copied where links are unsupported) into
``<name>.old/<timestamp>`` and that directory fsynced; the temp file renamed
over the current one; the key directory fsynced. A timestamp is never reused.
Writers call these with the store's lock held.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path

from ..errors import KeyExistsError, KeyNotFoundError
from .fs_files import (
    LINK_UNSUPPORTED,
    PRIVATE_MODE,
    PUBLIC_MODE,
    check_dir_stat,
    check_dirs,
    ensure_dir,
    existing_file,
    fsync_dir,
    is_public,
    locate,
    prepare,
    publish,
    read_file,
    unlink_key_file,
    unlink_quietly,
    write_temp,
)
from .names import HELPER_PREFIX, HISTORY_SUFFIX, check_history_timestamp
from .timestamps import next_history_timestamp, parse_history_timestamp

__all__ = [
    "create_entry",
    "delete_entry",
    "entries",
    "read_entry",
    "replace_entry",
    "rotate",
]

log = logging.getLogger("keyloader.stores.filesystem")


def entries(history_dir: Path, on_helper: Callable[[], None] | None = None) -> tuple[str, ...]:
    """The history timestamps in a ``.old`` directory, oldest first by parsed time.

    Temp files a writer left there are skipped; ``on_helper`` is called if there is one.
    """
    stamps: list[tuple[int, str]] = []
    with os.scandir(history_dir) as found:
        for entry in found:
            if entry.name.startswith(HELPER_PREFIX):
                if on_helper is not None:
                    on_helper()
                continue
            try:  # a symlink or FIFO named like an entry is listed: reading it says why not
                stamps.append((parse_history_timestamp(entry.name), entry.name))
            except ValueError:
                log.warning("ignoring %s: not a history timestamp", entry.path)
    return tuple(name for _, name in sorted(stamps))


def _existing_dir(keys_dir: Path, name: str, timestamp: str) -> tuple[Path, str, Path]:
    """The directory, file name and history directory of an entry that must exist."""
    directory, base = locate(keys_dir, name)
    check_history_timestamp(timestamp)
    history_dir = directory / (base + HISTORY_SUFFIX)
    try:
        check_dirs(keys_dir, directory)
        check_dir_stat(history_dir, os.lstat(history_dir))
    except (FileNotFoundError, NotADirectoryError):
        raise KeyNotFoundError(
            f"history entry {timestamp} of {name} does not exist in {keys_dir}"
        ) from None
    return directory, base, history_dir


def read_entry(keys_dir: Path, name: str, timestamp: str) -> bytes:
    """The blob of one history entry."""
    _, base, history_dir = _existing_dir(keys_dir, name, timestamp)
    what = f"history entry {timestamp} of {name}"
    return read_file(history_dir / timestamp, is_public(base), what)


def rotate(keys_dir: Path, name: str, data: bytes) -> str:
    """Replace the current blob of ``name`` with ``data``, keeping the old one as history."""
    directory, base = prepare(keys_dir, name)
    public = is_public(base)
    current = directory / base
    current_stat = existing_file(current, public)
    if current_stat is None:
        raise KeyNotFoundError(f"{name} does not exist in {keys_dir}: nothing to rotate")
    # 1. the new blob, written and synced
    temp = write_temp(directory, data, PUBLIC_MODE if public else PRIVATE_MODE)
    try:
        # 2. the current blob linked (or copied) into history, directory synced
        history_dir = directory / (base + HISTORY_SUFFIX)
        ensure_dir(history_dir)
        timestamp = _link_into_history(current, current_stat, history_dir)
        fsync_dir(history_dir)
        # 3. the new blob renamed over the current one
        os.replace(temp, current)
    except BaseException:
        unlink_quietly(temp)
        raise
    # 4. the key directory synced
    fsync_dir(directory)
    return timestamp


def _link_into_history(current: Path, current_stat: os.stat_result, history: Path) -> str:
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
                blob = read_file(current, is_public(current.name), current.name)
                copy = write_temp(history, blob, stat.S_IMODE(current_stat.st_mode))
            if publish(copy, target):
                return timestamp
            taken.add(timestamp)
    finally:
        if copy is not None:
            unlink_quietly(copy)


def replace_entry(keys_dir: Path, name: str, timestamp: str, data: bytes) -> None:
    """Replace the blob of an existing history entry."""
    _, base, history_dir = _existing_dir(keys_dir, name, timestamp)
    target = history_dir / timestamp
    public = is_public(base)
    if existing_file(target, public) is None:
        raise KeyNotFoundError(f"history entry {timestamp} of {name} does not exist in {keys_dir}")
    temp = write_temp(history_dir, data, PUBLIC_MODE if public else PRIVATE_MODE)
    try:
        os.replace(temp, target)
    except BaseException:
        unlink_quietly(temp)
        raise
    fsync_dir(history_dir)


def create_entry(keys_dir: Path, name: str, timestamp: str, data: bytes) -> None:
    """Write a history entry that does not exist yet (``keys import``)."""
    check_history_timestamp(timestamp)
    what = f"history entry {timestamp} of {name}"
    directory, base = prepare(keys_dir, name)
    history_dir = directory / (base + HISTORY_SUFFIX)
    ensure_dir(history_dir)
    target = history_dir / timestamp
    exists = KeyExistsError(f"{what} already exists in {keys_dir}")
    if os.path.lexists(target):
        raise exists
    temp = write_temp(history_dir, data, PUBLIC_MODE if is_public(base) else PRIVATE_MODE)
    try:
        if not publish(temp, target):
            raise exists
    finally:
        unlink_quietly(temp)
    fsync_dir(history_dir)


def delete_entry(keys_dir: Path, name: str, timestamp: str) -> None:
    """Remove one history entry, and the ``.old`` directory when it was the last."""
    directory, _, history_dir = _existing_dir(keys_dir, name, timestamp)
    missing = f"history entry {timestamp} of {name} does not exist in {keys_dir}"
    unlink_key_file(keys_dir, history_dir, history_dir / timestamp, missing)
    fsync_dir(history_dir)
    try:
        os.rmdir(history_dir)  # only when that was the last entry
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
    else:
        fsync_dir(directory)
