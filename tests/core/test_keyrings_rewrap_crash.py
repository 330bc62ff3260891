"""A keystore v2 rewrap killed with SIGKILL at random points: every ring is whole, under
the old pair or the new one, with the same keys; a rerun finishes the job."""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from keyloader.keyrings import format as rings_format
from keyloader.keyrings.directory import RingDirectory
from keyloader.keyrings.engine import RingKeyManager
from keyloader.keyrings.rewrap import rewrap_rings
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader.secret import SecretBytes

CLIENTS = 20  # 60 rings
TRIALS = 12
SEED = 4321

CHILD = """
import sys
from pathlib import Path
from keyloader.keyrings.directory import RingDirectory
from keyloader.keyrings.engine import RingKeyManager
from keyloader.keyrings.rewrap import rewrap_rings
from keyloader.masterkey import parse_master_key

root, old, new = sys.argv[1:4]
manager = RingKeyManager(RingDirectory(Path(root)), parse_master_key(old), cache_size=0)
manager.master_key
print("ready", flush=True)
rewrap_rings(manager, parse_master_key(new))
print("done", flush=True)
"""


def _copy(key: MasterKey) -> MasterKey:
    assert key.signature is not None
    return MasterKey(SecretBytes(key.encryption.buffer), SecretBytes(key.signature.buffer))


def _rings_under(root: Path, key: MasterKey) -> tuple[int, int]:
    """(rings whose signature ``key`` verifies, all rings)."""
    store = RingDirectory(root)
    paths = store.list()
    assert key.signature is not None
    under = 0
    for path in paths:
        try:
            rings_format.open_ring(store.read(path) or b"", path, key.signature)
        except rings_format.RingFormatError:
            continue
        under += 1
    return under, len(paths)


def _plaintexts(root: Path, keys: list[MasterKey]) -> dict[str, str]:
    """Every key of every ring (path, seqnum -> hex), each ring opened by one of ``keys``."""
    found: dict[str, str] = {}
    store = RingDirectory(root)
    for path in store.list():
        data = store.read(path)
        assert data is not None
        for key in keys:
            assert key.signature is not None
            try:
                ring = rings_format.open_ring(data, path, key.signature)
            except rings_format.RingFormatError:
                continue
            for entry in ring.keys:
                private = path.endswith("/storage")
                with rings_format.unseal_key(key.encryption, path, entry, private=private) as k:
                    found[f"{path}#{entry.seqnum}"] = k.bytes().hex()
            break
        else:
            pytest.fail(f"{path} opens under neither pair")
    return found


@pytest.mark.slow
def test_a_killed_v2_rewrap_leaves_whole_rings_and_a_rerun_finishes(tmp_path: Path) -> None:
    pristine = tmp_path / "pristine"
    with generate_master_key("v2") as old, generate_master_key("v2") as new:
        with RingKeyManager(RingDirectory.create(pristine), _copy(old)) as keys:
            for client in range(CLIENTS):
                keys.generate(["symmetric", "searchable", "storage"], client_id=f"client-{client}")
            keys.rotate("client/client-0/symmetric")
        before = _plaintexts(pristine, [old])
        with old.to_text() as old_text, new.to_text() as new_text:
            texts = (old_text.bytes().decode(), new_text.bytes().decode())
        # how long the writes take, from "ready" to "done" (the fastest of three: a run
        # slowed by a busy machine would spread the kills past the end of the writes)
        durations = []
        for run in range(3):
            calibration = tmp_path / f"calibration{run}"
            shutil.copytree(pristine, calibration)
            child = _start(calibration, texts)
            started = time.monotonic()
            assert child.stdout is not None
            assert child.stdout.readline().strip() == b"done"
            durations.append(time.monotonic() - started)
            assert child.wait(timeout=60) == 0
            assert _rings_under(calibration, new)[0] == len(RingDirectory(calibration).list())
        duration = min(durations)
        rng = random.Random(SEED)
        mixed = 0
        for trial in range(TRIALS):
            root = tmp_path / f"trial{trial}"
            shutil.copytree(pristine, root)
            child = _start(root, texts)
            time.sleep(rng.uniform(0, duration))
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
            assert _plaintexts(root, [old, new]) == before, trial  # whole rings, same keys
            under_new, total = _rings_under(root, new)
            mixed += 0 < under_new < total
            # a rerun resumes and finishes: every ring under the new pair, nothing lost
            with RingKeyManager(RingDirectory(root), _copy(old)) as manager:
                report = rewrap_rings(manager, _copy(new))
            assert report.complete, trial
            assert _plaintexts(root, [new]) == before, trial
            assert not list(root.rglob("*.keyring.new")), trial
            shutil.rmtree(root)
        # the kills really landed inside the writes, not only before or after them
        assert mixed >= TRIALS // 6, f"only {mixed} of {TRIALS} kills interrupted the writes"


def _start(root: Path, texts: tuple[str, str]) -> subprocess.Popen[bytes]:
    """A child rewrapping ``root``, returned once it has read its keys and is about to write."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), *texts], stdout=subprocess.PIPE
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == b"ready"
    return child
