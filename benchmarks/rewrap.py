"""Master-key rotation: rewrap_keys() against the bare work it must do, and its memory.

Floor, measured in the same run on an identical copy of the store (one process): for every
key file, read it, Secure Cell decrypt + encrypt, write a temp file + fsync + rename over the
file + fsync the directory. rewrap_keys() does that plus a survey pass before its first write
(decrypt everything) and a verification pass after its last (decrypt everything again).
    RATIO rewrap_vs_floor                  target <= 1.5
Memory: peak traced memory (tracemalloc) and peak RSS of a rewrap of 2,000 and of 10,000 keys,
each in a fresh process. Only one plaintext is alive at a time; what grows with the store is
the listing of names (and the store's path cache), a few hundred bytes per key.
    RATIO rewrap_peak_rss_10k_vs_2k        target <= 1.25

Usage: python benchmarks/rewrap.py [--keys N]   (default 10,000; takes about a minute)
"""

from __future__ import annotations

import json
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import ratio

from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader.rewrap import rewrap_keys
from keyloader.secret import SecretBytes
from keyloader.stores.filesystem import FilesystemKeyStore
from keyloader.themis import scell

KEYS = 10_000
SMALL = 2_000
HISTORY_EVERY = 10  # one key in ten has a rotated version (counted in the total)


def build_store(keys_dir: Path, key: MasterKey, count: int) -> list[tuple[Path, bytes]]:
    """``count`` key files sealed with ``key`` (fast: no fsync); returns (path, context) pairs."""
    keys_dir.mkdir(mode=0o700, parents=True)
    files: list[tuple[Path, bytes]] = []
    client = 0
    while len(files) < count:
        cid = f"bench{client:05d}"
        client += 1
        path = keys_dir / f"{cid}_storage_sym"
        targets = [path]
        if client % HISTORY_EVERY == 0 and len(files) + 1 < count:
            history = keys_dir / f"{cid}_storage_sym.old"
            history.mkdir(mode=0o700)
            targets.append(history / "2024-01-02T03:04:05.123456789")
        for target in targets:
            blob = scell.encrypt(key.encryption.buffer, secrets.token_bytes(32), cid.encode())
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, blob)
            os.close(fd)
            files.append((target, cid.encode()))
    return files


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def floor(files: list[tuple[Path, bytes]], old: MasterKey, new: MasterKey) -> None:
    """The bare work: read, decrypt, encrypt, temp + fsync + rename + directory fsync."""
    for path, context in files:
        with open(path, "rb") as file:
            blob = file.read()
        with scell.decrypt(old.encryption.buffer, blob, context) as plain:
            sealed = scell.encrypt(new.encryption.buffer, plain.buffer, context)
        temp = path.parent / f".keyloader-tmp-{secrets.token_hex(8)}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, sealed)
        os.fsync(fd)
        os.close(fd)
        os.replace(temp, path)
        fsync_dir(path.parent)


def rewrap(keys_dir: Path, old: MasterKey, new: MasterKey) -> int:
    store = FilesystemKeyStore({"keys_dir": keys_dir})
    with KeyManager(store, MasterKey(SecretBytes(old.encryption.buffer))) as manager:
        report = rewrap_keys(manager, new)
    assert report.complete
    return report.rewrapped


def _status_kib(field: str) -> int | None:
    """A ``VmRSS``/``VmHWM`` figure of this process from ``/proc/self/status`` (Linux), in KiB."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the peak-RSS mark (VmHWM) to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")
    except OSError:
        return False
    return True


def measure(keys_dir: Path, old_file: Path, new_file: Path, traced: bool) -> dict[str, float]:
    """One rewrap in this (fresh) process: RSS before and at its peak, or peak traced memory.

    The peak-RSS mark is reset just before the rewrap, so imports do not hide it; where that
    is impossible, ``ru_maxrss`` (the peak of the whole process) is reported instead.
    """
    from keyloader.masterkey import master_key_from_raw

    old = master_key_from_raw(old_file.read_bytes(), source="old key")
    new = master_key_from_raw(new_file.read_bytes(), source="new key")
    reset = _reset_peak_rss()
    before = _status_kib("VmRSS") if reset else None
    if traced:
        tracemalloc.start()
    rewrapped = rewrap(keys_dir, old, new)
    peak = tracemalloc.get_traced_memory()[1] if traced else 0
    hwm = _status_kib("VmHWM") if reset else None
    if before is None or hwm is None:
        before = hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: KiB
    return {"keys": rewrapped, "rss_before": before * 1024, "rss_peak": hwm * 1024, "traced": peak}


def measure_in_subprocess(root: Path, count: int, traced: bool) -> dict[str, float]:
    """Build a store of ``count`` keys here, rewrap it in a fresh process, return its figures."""
    keys_dir = root / f"memory-{count}-{int(traced)}"
    with generate_master_key() as old, generate_master_key() as new:
        build_store(keys_dir, old, count)
        for name, key in (("old.key", old), ("new.key", new)):
            (root / name).unlink(missing_ok=True)
            fd = os.open(root / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, key.encryption.bytes())
            os.close(fd)
    command = [sys.executable, __file__, "--measure", str(keys_dir), str(root), str(int(traced))]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    shutil.rmtree(keys_dir)
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    assert result["keys"] == count
    return result


def main(keys: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="keyloader-bench-"))
    old, new = generate_master_key(), generate_master_key()
    try:
        files = build_store(root / "floor", old, keys)
        shutil.copytree(root / "floor", root / "rewrap")
        os.sync()  # both runs start with nothing left to write back
        start = time.perf_counter()
        floor(files, old, new)
        floor_seconds = time.perf_counter() - start
        os.sync()
        start = time.perf_counter()
        rewrapped = rewrap(root / "rewrap", old, new)
        rewrap_seconds = time.perf_counter() - start
        assert rewrapped == keys
    finally:
        shutil.rmtree(root)
        old.close()
        new.close()
    print(f"keys                          {keys}")
    for label, seconds in (
        ("floor: read/scell/write/fsync", floor_seconds),
        ("rewrap_keys()", rewrap_seconds),
    ):
        print(f"{label:<29} {seconds:8.2f} s  {seconds / keys * 1e6:8.1f} us/key")
    root = Path(tempfile.mkdtemp(prefix="keyloader-bench-"))
    try:
        rss = {n: measure_in_subprocess(root, n, traced=False) for n in (SMALL, keys)}
        traced = {n: measure_in_subprocess(root, n, traced=True)["traced"] for n in (SMALL, keys)}
    finally:
        shutil.rmtree(root)
    for n in (SMALL, keys):
        growth = (rss[n]["rss_peak"] - rss[n]["rss_before"]) / 2**20
        print(
            f"memory, {n:>6} keys          peak RSS {rss[n]['rss_peak'] / 2**20:6.1f} MiB "
            f"(+{growth:.1f} MiB during the rewrap), peak traced {traced[n] / 2**20:5.2f} MiB"
        )
    per_key = (traced[keys] - traced[SMALL]) / (keys - SMALL)
    print(
        f"traced growth per key         {per_key:8.0f} bytes: the listing of names and the "
        "store's path cache (no blob, no plaintext)"
    )
    ratio("rewrap_vs_floor", rewrap_seconds / floor_seconds, 1.5)
    ratio("rewrap_peak_rss_10k_vs_2k", rss[keys]["rss_peak"] / rss[SMALL]["rss_peak"], 1.25)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--measure":
        directory = Path(sys.argv[3])
        figures = measure(
            Path(sys.argv[2]), directory / "old.key", directory / "new.key", sys.argv[4] == "1"
        )
        print(json.dumps(figures))
    elif len(sys.argv) == 3 and sys.argv[1] == "--keys":
        main(int(sys.argv[2]))
    else:
        main(KEYS)
