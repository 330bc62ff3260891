"""Several processes writing one key directory under the lock: nothing lost, nothing torn."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from keyloader.stores import FilesystemKeyStore
from keyloader.stores.timestamps import parse_history_timestamp

PROCESSES = 4
ROTATIONS = 12
SHARED = "shared_storage_sym"

WRITER = """
import os, random, sys, time
from keyloader.errors import KeyExistsError
from keyloader.stores import FilesystemKeyStore

keys, n, rotations, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
inside = go + ".inside"
store = FilesystemKeyStore({"keys_dir": keys, "lock_timeout": 20.0})

def blob(i):
    return (f"proc{n}-{i};" * 200).encode()

deadline = time.monotonic() + 20
while not os.path.exists(go) and time.monotonic() < deadline:
    time.sleep(0.001)
for i in range(rotations):
    time.sleep(random.uniform(0, 0.01))  # let the others in between our writes
    with store.lock():
        # mutual exclusion: nobody else may be inside while we are
        marker = os.open(inside, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        store.rotate("shared_storage_sym", blob(i))
        if i == rotations // 2:
            store.create(f"proc{n}_hmac", blob(i))
        os.close(marker)
        os.unlink(inside)
try:
    with store.lock():
        store.create("race_hmac", blob(-1))
except KeyExistsError:
    print("lost")
else:
    print("won")
"""


def _payload(n: int, i: int) -> bytes:
    return (f"proc{n}-{i};" * 200).encode()


def _decode(blob: bytes) -> tuple[int, int] | None:
    """(process, index) of a whole payload, None for the initial blob; fails on a torn one."""
    if blob == b"initial":
        return None
    head = blob.split(b";", 1)[0].decode()
    n, i = (int(part) for part in head.removeprefix("proc").split("-"))
    assert blob == _payload(n, i), "torn or mixed blob"
    return n, i


def test_processes_rotating_one_directory_lose_nothing(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    go = tmp_path / "go"
    store = FilesystemKeyStore({"keys_dir": keys, "lock_timeout": 20.0})
    with store.lock():
        store.create(SHARED, b"initial")

    read_errors: list[BaseException] = []
    reads = 0
    stop = threading.Event()

    def reader() -> None:  # readers take no lock and must never see a torn or missing blob
        nonlocal reads
        while not stop.is_set():
            try:
                _decode(store.get(SHARED))
                reads += 1
            except BaseException as exc:  # reported below
                read_errors.append(exc)
                return

    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(keys), str(n), str(ROTATIONS), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(PROCESSES)
    ]
    watcher = threading.Thread(target=reader)
    watcher.start()
    time.sleep(0.3)  # let the writers import keyloader and wait for the start signal
    go.touch()
    outcomes = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            outcomes.append(out.strip())
    finally:
        stop.set()
        watcher.join(10)
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert read_errors == []
    assert reads > 0

    # every rotation is accounted for in current + history, each process's in its order
    [blob] = [b for b in store.list() if b.name == SHARED]
    assert len(blob.history) == PROCESSES * ROTATIONS
    times = [parse_history_timestamp(t) for t in blob.history]
    assert times == sorted(times)
    assert len(set(times)) == len(times)
    seen = [_decode(store.get_history(SHARED, t)) for t in blob.history]
    seen.append(_decode(store.get(SHARED)))
    assert seen[0] is None
    written = [entry for entry in seen[1:] if entry is not None]
    assert sorted(written) == [(n, i) for n in range(PROCESSES) for i in range(ROTATIONS)]
    for n in range(PROCESSES):
        assert [i for m, i in written if m == n] == list(range(ROTATIONS))

    # creates: each process's own key, and exactly one winner of the race
    assert sorted(outcomes) == ["lost"] * (PROCESSES - 1) + ["won"]
    winner = outcomes.index("won")
    assert store.get("race_hmac") == _payload(winner, -1)
    for n in range(PROCESSES):
        assert store.get(f"proc{n}_hmac") == _payload(n, ROTATIONS // 2)

    # no temp files left behind, modes intact
    leftovers = [
        name
        for _, dirs, files in os.walk(keys)
        for name in dirs + files
        if name.startswith(".keyloader-tmp-")
    ]
    assert leftovers == []
    history_dir = keys / f"{SHARED}.old"
    assert os.stat(history_dir).st_mode & 0o777 == 0o700
    assert {os.stat(p).st_mode & 0o777 for p in history_dir.iterdir()} == {0o600}
