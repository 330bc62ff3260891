"""The ``redis`` store on Sentinel and on Cluster, and many application processes at once.

Starts real servers on loopback with the test suite's helpers (tests/redis): one master,
one replica and three sentinels; a three-master cluster. For each topology:

- use() through the store vs a raw GET + base64 decode + bare `scell.decrypt` of the
  same key through a plain redis-py client of the same topology      (target <= 1.3)
- N application processes (2, 4, 8) using keys of the same store while another
  process rotates one every 0.2 s: aggregate uses/s and the p99 latency of use()
  (printed, no target: they depend on the machine; 2 cores here)

Usage: python benchmarks/redis_topologies.py [ROUNDS]   (default 15)
"""

from __future__ import annotations

import base64
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' server helpers

from _common import interleaved_medians, ratio, report
from redis.cluster import RedisCluster
from redis.sentinel import Sentinel

from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, generate_master_key, parse_master_key
from keyloader.secret import SecretBytes
from keyloader.themis import scell
from keyloader_redis import RedisKeyStore
from tests.redis.clusters import start_cluster
from tests.redis.sentinels import SERVICE, start_sentinel_group

KIDS = [f"client/bench{n}/symmetric" for n in range(4)]
CALLS = 200
SECONDS = 2.0
ROTATE_EVERY = 0.2


def _worker(options: dict[str, Any], text: str, seconds: float, results: Any) -> None:
    with parse_master_key(text) as master:
        store = RedisKeyStore(options)
        latencies: list[float] = []
        with KeyManager(store, MasterKey(SecretBytes(master.encryption.buffer))) as keys:
            end = time.monotonic() + seconds
            index = 0
            while time.monotonic() < end:
                start = time.perf_counter()
                with keys.use(KIDS[index % len(KIDS)]):
                    pass
                latencies.append(time.perf_counter() - start)
                index += 1
        results.put(latencies)


def _rotator(options: dict[str, Any], text: str, seconds: float) -> None:
    with parse_master_key(text) as master:
        store = RedisKeyStore(options)
        with KeyManager(store, MasterKey(SecretBytes(master.encryption.buffer))) as keys:
            end = time.monotonic() + seconds
            index = 0
            while time.monotonic() < end:
                keys.rotate(KIDS[index % len(KIDS)])
                index += 1
                time.sleep(ROTATE_EVERY)


def many_processes(options: dict[str, Any], text: str, count: int) -> tuple[float, float]:
    """Aggregate uses/s and p99 latency (s) of ``count`` processes while one rotates."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [
        context.Process(target=_worker, args=(options, text, SECONDS, results))
        for _ in range(count)
    ]
    rotator = context.Process(target=_rotator, args=(options, text, SECONDS))
    for process in (*workers, rotator):
        process.start()
    latencies: list[float] = []
    for _ in workers:
        latencies += results.get(timeout=120)
    for process in (*workers, rotator):
        process.join(60)
    if any(process.exitcode != 0 for process in (*workers, rotator)):
        raise SystemExit("an application process failed")
    p99 = statistics.quantiles(latencies, n=100)[98]
    return len(latencies) / SECONDS, p99


def measure(name: str, options: dict[str, Any], raw: Any, rounds: int) -> None:
    with generate_master_key() as master:
        text = master.to_text().bytes().decode()
        mk = master.encryption.bytes()
        store = RedisKeyStore(options)
        with KeyManager(store, MasterKey(SecretBytes(master.encryption.buffer))) as keys:
            for kid in KIDS:
                keys.generate(["symmetric"], client_id=kid.split("/")[1])
            raw_key = store.redis_key("bench0_storage_sym")

            def raw_get_decrypt() -> None:
                blob = base64.b64decode(raw.get(raw_key))
                scell.decrypt(mk, blob, b"bench0").wipe()

            def use() -> None:
                with keys.use(KIDS[0]):
                    pass

            medians = interleaved_medians(
                {f"{name}: raw GET + decrypt": raw_get_decrypt, f"{name}: store use()": use},
                calls=CALLS,
                rounds=rounds,
            )
        report(medians)
        for count in (2, 4, 8):
            rate, p99 = many_processes(options, text, count)
            print(
                f"{name}: {count} processes + 1 rotating: {rate:10.0f} uses/s, "
                f"p99 {p99 * 1e3:.2f} ms"
            )
        ratio(
            f"redis_{name}_use_vs_raw_get_decrypt",
            medians[f"{name}: store use()"] / medians[f"{name}: raw GET + decrypt"],
            1.3,
        )


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    workdir = Path(tempfile.mkdtemp(prefix="keyloader-bench-redis-"))
    os.environ.pop("ACRA_MASTER_KEY", None)
    group = start_sentinel_group(workdir / "sentinel")
    try:
        options = {"sentinels": group.addresses, "service_name": SERVICE, "keys_dir": ".acrakeys"}
        sentinel = Sentinel([("127.0.0.1", port) for port in group.sentinel_ports])
        raw = sentinel.master_for(SERVICE)
        measure("sentinel", options, raw, rounds)
        raw.close()
    finally:
        group.stop()
    cluster = start_cluster(workdir / "cluster")
    try:
        options = {"cluster": True, "url": cluster.url, "keys_dir": "{acrakeys}"}
        raw_cluster = RedisCluster(host="127.0.0.1", port=cluster.ports[0])
        measure("cluster", options, raw_cluster, rounds)
        raw_cluster.close()
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
