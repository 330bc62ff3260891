"""Rewrap on the Redis store under SIGKILL: never a torn or lost key, and a rerun finishes.

A child process rewraps a store of about a hundred blobs (current keys, history,
a poison key) and is killed after a seeded random delay spread over the run's
duration. After each kill every key must decrypt under the old master key or
the new one, with its plaintext, and no stray Redis key may be left; a rerun
(once the dead writer's lock lease has expired) must finish the job.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, generate_master_key, write_master_key_file
from keyloader.rewrap import rewrap_keys
from keyloader.secret import SecretBytes
from keyloader_redis import RedisKeyStore

from ..rewrapcheck import Slot
from ..rewrapcheck import plaintexts as store_plaintexts
from .conftest import RedisServer

CLIENTS = 40  # 80 current keys
ROTATED = 20  # + 20 history entries + the poison key = 101 blobs
TRIALS = 10
SEED = 4321
LEASE = 0.5  # the child's writer-lock lease: a killed writer's lock expires this fast
LOCK = ".keyloader.lock"


@dataclass
class Pristine:
    """The store every trial starts from: its prefix, both master keys and their key files."""

    old: MasterKey
    new: MasterKey
    prefix: str
    key_dir: Path  # old.key and new.key


REWRAP_CHILD = f"""
import sys
from pathlib import Path
from keyloader.keystore import KeyManager
from keyloader.masterkey import master_key_from_raw
from keyloader.rewrap import rewrap_keys
from keyloader_redis import RedisKeyStore

RedisKeyStore.lock_lease = {LEASE}
url, prefix, old_file, new_file = sys.argv[1:5]
old = master_key_from_raw(Path(old_file).read_bytes(), source="old")
new = master_key_from_raw(Path(new_file).read_bytes(), source="new")
store = RedisKeyStore({{"url": url, "keys_dir": prefix, "lock_timeout": 10.0}})
manager = KeyManager(store, old)
manager.master_key
store.list()  # connected
print("ready", flush=True)
report = rewrap_keys(manager, new)
print("done", report.rewrapped, flush=True)
"""


def copy(key: MasterKey) -> MasterKey:
    return MasterKey(SecretBytes(key.encryption.bytes()))


def open_store(server: RedisServer, prefix: str) -> RedisKeyStore:
    return RedisKeyStore({"url": server.url, "keys_dir": prefix, "lock_timeout": 10.0})


def plaintexts(server: RedisServer, prefix: str, *keys: MasterKey) -> dict[Slot, tuple[str, int]]:
    store = open_store(server, prefix)
    try:
        return store_plaintexts(store, *keys)
    finally:
        store.close()


def raw_keys(server: RedisServer, prefix: str) -> set[str]:
    client = server.client()
    try:
        return {key.decode() for key in client.scan_iter(match=f"{prefix}/*", count=1000)}
    finally:
        client.close()


def clone(server: RedisServer, source: str, target: str) -> None:
    """Copy every Redis key under ``source`` to the same name under ``target``."""
    client = server.client()
    try:
        names = list(client.scan_iter(match=f"{source}/*", count=1000))
        values = client.mget(names)
        pipe = client.pipeline(transaction=False)
        for name, value in zip(names, values, strict=True):
            assert value is not None
            pipe.set(target.encode() + name[len(source) :], value)
        pipe.execute()
    finally:
        client.close()


@pytest.fixture
def pristine(redis_server: RedisServer, prefix: str, tmp_path: Path) -> Pristine:
    """A store sealed with the old key (current keys, history, a poison key) and key files."""
    old, new = generate_master_key(), generate_master_key()
    with KeyManager(open_store(redis_server, prefix), copy(old)) as manager:
        for i in range(CLIENTS):
            manager.generate(["symmetric", "searchable"], client_id=f"client{i:03d}")
        for i in range(ROTATED):
            manager.rotate(f"client/client{i:03d}/symmetric")
        manager.generate(["poison-record-symmetric"])
    write_master_key_file(old, tmp_path / "old.key")
    write_master_key_file(new, tmp_path / "new.key")
    return Pristine(old, new, prefix, tmp_path)


def start_rewrap(server: RedisServer, prefix: str, key_dir: Path) -> subprocess.Popen[str]:
    command = [sys.executable, "-c", REWRAP_CHILD, server.url, prefix]
    command += [str(key_dir / "old.key"), str(key_dir / "new.key")]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None
    line = child.stdout.readline()
    if line != "ready\n":
        child.kill()
        _, err = child.communicate()
        raise AssertionError(f"the rewrap child did not start: {line!r} {err}")
    return child


def test_sigkill_at_random_points_leaves_every_key_readable(
    redis_server: RedisServer, pristine: Pristine
) -> None:
    old, new, source, key_dir = pristine.old, pristine.new, pristine.prefix, pristine.key_dir
    expected = {slot: digest for slot, (digest, _) in plaintexts(redis_server, source, old).items()}
    assert len(expected) == 2 * CLIENTS + ROTATED + 1
    blob_keys = raw_keys(redis_server, source)

    def names_under(prefix: str) -> set[str]:
        return {key[len(prefix) :] for key in raw_keys(redis_server, prefix)}

    # an uninterrupted run, from "ready" to its exit (the fastest of two)
    durations = []
    for run in range(2):
        target = f"{source}-calibration{run}"
        clone(redis_server, source, target)
        child = start_rewrap(redis_server, target, key_dir)
        started = time.monotonic()
        _, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        durations.append(time.monotonic() - started)
        final = plaintexts(redis_server, target, new)
        assert {slot: digest for slot, (digest, _) in final.items()} == expected
    duration = min(durations)

    rng = random.Random(SEED)
    interrupted = mixed = 0
    for trial in range(TRIALS):
        target = f"{source}-trial{trial}"
        clone(redis_server, source, target)
        child = start_rewrap(redis_server, target, key_dir)
        try:
            time.sleep(rng.uniform(0, duration))
            child.send_signal(signal.SIGKILL)
            out, _ = child.communicate(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(timeout=10)
        # every key decrypts under the old key or the new one, with its plaintext
        state = plaintexts(redis_server, target, old, new)
        assert {slot: digest for slot, (digest, _) in state.items()} == expected, trial
        # no stray Redis key: the blobs, and at most the dead writer's (expiring) lock
        leftover = names_under(target) - names_under(source)
        assert leftover <= {f"/{LOCK}"}, (trial, leftover)
        under_new = sum(which for _, which in state.values())
        interrupted += child.returncode == -signal.SIGKILL and "done" not in out
        mixed += 0 < under_new < len(expected)
        # a rerun waits for the dead writer's lease, resumes and finishes
        with KeyManager(open_store(redis_server, target), copy(old)) as manager:
            report = rewrap_keys(manager, new)
        assert report.complete, trial
        assert report.skipped == under_new, trial
        assert report.rewrapped == len(expected) - under_new, trial
        final = plaintexts(redis_server, target, new)
        assert {slot: digest for slot, (digest, _) in final.items()} == expected, trial
        assert names_under(target) == names_under(source), trial  # the lock is gone too
    assert len(blob_keys) == len(expected)
    # the kills really landed inside the writes, not only before or after them
    assert interrupted >= TRIALS // 2, f"only {interrupted} of {TRIALS} kills interrupted it"
    assert mixed >= TRIALS // 5, f"only {mixed} of {TRIALS} kills landed mid-writes"
