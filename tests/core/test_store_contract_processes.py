"""The contract's checks across processes catch broken stores (and pass on a good one)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from keyloader.errors import KeyStoreError
from keyloader.stores import FilesystemKeyStore
from keyloader.testing.store_processes import StoreProcessChecks


class Request:
    """The one thing the checks ask of pytest's ``request``: the ``reopen_store`` fixture."""

    def __init__(self, reopen: Callable[..., Any]) -> None:
        self.reopen = reopen

    def getfixturevalue(self, name: str) -> Any:
        assert name == "reopen_store"
        return self.reopen


def run(check: str, cls: type[FilesystemKeyStore], keys: Path) -> None:
    store = cls({"keys_dir": keys})
    try:
        getattr(StoreProcessChecks(), check)(
            store, Request(lambda **o: cls({"keys_dir": keys, **o}))
        )
    finally:
        store.close()


class NoLock(FilesystemKeyStore):
    """Its lock serializes nothing, and reads take long enough for writers to interleave."""

    @contextmanager
    def lock(self) -> Iterator[None]:
        yield

    def get(self, name: str) -> bytes:
        data = super().get(name)
        time.sleep(0.002)
        return data


class InPlace(FilesystemKeyStore):
    """Overwrites the key file in place, in two halves: readers can see half a write."""

    def put(self, name: str, data: bytes, *, public: bool = False) -> None:
        path = Path(self.location) / name
        if not path.exists():
            super().put(name, data, public=public)
            return
        with open(path, "r+b") as stream:
            stream.truncate(0)
            stream.write(data[: len(data) // 2])
            stream.flush()
            time.sleep(0.001)
            stream.write(data[len(data) // 2 :])


class NoWait(FilesystemKeyStore):
    """Gives up at once when the lock is taken, whatever lock_timeout says."""

    @contextmanager
    def lock(self) -> Iterator[None]:
        import fcntl

        fd = os.open(self.location, os.O_RDONLY | os.O_DIRECTORY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise KeyStoreError("busy") from None
            yield
        finally:
            os.close(fd)


CHECKS = [
    "test_writers_in_several_processes_are_serialized",
    "test_lock_timeout_is_honoured_across_processes",
    "test_readers_never_see_a_torn_value",
]


@pytest.mark.parametrize("check", CHECKS)
def test_the_checks_pass_on_the_filesystem_store(tmp_path: Path, check: str) -> None:
    run(check, FilesystemKeyStore, tmp_path / "keys")


def test_lost_updates_are_caught(tmp_path: Path) -> None:
    with pytest.raises(AssertionError):
        run(CHECKS[0], NoLock, tmp_path / "keys")


def test_an_ignored_lock_timeout_is_caught(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    FilesystemKeyStore({"keys_dir": keys}).create("secure_log_key", b"x")  # the directory exists
    with pytest.raises(AssertionError, match="waited"):
        run(CHECKS[1], NoWait, keys)


def test_torn_reads_are_caught(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="torn read"):
        run(CHECKS[2], InPlace, tmp_path / "keys")
