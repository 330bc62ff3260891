"""Rewrap on the Redis store under SIGKILL: never a torn or lost key, and a rerun finishes.

A child process (``sys.executable -c``) rewraps a store of 151 blobs (current
keys, history, the poison key) on the real ``redis-server`` and is killed
(SIGKILL, by PID) after a seeded random delay, one in each tenth of a measured
full run. After each kill, read with a plain redis client, every value must
decrypt under the old master key or the new one with its plaintext, and the
prefix must hold exactly the blobs (plus, at most, the dead writer's leased
lock); the library must read every (key id, index) too. A second child, started
at once, waits for the dead writer's lease (0.5 s in the children), resumes and
finishes: then everything is under the new key only and no lock is left.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from keyloader.errors import IntegrityError
from keyloader.keyids import classify
from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, generate_master_key, write_master_key_file
from keyloader.secret import SecretBytes
from keyloader.themis import scell
from keyloader_redis import RedisKeyStore

from .conftest import RedisServer

CLIENTS = 60  # 120 current keys
ROTATED = 30  # + 30 history entries + the poison key = 151 blobs
BLOBS = 2 * CLIENTS + ROTATED + 1
TRIALS = 10
SEED = 4321
LEASE = 0.5  # the children's writer-lock lease: a killed writer's lock expires this fast
LOCK_SUFFIX = ".keyloader-lock"  # the writer lock beside the prefix (docs/redis.md)
LOCK_TIMEOUT = 5.0  # how long a child waits for the lock (well above LEASE)

REWRAP_CHILD = f"""
import sys
from pathlib import Path
from keyloader.keystore import KeyManager
from keyloader.masterkey import master_key_from_raw
from keyloader.rewrap import rewrap_keys
from keyloader_redis import RedisKeyStore

RedisKeyStore.lock_lease = {LEASE}  # before the store is built
url, prefix, old_file, new_file = sys.argv[1:5]
old = master_key_from_raw(Path(old_file).read_bytes(), source="old")
new = master_key_from_raw(Path(new_file).read_bytes(), source="new")
store = RedisKeyStore({{"url": url, "keys_dir": prefix, "lock_timeout": {LOCK_TIMEOUT}}})
manager = KeyManager(store, old)
manager.master_key
store.list()  # connected
print("ready", flush=True)
report = rewrap_keys(manager, new)
print("done", report.rewrapped, report.skipped, report.complete, flush=True)
"""


@dataclass
class Pristine:
    """The store every trial copies: master keys, key files, and what each blob holds."""

    old: MasterKey
    new: MasterKey
    prefix: str
    key_dir: Path  # old.key and new.key
    by_key_id: dict[tuple[str, int], str]  # (key id, index) -> sha256 of the plaintext
    by_redis_key: dict[str, tuple[bytes, str]]  # key below the prefix -> (context, sha256)


def copy(key: MasterKey) -> MasterKey:
    return MasterKey(SecretBytes(key.encryption.bytes()))


def open_store(server: RedisServer, prefix: str) -> RedisKeyStore:
    return RedisKeyStore({"url": server.url, "keys_dir": prefix, "lock_timeout": LOCK_TIMEOUT})


def raw_values(server: RedisServer, prefix: str) -> dict[str, bytes]:
    """Every Redis key under ``prefix`` (without it) and its raw value, by a plain client."""
    client = server.client()
    try:
        names = list(client.scan_iter(match=f"{prefix}/*", count=1000))
        values = client.mget(names) if names else []
        return {
            name.decode()[len(prefix) + 1 :]: value
            for name, value in zip(names, values, strict=True)
            if isinstance(value, bytes)  # None: deleted since the SCAN
        }
    finally:
        client.close()


def context_of(relative: str) -> bytes:
    """The Secure Cell context of a blob, from its Redis key below the prefix."""
    name = relative.split(".old/", 1)[0]
    key_id = classify(name).key_id
    assert key_id is not None, relative
    return key_id.context


def opened_by(value: bytes, context: bytes, *keys: MasterKey) -> tuple[str, int]:
    """The plaintext's sha256 and which of ``keys`` opens a raw (base64) value."""
    blob = base64.b64decode(value, validate=True)
    for which, key in enumerate(keys):
        try:
            plain = scell.decrypt(key.encryption.buffer, blob, context)
        except IntegrityError:
            continue
        with plain:
            return hashlib.sha256(plain.buffer).hexdigest(), which
    raise AssertionError("decrypts under none of the keys")


def library_digests(
    server: RedisServer, prefix: str, key: MasterKey, previous: MasterKey | None = None
) -> dict[tuple[str, int], str]:
    """(key id, index) -> sha256 of the plaintext, read through a fresh KeyManager."""
    found = {}
    store = open_store(server, prefix)
    try:
        with KeyManager(store, copy(key), previous=copy(previous) if previous else None) as keys:
            for info in keys.list(rotated=True):
                assert info.key_id is not None, info
                assert info.index is not None, info
                with keys.use(info.key_id, info.index) as plain:
                    found[(info.key_id, info.index)] = hashlib.sha256(plain.buffer).hexdigest()
    finally:
        store.close()
    return found


def check_raw(
    server: RedisServer, pristine: Pristine, prefix: str, *keys: MasterKey
) -> tuple[int, bool]:
    """Every blob opens under one of ``keys`` with its plaintext, and nothing is missing or
    extra: returns how many blobs the last of ``keys`` opens, and whether a lock is left."""
    values = raw_values(server, prefix)
    assert not any("keyloader" in name for name in values), "a helper key under the prefix"
    client = server.client()
    try:
        lock = client.get(f"{prefix}{LOCK_SUFFIX}")
        ttl = client.pttl(f"{prefix}{LOCK_SUFFIX}")
    finally:
        client.close()
    if lock is not None:  # a dead writer's lock must be leased, never persistent
        assert ttl != -1, "the lock has no lease: it would never expire"
        assert ttl <= LEASE * 1000, ttl  # -2: it expired since
    assert set(values) == set(pristine.by_redis_key)
    last = 0
    for relative, value in values.items():
        context, expected = pristine.by_redis_key[relative]
        digest, which = opened_by(value, context, *keys)
        assert digest == expected, relative
        last += which == len(keys) - 1
    return last, lock is not None


@pytest.fixture
def pristine(redis_server: RedisServer, prefix: str, tmp_path: Path) -> Iterator[Pristine]:
    """A store sealed with the old key (current keys, history, the poison key) and key files.

    Every key under this test's prefix (the trials' copies too) is deleted afterwards.
    """
    old, new = generate_master_key(), generate_master_key()
    store = open_store(redis_server, prefix)
    with KeyManager(store, copy(old)) as manager:
        for i in range(CLIENTS):
            manager.generate(["symmetric", "searchable"], client_id=f"client{i:03d}")
        for i in range(ROTATED):
            manager.rotate(f"client/client{i:03d}/symmetric")
        manager.generate(["poison-record-symmetric"])
    store.close()
    write_master_key_file(old, tmp_path / "old.key")
    write_master_key_file(new, tmp_path / "new.key")
    by_redis_key = {}
    for relative, value in raw_values(redis_server, prefix).items():
        context = context_of(relative)
        by_redis_key[relative] = (context, opened_by(value, context, old)[0])
    by_key_id = library_digests(redis_server, prefix, old)
    # both views agree: the same plaintexts, one per blob
    assert len(by_key_id) == len(by_redis_key) == BLOBS
    assert Counter(by_key_id.values()) == Counter(d for _, d in by_redis_key.values())
    try:
        yield Pristine(old, new, prefix, tmp_path, by_key_id, by_redis_key)
    finally:
        client = redis_server.client()
        for name in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(name)
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


def start_rewrap(server: RedisServer, prefix: str, key_dir: Path) -> subprocess.Popen[str]:
    """A rewrap child that has connected and printed "ready"."""
    command = [sys.executable, "-c", REWRAP_CHILD, server.url, prefix]
    command += [str(key_dir / "old.key"), str(key_dir / "new.key")]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None
    line = child.stdout.readline()
    if line != "ready\n":
        _, err = stop(child)
        raise AssertionError(f"the rewrap child did not start: {line!r} {err}")
    return child


def stop(child: subprocess.Popen[str]) -> tuple[str, str]:
    """Kill a child by its PID if it still runs, reap it, and return what it printed."""
    if child.poll() is None:
        os.kill(child.pid, signal.SIGKILL)
    return child.communicate(timeout=30)


def run_to_completion(server: RedisServer, prefix: str, key_dir: Path) -> tuple[str, float]:
    """Run a rewrap child to its end: its report line, and seconds from "ready" to "done"."""
    child = start_rewrap(server, prefix, key_dir)
    assert child.stdout is not None
    try:
        started = time.monotonic()
        line = child.stdout.readline()
        elapsed = time.monotonic() - started
        out, err = child.communicate(timeout=60)
    finally:
        stop(child)
    assert child.returncode == 0, err
    return line + out, elapsed


def test_sigkill_at_random_points_leaves_every_key_readable(
    redis_server: RedisServer, pristine: Pristine
) -> None:
    old, new, source, key_dir = pristine.old, pristine.new, pristine.prefix, pristine.key_dir

    # how long the rewrap takes, from "ready" to "done" (the fastest of two runs)
    durations = []
    for run in range(2):
        target = f"{source}-calibration{run}"
        clone(redis_server, source, target)
        out, elapsed = run_to_completion(redis_server, target, key_dir)
        assert out == f"done {BLOBS} 0 True\n"
        durations.append(elapsed)
        assert check_raw(redis_server, pristine, target, new) == (BLOBS, False)
    duration = min(durations)

    # one random delay in each tenth of the run: every phase (survey, writes, final check) is hit
    rng = random.Random(SEED)
    delays = [duration * (trial + rng.random()) / TRIALS for trial in range(TRIALS)]
    interrupted = mixed = leased = 0
    for trial, delay in enumerate(delays):
        target = f"{source}-trial{trial}"
        clone(redis_server, source, target)
        child = start_rewrap(redis_server, target, key_dir)
        try:
            time.sleep(delay)
            os.kill(child.pid, signal.SIGKILL)
            out, _ = child.communicate(timeout=30)
        finally:
            stop(child)
        # every blob decrypts under the old key or the new one, with its plaintext;
        # nothing lost, nothing extra but the dead writer's leased lock
        under_new, locked = check_raw(redis_server, pristine, target, old, new)
        assert library_digests(redis_server, target, old, new) == pristine.by_key_id, trial
        assert library_digests(redis_server, target, new, old) == pristine.by_key_id, trial
        interrupted += "done" not in out
        mixed += 0 < under_new < BLOBS
        leased += locked
        # a rerun waits for the dead writer's lease, resumes and finishes
        out, _ = run_to_completion(redis_server, target, key_dir)
        assert out == f"done {BLOBS - under_new} {under_new} True\n", (trial, locked)
        assert check_raw(redis_server, pristine, target, new) == (BLOBS, False), trial
        assert library_digests(redis_server, target, new) == pristine.by_key_id, trial
    # the kills really landed inside the run, some inside the writes, and most left the
    # dead writer's lock for the rerun to wait out
    assert interrupted >= TRIALS // 2, f"only {interrupted} of {TRIALS} kills interrupted it"
    assert mixed >= TRIALS // 3, f"only {mixed} of {TRIALS} kills landed mid-writes"
    assert leased >= TRIALS // 2, f"only {leased} of {TRIALS} kills left a lock behind"
