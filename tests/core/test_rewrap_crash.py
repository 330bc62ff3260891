"""Rewrap under SIGKILL, and readers in other processes during a rewrap (real processes, files).

A store of a few hundred blobs (current and history) is rewrapped by a child
process (``sys.executable -c``) killed after a random delay spread over the
run's duration. After each kill every key must decrypt under the old key or
the new one; a rerun must finish the job, with the same names and plaintexts.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader.rewrap import rewrap_keys
from keyloader.secret import SecretBytes
from keyloader.stores.filesystem import FilesystemKeyStore

from ..acrabackup import acra_export_problems
from ..rewrapcheck import Slot
from ..rewrapcheck import plaintexts as store_plaintexts

CLIENTS = 80  # 160 current keys
ROTATED = 40  # + 40 history entries, + a keypair's private file = 201 blobs
TRIALS = 30
SEED = 1234


REWRAP_CHILD = """
import sys
from pathlib import Path
from keyloader.keystore import KeyManager
from keyloader.masterkey import master_key_from_raw
from keyloader.rewrap import rewrap_keys
from keyloader.stores.filesystem import FilesystemKeyStore

keys_dir, old_file, new_file = sys.argv[1:4]
old = master_key_from_raw(Path(old_file).read_bytes(), source="old")
new = master_key_from_raw(Path(new_file).read_bytes(), source="new")
manager = KeyManager(FilesystemKeyStore({"keys_dir": keys_dir}), old)
manager.master_key
print("ready", flush=True)
report = rewrap_keys(manager, new)
print("done", report.rewrapped, flush=True)
"""

READER_CHILD = """
import hashlib, json, os, struct, sys, time
from pathlib import Path
from keyloader.keystore import KeyManager
from keyloader.masterkey import master_key_from_raw
from keyloader.stores.filesystem import FilesystemKeyStore

keys_dir, current_file, previous_file, expected_file, stop_file = sys.argv[1:6]
current = master_key_from_raw(Path(current_file).read_bytes(), source="current")
previous = master_key_from_raw(Path(previous_file).read_bytes(), source="previous")
expected = json.loads(Path(expected_file).read_text())
store = FilesystemKeyStore({"keys_dir": keys_dir})
manager = KeyManager(store, current, previous=previous)
times, failures, torn = [], [], 0
print("ready", flush=True)
while not os.path.exists(stop_file):
    for key_id, index, digest, path in expected:
        try:
            with manager.use(key_id, index) as key:
                ok = hashlib.sha256(key.buffer).hexdigest() == digest
            if not ok:
                failures.append(f"{key_id} {index}: wrong plaintext")
        except Exception as exc:
            failures.append(f"{key_id} {index}: {type(exc).__name__}")
        data = Path(path).read_bytes()  # raw: the Secure Cell header gives the full length
        if len(data) < 44 or struct.unpack_from("<I", data, 12)[0] != len(data) - 44:
            torn += 1
        times.append(time.time())
print(json.dumps({"times": times, "failures": failures[:20], "torn": torn}), flush=True)
"""


def copy(key: MasterKey) -> MasterKey:
    return MasterKey(SecretBytes(key.encryption.buffer))


def write_key(path: Path, key: MasterKey) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(key.encryption.bytes())
    return path


def plaintexts(keys_dir: Path, *keys: MasterKey) -> dict[Slot, tuple[str, int]]:
    """Each private blob of the directory: its plaintext's sha256 and which key opens it."""
    return store_plaintexts(FilesystemKeyStore({"keys_dir": keys_dir}), *keys)


@pytest.fixture(scope="module")
def keys() -> dict[str, MasterKey]:
    return {"old": generate_master_key(), "new": generate_master_key()}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, MasterKey]) -> Path:
    """A key directory sealed with the old key: current keys, history, a keypair."""
    root = tmp_path_factory.mktemp("pristine")
    keys_dir = root / "keys"
    with KeyManager(FilesystemKeyStore({"keys_dir": keys_dir}), copy(keys["old"])) as manager:
        for i in range(CLIENTS):
            manager.generate(["symmetric", "searchable"], client_id=f"client{i:03d}")
        for i in range(ROTATED):
            manager.rotate(f"client/client{i:03d}/symmetric")
        manager.generate(["storage"], client_id="client000")
    write_key(root / "old.key", keys["old"])
    write_key(root / "new.key", keys["new"])
    return keys_dir


def fresh_copy(pristine: Path, target: Path) -> Path:
    shutil.copytree(pristine, target, symlinks=True)
    return target


def start_rewrap(keys_dir: Path, pristine: Path) -> subprocess.Popen[str]:
    root = pristine.parent
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            REWRAP_CHILD,
            str(keys_dir),
            str(root / "old.key"),
            str(root / "new.key"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line == "ready\n", child.stderr.read() if child.stderr else line
    return child


def test_sigkill_at_random_points_leaves_every_key_readable(
    pristine: Path, keys: dict[str, MasterKey], tmp_path: Path
) -> None:
    old, new = keys["old"], keys["new"]
    expected = {slot: digest for slot, (digest, _) in plaintexts(pristine, old).items()}
    assert len(expected) == 2 * CLIENTS + ROTATED + 1
    # how long an uninterrupted run takes, from "ready" to its exit (the fastest of three:
    # a run slowed by a busy machine would spread the kills past the end of the writes)
    durations = []
    for run in range(3):
        calibration = fresh_copy(pristine, tmp_path / f"calibration{run}")
        child = start_rewrap(calibration, pristine)
        started = time.monotonic()
        assert child.wait(timeout=60) == 0, child.stderr.read() if child.stderr else ""
        durations.append(time.monotonic() - started)
        child.communicate()
        assert {d for d, _ in plaintexts(calibration, new).values()} == set(expected.values())
    duration = min(durations)

    rng = random.Random(SEED)
    delays = [rng.uniform(0, duration) for _ in range(TRIALS)]
    mixed = 0
    for trial, delay in enumerate(delays):
        keys_dir = fresh_copy(pristine, tmp_path / f"trial{trial}")
        child = start_rewrap(keys_dir, pristine)
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        assert child.stdout is not None
        assert child.stderr is not None
        child.stdout.close()
        child.stderr.close()
        # the next command of any kind (a read) leaves only Acra's files in the directory
        FilesystemKeyStore({"keys_dir": keys_dir}).list()
        assert not list(keys_dir.rglob(".keyloader*")), trial
        # every key decrypts under the old key or the new one, with its plaintext
        state = plaintexts(keys_dir, old, new)
        assert {slot: digest for slot, (digest, _) in state.items()} == expected, trial
        under_new = sum(which for _, which in state.values())
        mixed += 0 < under_new < len(expected)
        # a rerun resumes and finishes: everything under the new key, nothing lost
        with KeyManager(FilesystemKeyStore({"keys_dir": keys_dir}), copy(old)) as manager:
            report = rewrap_keys(manager, new)
        assert report.complete, trial
        assert report.skipped == under_new, trial
        assert report.rewrapped == len(expected) - under_new, trial
        final = plaintexts(keys_dir, new)
        assert {slot: digest for slot, (digest, _) in final.items()} == expected, trial
        assert not list(keys_dir.rglob(".keyloader-tmp-*")), trial
        assert acra_export_problems(keys_dir, new.encryption.bytes()).problems == [], trial
        shutil.rmtree(keys_dir)
    # the kills really landed inside the writes, not only before or after them
    assert mixed >= TRIALS // 6, f"only {mixed} of {TRIALS} kills interrupted the writes"


def test_readers_in_other_processes_never_fail_during_a_rewrap(
    pristine: Path, keys: dict[str, MasterKey], tmp_path: Path
) -> None:
    old, new = keys["old"], keys["new"]
    keys_dir = fresh_copy(pristine, tmp_path / "keys")
    store = FilesystemKeyStore({"keys_dir": keys_dir})
    rows = []
    with KeyManager(store, copy(old)) as manager:
        for info in manager.list(rotated=True):
            if info.state not in ("current", "rotated"):
                continue
            assert info.key_id is not None
            with manager.use(info.key_id, info.index or 1) as key:
                digest = hashlib.sha256(key.buffer).hexdigest()
            rows.append([info.key_id, info.index, digest, info.path])
    expected_file = tmp_path / "expected.json"
    expected_file.write_text(json.dumps(rows))
    stop = tmp_path / "stop"
    root = pristine.parent
    readers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                READER_CHILD,
                str(keys_dir),
                str(root / current),
                str(root / previous),
                str(expected_file),
                str(stop),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # an app already switched to the new key, and one still on the old key
        for current, previous in (("new.key", "old.key"), ("old.key", "new.key"))
    ]
    try:
        for reader in readers:
            assert reader.stdout is not None
            assert reader.stdout.readline() == "ready\n"
        time.sleep(0.2)  # the readers are reading
        started = time.time()
        with KeyManager(FilesystemKeyStore({"keys_dir": keys_dir}), copy(old)) as manager:
            report = rewrap_keys(manager, new)
        finished = time.time()
        time.sleep(0.2)
    finally:
        stop.touch()
    assert report.complete
    for reader in readers:
        out, err = reader.communicate(timeout=60)
        assert reader.returncode == 0, err
        result = json.loads(out)
        assert result["failures"] == []
        assert result["torn"] == 0
        during = [t for t in result["times"] if started <= t <= finished]
        assert len(during) >= 50, "the reader did not overlap the rewrap"
        assert min(result["times"]) < started
        assert max(result["times"]) > finished
