"""A service embedding keyloader: the default road, threads, audit observers, asyncio.

Floors, measured in the same run:
- use() through the default `keyloader.open_keystore(keys_dir=...)` (env provider,
  filesystem store, the default cache) vs a bare `scell.decrypt` of the same blob
                                                                        (target <= 1.5)
- 8 threads sharing one KeyManager: seconds per use (aggregate) vs the same manager on
  one thread; the inverse of "aggregate uses/s >= 0.8x one thread"     (target <= 1.25)
- use() with 6 no-op audit observers that declare the admin actions they want
  (keyloader_audit_actions) vs no observer                              (target <= 1.2)
- keyloader.aio `async with keys.use()` vs the sync `with keys.use()`   (target <= 1.5)

Also shown (no target): 6 observers that take every action, synchronously.

Usage: python benchmarks/embedding.py [ROUNDS]   (default 15)
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _common import interleaved_medians, ratio, report

import keyloader
import keyloader.aio
from keyloader.audit import AuditEvent
from keyloader.masterkey import generate_master_key
from keyloader.plugins import make_plugin_manager
from keyloader.themis import scell
from keyloader_env import plugin as env_plugin

KID = "client/bench-client/symmetric"
CALLS = 400
THREADS = 8
PER_THREAD = 4000


class Observer:
    def __init__(self, actions: list[str] | None) -> None:
        self.actions = actions

    @keyloader.hookimpl
    def keyloader_audit_actions(self) -> list[str] | None:
        return self.actions

    @keyloader.hookimpl
    def keyloader_audit_event(self, event: AuditEvent) -> None:
        pass


def open_with(keys_dir: Path, observers: list[Observer]) -> keyloader.KeyManager:
    pm = make_plugin_manager(autoload=False, env={}, plugins=[env_plugin, *observers])
    return keyloader.open_keystore(keys_dir=keys_dir, plugin_manager=pm)


def threaded_seconds_per_use(keys: keyloader.KeyManager, threads: int) -> float:
    def work() -> None:
        for _ in range(PER_THREAD):
            with keys.use(KID):
                pass

    workers = [threading.Thread(target=work) for _ in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return (time.perf_counter() - start) / (threads * PER_THREAD)


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    keys_dir = Path(tempfile.mkdtemp(prefix="keyloader-bench-embed-")) / ".acrakeys"
    master = generate_master_key()
    with master.to_text() as text:
        os.environ["ACRA_MASTER_KEY"] = text.bytes().decode()
    for name in ("KEYLOADER_CACHE_SIZE", "KEYLOADER_CACHE_TTL"):
        os.environ.pop(name, None)
    with keyloader.open_keystore(keys_dir=keys_dir) as setup:
        setup.generate(["symmetric"], client_id="bench-client")
    blob = (keys_dir / "bench-client_storage_sym").read_bytes()
    mk = master.encryption.bytes()

    default = keyloader.open_keystore(keys_dir=keys_dir)  # the road a service takes
    none = open_with(keys_dir, [])
    admin = open_with(keys_dir, [Observer(["key_generated", "key_rotated"]) for _ in range(6)])
    everything = open_with(keys_dir, [Observer(None) for _ in range(6)])

    def bare() -> None:
        scell.decrypt(mk, blob, b"bench-client").wipe()

    def use(keys: keyloader.KeyManager) -> Any:
        def one() -> None:
            with keys.use(KID):
                pass

        return one

    medians = interleaved_medians(
        {
            "bare scell.decrypt": bare,
            "default open_keystore use()": use(default),
            "use(), no observer": use(none),
            "use(), 6 admin observers": use(admin),
            "(use(), 6 observers of all)": use(everything),
        },
        calls=CALLS,
        rounds=rounds,
    )

    async def aio_medians() -> dict[str, float]:
        async with keyloader.aio.open_keystore(keys_dir=keys_dir) as keys:
            async with keys.use(KID):  # cached from here on
                pass
            sync = keys.sync
            samples: dict[str, list[float]] = {"sync use()": [], "aio use()": []}
            for _ in range(rounds):
                start = time.perf_counter()
                for _ in range(CALLS):
                    with sync.use(KID):
                        pass
                samples["sync use()"].append((time.perf_counter() - start) / CALLS)
                start = time.perf_counter()
                for _ in range(CALLS):
                    async with keys.use(KID):
                        pass
                samples["aio use()"].append((time.perf_counter() - start) / CALLS)
            return {name: sorted(values)[len(values) // 2] for name, values in samples.items()}

    aio = asyncio.run(aio_medians())
    medians.update(aio)

    one, eight = [], []
    for _ in range(max(3, rounds // 3)):
        one.append(threaded_seconds_per_use(default, 1))
        eight.append(threaded_seconds_per_use(default, THREADS))
    one_thread, eight_threads = sorted(one)[len(one) // 2], sorted(eight)[len(eight) // 2]
    medians["use(), 1 thread"] = one_thread
    medians[f"use(), {THREADS} threads (aggregate)"] = eight_threads
    for keys in (default, none, admin, everything):
        keys.close()

    report(medians)
    print(
        f"aggregate uses/s, {THREADS} threads vs one: {one_thread / eight_threads:.2f} "
        f"(the issue's target: >= 0.8)"
    )
    ratio(
        "default_use_vs_scell",
        medians["default open_keystore use()"] / medians["bare scell.decrypt"],
        1.5,
    )
    ratio("threads8_time_per_use_vs_one", eight_threads / one_thread, 1.25)
    ratio(
        "observers6_vs_none",
        medians["use(), 6 admin observers"] / medians["use(), no observer"],
        1.2,
    )
    ratio("aio_use_vs_sync", medians["aio use()"] / medians["sync use()"], 1.5)


if __name__ == "__main__":
    main()
