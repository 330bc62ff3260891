"""keyloader.stores.fs_stat: the same revision token as os.lstat, without releasing the GIL."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from keyloader.stores.fs_stat import RevisionStat


def lstat_token(path: Path) -> tuple[int, int, int, int]:
    st = os.lstat(path)
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)


def test_the_token_is_what_lstat_says(tmp_path: Path) -> None:
    target = tmp_path / "key"
    target.write_bytes(b"x" * 45)
    stat = RevisionStat(str(tmp_path))
    assert stat.token(str(target)) == lstat_token(target)
    replacement = tmp_path / "new"
    replacement.write_bytes(b"y" * 45)
    os.replace(replacement, target)
    assert stat.token(str(target)) == lstat_token(target)
    link = tmp_path / "link"
    link.symlink_to(target)
    assert stat.token(str(link)) == lstat_token(link), "a symlink is not followed"


def test_missing_files_raise_as_lstat_does(tmp_path: Path) -> None:
    stat = RevisionStat(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        stat.token(str(tmp_path / "absent"))
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        stat.token(str(tmp_path / "file" / "below"))


def test_a_directory_made_later_is_decided_then(tmp_path: Path) -> None:
    later = tmp_path / "later"
    stat = RevisionStat(str(later))
    with pytest.raises(FileNotFoundError):
        stat.token(str(later / "key"))
    assert not stat.holds_the_gil
    later.mkdir()
    (later / "key").write_bytes(b"k")
    assert stat.token(str(later / "key")) == lstat_token(later / "key")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="statx is Linux's")
def test_statx_is_used_on_local_filesystems_only(tmp_path: Path) -> None:
    target = tmp_path / "key"
    target.write_bytes(b"k")
    stat = RevisionStat(str(tmp_path))
    stat.token(str(target))
    from keyloader.stores.fs_stat import _statx_on

    assert stat.holds_the_gil is (_statx_on(str(tmp_path)) is not None)
    shm = Path("/dev/shm")
    if shm.is_dir():  # tmpfs on every Linux: local
        assert _statx_on(str(shm)) is not None
    proc = Path("/proc")
    if proc.is_dir():  # procfs is not in the list: lstat, the safe way
        assert _statx_on(str(proc)) is None
