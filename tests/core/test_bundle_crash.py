"""Import under SIGKILL: never a torn key, all or nothing, a rerun finishes (real processes).

A bundle of a few hundred blobs (current and history) is imported by a child
process (``sys.executable -c``) killed after a random delay spread over the
run's duration, and at chosen points of the staging protocol. After each kill
every key in the destination decrypts under its master key; once a writer has
taken the lock, either every imported key is there or none; a rerun finishes.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from keyloader.bundle import export_keys, import_keys
from keyloader.errors import KeyStoreError
from keyloader.keyids import classify
from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader.secret import SecretBytes
from keyloader.stores.filesystem import FilesystemKeyStore
from keyloader.themis import scell

from ..acrabackup import acra_export_problems

CLIENTS = 80
ROTATED = 40
TRIALS = 30
SEED = 1234

Slot = tuple[str, str | None]

IMPORT_CHILD = """
import os, shutil, signal, sys
from pathlib import Path
from keyloader.bundle import import_keys
from keyloader.keystore import KeyManager
from keyloader.masterkey import master_key_from_raw
from keyloader.stores.filesystem import FilesystemKeyStore

keys_dir, key_file, bundle, secret = sys.argv[1:5]
kill_at = os.environ.get("KILL_AT")  # "<function>:<n>": SIGKILL at the n-th call
if kill_at:
    what, count = kill_at.split(":")
    module = shutil if what == "rmtree" else os
    original = getattr(module, what)
    calls = [0]
    def patched(*args, **kwargs):
        calls[0] += 1
        if calls[0] == int(count):
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)
    setattr(module, what, patched)
key = master_key_from_raw(Path(key_file).read_bytes(), source="destination key")
manager = KeyManager(FilesystemKeyStore({"keys_dir": keys_dir}), key)
manager.master_key
print("ready", flush=True)
report = import_keys(manager, bundle, secret)
print("done", len(report.imported), flush=True)
"""


def copy(key: MasterKey) -> MasterKey:
    return MasterKey(SecretBytes(key.encryption.buffer))


def digests(keys_dir: Path, key: MasterKey) -> dict[Slot, str]:
    """sha256 of every blob's plaintext (public files as they are); IntegrityError if one fails."""
    store = FilesystemKeyStore({"keys_dir": keys_dir})
    found: dict[Slot, str] = {}
    for blob in store.list():
        what = classify(blob.name)
        assert what.key_id is not None, blob.name
        for ts in ([None] if blob.current else []) + list(blob.history):
            data = store.get(blob.name) if ts is None else store.get_history(blob.name, ts)
            if what.public:
                found[(blob.name, ts)] = hashlib.sha256(data).hexdigest()
                continue
            with scell.decrypt(key.encryption.buffer, data, what.key_id.context) as plain:
                found[(blob.name, ts)] = hashlib.sha256(plain.buffer).hexdigest()
    return found


@dataclass(frozen=True)
class Setup:
    """The bundle, the destination's key, and the expected contents (sha256 by slot)."""

    root: Path
    dest_key: MasterKey
    own: dict[Slot, str]  # the destination's own keys
    imported: dict[Slot, str]  # what the bundle adds (the overlapping name is kept)
    final: dict[Slot, str]  # the destination after a complete import

    @property
    def bundle(self) -> Path:
        return self.root / "keys.bundle"

    @property
    def secret(self) -> Path:
        return self.root / "keys.secret"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    """A bundle of 202 blobs, and a destination with keys of its own (one name overlaps)."""
    root = tmp_path_factory.mktemp("bundle-crash")
    source_key, dest_key = generate_master_key(), generate_master_key()
    with KeyManager(FilesystemKeyStore({"keys_dir": root / "src"}), source_key) as source:
        for i in range(CLIENTS):
            source.generate(["symmetric", "searchable"], client_id=f"client{i:03d}")
        for i in range(ROTATED):
            source.rotate(f"client/client{i:03d}/symmetric")
        source.generate(["storage"], client_id="client000")
        bundle_digests = digests(root / "src", source_key)
        export_keys(source, None, root / "keys.bundle", root / "keys.secret")
    assert len(bundle_digests) == 2 * CLIENTS + ROTATED + 2
    with KeyManager(FilesystemKeyStore({"keys_dir": root / "dest"}), copy(dest_key)) as dest:
        dest.generate(["searchable"], client_id="client000")  # overlaps: kept
        dest.generate(["symmetric"], client_id="client999")
        dest.generate(["audit-log"])
    own = digests(root / "dest", dest_key)
    fd = os.open(root / "dest.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(dest_key.encryption.bytes())
    imported = {slot: d for slot, d in bundle_digests.items() if slot != ("client000_hmac", None)}
    return Setup(root, dest_key, own, imported, {**imported, **own})


def start_import(setup: Setup, keys_dir: Path, kill_at: str | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, **({"KILL_AT": kill_at} if kill_at else {})}
    arguments = [keys_dir, setup.root / "dest.key", setup.bundle, setup.secret]
    child = subprocess.Popen(
        [sys.executable, "-c", IMPORT_CHILD, *map(str, arguments)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line == "ready\n", child.stderr.read() if child.stderr else line
    return child


def finish(child: subprocess.Popen[str]) -> int:
    child.communicate(timeout=60)
    return child.returncode


def fresh(setup: Setup, target: Path) -> Path:
    shutil.copytree(setup.root / "dest", target, symlinks=True)
    return target


def check_after_kill(setup: Setup, keys_dir: Path) -> str:
    """Check a killed import's destination, recover it, rerun; return "none" or "all"."""
    # right after the kill: every key present decrypts, the destination's own keys untouched
    state = digests(keys_dir, setup.dest_key)
    assert {slot: state.get(slot) for slot in setup.own} == setup.own
    assert all(setup.imported[slot] == d for slot, d in state.items() if slot not in setup.own)
    # the next command of any kind (a read here) finishes a committed import or removes an
    # uncommitted one: then all of it is there, or none, and only Acra's files are left
    FilesystemKeyStore({"keys_dir": keys_dir}).list()
    assert not list(keys_dir.rglob(".keyloader*"))
    recovered = digests(keys_dir, setup.dest_key)
    outcome = "all" if recovered == setup.final else "none"
    if outcome == "none":
        assert recovered == setup.own
    # a rerun finishes: everything imported, nothing lost, no staging left behind
    store = FilesystemKeyStore({"keys_dir": keys_dir})
    with KeyManager(store, copy(setup.dest_key)) as manager:
        report = import_keys(manager, setup.bundle, setup.secret)
    assert report.kept == (f"{keys_dir}/client000_hmac",)
    assert len(report.imported) == (0 if outcome == "all" else len(setup.imported))
    assert digests(keys_dir, setup.dest_key) == setup.final
    assert not list(keys_dir.glob(".keyloader-import-*"))
    assert not list(keys_dir.rglob(".keyloader-tmp-*"))
    assert acra_export_problems(keys_dir, setup.dest_key.encryption.bytes()).problems == []
    return outcome


def test_sigkill_at_random_points(setup: Setup, tmp_path: Path) -> None:
    durations = []  # the fastest of three uninterrupted runs, from "ready" to exit
    for run in range(3):
        calibration = fresh(setup, tmp_path / f"calibration{run}")
        child = start_import(setup, calibration)
        started = time.monotonic()
        assert finish(child) == 0
        durations.append(time.monotonic() - started)
        assert digests(calibration, setup.dest_key) == setup.final
    duration = min(durations)

    rng = random.Random(SEED)
    outcomes = {"none": 0, "all": 0}
    killed = 0
    for trial in range(TRIALS):
        delay = rng.uniform(0, duration)
        keys_dir = fresh(setup, tmp_path / f"trial{trial}")
        child = start_import(setup, keys_dir)
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        killed += finish(child) == -signal.SIGKILL
        outcomes[check_after_kill(setup, keys_dir)] += 1
        shutil.rmtree(keys_dir)
    # most kills interrupted a running import (the step tests below pin each side of the
    # commit point; here about a fifth of the kills land after it)
    assert killed >= TRIALS // 2, (killed, outcomes)
    assert outcomes["none"] >= 3, outcomes


@pytest.mark.parametrize(
    ("kill_at", "outcome"),
    [
        ("rename:1", "none"),  # staged files written, before the manifest is in place
        ("rename:2", "none"),  # manifest written, before the commit marker
        ("replace:1", "all"),  # committed, before the first file is renamed in
        ("replace:100", "all"),  # committed, about half of the files renamed in
        ("rmtree:1", "all"),  # every file renamed in, before the staging is removed
    ],
)
def test_sigkill_at_each_step_of_the_staging(
    setup: Setup, tmp_path: Path, kill_at: str, outcome: str
) -> None:
    keys_dir = fresh(setup, tmp_path / "keys")
    assert finish(start_import(setup, keys_dir, kill_at)) == -signal.SIGKILL
    assert len(list(keys_dir.glob(".keyloader-import-*"))) == 1  # the crash left its stage
    assert check_after_kill(setup, keys_dir) == outcome


def test_a_committed_stage_is_finished_by_any_writer(setup: Setup, tmp_path: Path) -> None:
    """Not only a rerun of the import: a `keys generate` finishes the import first."""
    keys_dir = fresh(setup, tmp_path / "keys")
    assert finish(start_import(setup, keys_dir, "replace:50")) == -signal.SIGKILL
    with KeyManager(FilesystemKeyStore({"keys_dir": keys_dir}), copy(setup.dest_key)) as manager:
        manager.generate(["poison-record-symmetric"])
    state = digests(keys_dir, setup.dest_key)
    del state[(".poison_key/poison_key_sym", None)]
    assert state == setup.final
    assert not list(keys_dir.glob(".keyloader-import-*"))


@pytest.mark.parametrize(
    "manifest",
    [b"not json", b'[["../../elsewhere", "client1_hmac", null]]', b'[["x"]]', b"{}"],
)
def test_an_unreadable_stage_names_its_directory(
    setup: Setup, tmp_path: Path, manifest: bytes
) -> None:
    keys_dir = fresh(setup, tmp_path / "keys")
    stage = keys_dir / ".keyloader-import-0123abcd"
    stage.mkdir(mode=0o700)
    (stage / "complete").write_bytes(b"1\n")
    (stage / "manifest").write_bytes(manifest)
    store = FilesystemKeyStore({"keys_dir": keys_dir})
    with (
        pytest.raises(KeyStoreError, match=r"\.keyloader-import-0123abcd: its manifest"),
        store.lock(),
    ):
        pass
    assert (stage / "complete").exists()  # left for the operator, as the message says
