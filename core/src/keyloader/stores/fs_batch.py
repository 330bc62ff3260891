"""Staged batches of the ``filesystem`` store (``put_many``), and what a dead writer leaves.

A batch is staged in ``<keys_dir>/.keyloader-import-<random>/``: every blob
written and fsynced there, then a JSON ``manifest`` (staged file, store name,
timestamp), then the ``complete`` marker that commits it; then each file is
renamed over its target. A crash before the marker leaves nothing that counts
(the next ``put_many`` removes the stage); after it, the next lock holder
finishes the renames. :func:`sweep` removes stale temp files under the lock.
All of this runs with the store's lock held.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

from ..errors import ConfigError, KeyStoreError
from .base import BlobWrite
from .fs_files import (
    DIR_MODE,
    PRIVATE_MODE,
    PUBLIC_MODE,
    TEMP_PREFIX,
    check_dir_stat,
    ensure_dir,
    existing_file,
    fsync_dir,
    is_public,
    locate,
    unlink_quietly,
    write_temp,
)
from .names import (
    HISTORY_SUFFIX,
    POISON_DIR,
    check_history_timestamp,
    check_name,
    check_public_flag,
)

__all__ = [
    "IMPORT_PREFIX",
    "batch_targets",
    "is_helper",
    "check_target",
    "finish_stage",
    "list_stages",
    "recover_stages",
    "stage_batch",
    "sweep",
]

log = logging.getLogger("keyloader.stores.filesystem")

IMPORT_PREFIX = ".keyloader-import-"
LEGACY_LOCK_NAME = ".keyloader.lock"
STAGE_MANIFEST = "manifest"
STAGE_COMPLETE = "complete"


def batch_targets(writes: Sequence[BlobWrite]) -> list[tuple[BlobWrite, int]]:
    """Each write with the mode of its file; ``ConfigError`` for bad or repeated names."""
    seen: set[tuple[str, str | None]] = set()
    targets: list[tuple[BlobWrite, int]] = []
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
        public = write.public if write.timestamp is None else is_public(base)
        targets.append((write, PUBLIC_MODE if public else PRIVATE_MODE))
    return targets


def target_dirs(keys_dir: Path, directory: Path, base: str, timestamp: str | None) -> list[Path]:
    """The directories a write needs besides the keys dir (``.poison_key``, ``*.old``)."""
    dirs = [directory] if directory != keys_dir else []
    if timestamp is not None:
        dirs.append(directory / (base + HISTORY_SUFFIX))
    return dirs


def target_path(directory: Path, base: str, timestamp: str | None) -> Path:
    """The file a write replaces: the current file, or one history entry."""
    if timestamp is None:
        return directory / base
    return directory / (base + HISTORY_SUFFIX) / timestamp


def check_target(keys_dir: Path, write: BlobWrite) -> None:
    """Refuse a target that cannot be replaced: not a regular file, loose modes, bad dirs."""
    directory, base = locate(keys_dir, write.name)
    for path in target_dirs(keys_dir, directory, base, write.timestamp):
        with suppress(FileNotFoundError):
            check_dir_stat(path, os.lstat(path))
    existing_file(target_path(directory, base, write.timestamp), is_public(base))


def stage_batch(keys_dir: Path, targets: Sequence[tuple[BlobWrite, int]]) -> Path:
    """Write and commit a stage holding ``targets``; returns it (not yet renamed in)."""
    stage = keys_dir / f"{IMPORT_PREFIX}{secrets.token_hex(8)}"
    os.mkdir(stage, DIR_MODE)
    try:
        os.chmod(stage, DIR_MODE)
        fsync_dir(keys_dir)
        manifest = [
            [write_temp(stage, write.data, mode).name, write.name, write.timestamp]
            for write, mode in targets
        ]
        write_temp(stage, json.dumps(manifest).encode(), PRIVATE_MODE).rename(
            stage / STAGE_MANIFEST
        )
        fsync_dir(stage)
        write_temp(stage, b"%d\n" % len(manifest), PRIVATE_MODE).rename(stage / STAGE_COMPLETE)
        fsync_dir(stage)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return stage


def finish_stage(keys_dir: Path, stage: Path) -> None:
    """Rename the files of a committed stage in (idempotent), then remove the stage."""
    try:
        manifest = json.loads((stage / STAGE_MANIFEST).read_bytes())
        if not isinstance(manifest, list):
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
        directory, base = locate(keys_dir, name)
        if timestamp is not None:
            check_history_timestamp(timestamp)
        for path in target_dirs(keys_dir, directory, base, timestamp):
            ensure_dir(path)
        target = target_path(directory, base, timestamp)
        os.replace(source, target)
        touched[target.parent] = None
    for directory in touched:
        fsync_dir(directory)
    unlink_quietly(stage / STAGE_COMPLETE)
    fsync_dir(stage)
    shutil.rmtree(stage)
    fsync_dir(keys_dir)


def recover_stages(keys_dir: Path, stages: list[Path], *, incomplete: bool = False) -> None:
    """Finish committed stages left by a writer that died (the lock is held).

    With ``incomplete``, also remove stages without the commit marker: only
    ``put_many`` does, since every lock holder sees them.
    """
    for stage in stages:
        if os.path.lexists(stage / STAGE_COMPLETE):
            log.warning("finishing the interrupted import staged in %s", stage)
            finish_stage(keys_dir, stage)
        elif incomplete:
            log.info("removing the incomplete import staged in %s", stage)
            shutil.rmtree(stage)
            fsync_dir(keys_dir)


def is_helper(base: str, *, top: bool) -> bool:
    """Whether ``base`` is a file keyloader itself leaves while it writes (swept after a crash):
    a temp file anywhere, a staged import or the lock file of keyloader < 0.2 at the top."""
    if base.startswith(TEMP_PREFIX):
        return True
    return top and (base.startswith(IMPORT_PREFIX) or base == LEGACY_LOCK_NAME)


def list_stages(keys_dir: Path) -> list[Path]:
    """The ``.keyloader-import-*`` staging directories of ``keys_dir``."""
    with os.scandir(keys_dir) as entries:
        return [
            Path(e.path)
            for e in entries
            if e.name.startswith(IMPORT_PREFIX) and e.is_dir(follow_symlinks=False)
        ]


def sweep(keys_dir: Path) -> list[Path]:
    """Delete ``.keyloader-tmp-*`` left by a writer that died (the lock is held).

    Returns the ``.keyloader-import-*`` staging directories found on the way.
    """
    directories = [keys_dir]
    stages: list[Path] = []
    poison = keys_dir / POISON_DIR
    if poison.is_dir() and not poison.is_symlink():
        directories.append(poison)
    for directory in list(directories):
        with os.scandir(directory) as entries:
            for e in entries:
                if e.name.endswith(HISTORY_SUFFIX):
                    found = directories
                elif directory == keys_dir and e.name.startswith(IMPORT_PREFIX):
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
