"""Acra keystore v2 against v1 in the same run: use(), and a migration against a rewrap.

- use() on a v2 ring vs use() on the same key in v1, cached (the default) and uncached
  (cache_size=0: every use reads, verifies and parses the ring, or reads and unseals the
  file)                                                              targets <= 1.3
- keys migrate of a 10,000-key v1 store into v2 vs keys rewrap of an identical copy of
  that v1 store (both read and re-seal every key, write it atomically and fsync)
                                                                     target <= 1.5

Usage: python benchmarks/keystore_v2.py [--keys N]   (default 10,000)
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import interleaved_medians, ratio, report
from rewrap import build_store

from keyloader.keyrings.directory import RingDirectory
from keyloader.keyrings.engine import RingKeyManager
from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader.migrate import migrate_keys
from keyloader.rewrap import rewrap_keys
from keyloader.secret import SecretBytes
from keyloader.stores.filesystem import FilesystemKeyStore

KEY_ID = "client/bench00001/symmetric"


def _copy(key: MasterKey) -> MasterKey:
    signature = SecretBytes(key.signature.buffer) if key.signature is not None else None
    return MasterKey(SecretBytes(key.encryption.buffer), signature)


def uses(work: Path) -> None:
    v1_key, v2_key = generate_master_key(), generate_master_key("v2")
    build_store(work / "v1", v1_key, 20)
    with KeyManager(FilesystemKeyStore({"keys_dir": work / "v1"}), _copy(v1_key)) as source:
        migrate_keys(source, work / "v2", "v2", v2_key)

    def v1(cache: int) -> KeyManager:
        store = FilesystemKeyStore({"keys_dir": work / "v1"})
        return KeyManager(store, _copy(v1_key), cache_size=cache)

    def v2(cache: int) -> RingKeyManager:
        return RingKeyManager(RingDirectory(work / "v2"), _copy(v2_key), cache_size=cache)

    managers = {
        "v1 cached": v1(16),
        "v2 cached": v2(16),
        "v1 uncached": v1(0),
        "v2 uncached": v2(0),
    }

    def use(name: str) -> None:
        with managers[name].use(KEY_ID):
            pass

    medians = interleaved_medians(
        {name: (lambda name=name: use(name)) for name in managers}, calls=2000, rounds=7
    )
    report(medians)
    ratio("use_cached_v2_vs_v1", medians["v2 cached"] / medians["v1 cached"], 1.3)
    ratio("use_uncached_v2_vs_v1", medians["v2 uncached"] / medians["v1 uncached"], 1.3)
    for manager in managers.values():
        manager.close()


def migration(work: Path, count: int) -> None:
    old, new_v1, new_v2 = generate_master_key(), generate_master_key(), generate_master_key("v2")
    build_store(work / "source", old, count)
    shutil.copytree(work / "source", work / "rewrapped")
    start = time.perf_counter()
    with KeyManager(FilesystemKeyStore({"keys_dir": work / "rewrapped"}), _copy(old)) as keys:
        rewrap_keys(keys, new_v1)
    rewrap_seconds = time.perf_counter() - start
    start = time.perf_counter()
    with KeyManager(FilesystemKeyStore({"keys_dir": work / "source"}), _copy(old)) as keys:
        migrate_keys(keys, work / "migrated", "v2", new_v2)
    migrate_seconds = time.perf_counter() - start
    print(f"rewrap of {count} keys           {rewrap_seconds:10.2f} s")
    print(f"migrate of {count} keys v1 -> v2 {migrate_seconds:10.2f} s")
    ratio("migrate_v1_to_v2_vs_rewrap", migrate_seconds / rewrap_seconds, 1.5)


def main() -> None:
    count = int(sys.argv[sys.argv.index("--keys") + 1]) if "--keys" in sys.argv else 10_000
    with tempfile.TemporaryDirectory(prefix="keyloader-bench-v2-") as work:
        uses(Path(work) / "use")
        migration(Path(work) / "migrate", count)


if __name__ == "__main__":
    main()
