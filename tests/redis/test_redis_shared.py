"""Two processes acting as two application servers sharing one Redis key store.

One writes (rotates keys, or rewraps them to a new master key) while the other
reads through ``KeyManager.use()``: every read succeeds, no key is lost, and
every key a reader saw is one the store still holds (no torn reads).
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
from pathlib import Path

from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader.secret import SecretBytes
from keyloader_redis import RedisKeyStore

from .conftest import RedisServer

KEY_ID = "client/client1/symmetric"
ROTATIONS = 15

WORKER = r"""
import base64, hashlib, os, sys
from pathlib import Path
from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey
from keyloader.secret import SecretBytes
from keyloader_redis import RedisKeyStore

def key(var):
    return MasterKey(SecretBytes(base64.b64decode(os.environ[var])))

role, done = sys.argv[1], Path(sys.argv[2])
store = RedisKeyStore({"url": os.environ["URL"], "keys_dir": os.environ["PREFIX"]})
key_ids = os.environ["KEY_IDS"].split(",")
if role == "rotate":
    with KeyManager(store, key("OLD")) as keys:
        for _ in range(int(os.environ["ROTATIONS"])):
            keys.rotate(key_ids[0])
    done.touch()
elif role == "rewrap":
    from keyloader.rewrap import rewrap_keys
    with KeyManager(store, key("OLD")) as keys:
        report = rewrap_keys(keys, key("NEW"))
    assert report.complete, report
    done.touch()
else:  # read until the writer is done, recording what was seen
    current = key("NEW") if "NEW" in os.environ else key("OLD")
    previous = key("OLD") if "NEW" in os.environ else None
    seen, reads = set(), 0
    with KeyManager(store, current, previous=previous) as keys:
        while not done.exists() or reads < 50:
            for kid in key_ids:
                with keys.use(kid) as secret:
                    assert len(secret) == 32
                    seen.add(hashlib.sha256(secret.bytes()).hexdigest())
                reads += 1
    Path(sys.argv[3]).write_text("\n".join(sorted(seen)))
    print(reads)
"""


def _b64(key: MasterKey) -> str:
    return base64.b64encode(key.encryption.bytes()).decode()


def _run_pair(tmp_path: Path, env: dict[str, str], writer: str) -> tuple[set[str], int]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    done, seen_file = tmp_path / "done", tmp_path / "seen"
    full_env = {**os.environ, **env}
    reader = subprocess.Popen(
        [sys.executable, str(script), "read", str(done), str(seen_file)],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    writing = subprocess.run(
        [sys.executable, str(script), writer, str(done)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if writing.returncode != 0:
        done.touch()
    out, err = reader.communicate(timeout=60)
    assert writing.returncode == 0, writing.stderr
    assert reader.returncode == 0, err
    return set(seen_file.read_text().split()), int(out)


def _store(server: RedisServer, prefix: str) -> RedisKeyStore:
    return RedisKeyStore({"url": server.url, "keys_dir": prefix})


def test_one_server_rotates_while_another_reads(
    redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    master = generate_master_key()
    with KeyManager(
        _store(redis_server, prefix), MasterKey(SecretBytes(master.encryption.bytes()))
    ) as keys:
        keys.generate(["symmetric"], client_id="client1")
    env = {
        "URL": redis_server.url,
        "PREFIX": prefix,
        "KEY_IDS": KEY_ID,
        "OLD": _b64(master),
        "ROTATIONS": str(ROTATIONS),
    }
    seen, reads = _run_pair(tmp_path, env, "rotate")
    with KeyManager(
        _store(redis_server, prefix), MasterKey(SecretBytes(master.encryption.bytes()))
    ) as keys:
        versions = keys.list(rotated=True)
        assert len(versions) == ROTATIONS + 1  # nothing lost: every old key is in history
        held = set()
        for info in versions:
            assert info.index is not None
            with keys.use(KEY_ID, index=info.index) as secret:
                held.add(hashlib.sha256(secret.bytes()).hexdigest())
    assert len(held) == ROTATIONS + 1
    assert seen <= held  # every key the reader got is a real version of the key
    assert reads >= 50


def test_one_server_rewraps_while_another_reads_with_previous_key(
    redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    old, new = generate_master_key(), generate_master_key()
    clients = [f"client{i:02d}" for i in range(12)]
    with KeyManager(
        _store(redis_server, prefix), MasterKey(SecretBytes(old.encryption.bytes()))
    ) as keys:
        for client in clients:
            keys.generate(["symmetric"], client_id=client)
            keys.rotate(f"client/{client}/symmetric")
        before = set()
        for client in clients:
            with keys.use(f"client/{client}/symmetric") as secret:
                before.add(hashlib.sha256(secret.bytes()).hexdigest())
    key_ids = [f"client/{client}/symmetric" for client in clients]
    env = {
        "URL": redis_server.url,
        "PREFIX": prefix,
        "KEY_IDS": ",".join(key_ids),
        "OLD": _b64(old),
        "NEW": _b64(new),
    }
    seen, _ = _run_pair(tmp_path, env, "rewrap")
    assert seen == before  # same keys, whichever master key sealed them at the time
    with KeyManager(
        _store(redis_server, prefix), MasterKey(SecretBytes(new.encryption.bytes()))
    ) as keys:
        results = keys.verify()
    assert len(results) == 2 * len(clients)
    assert all(result.ok for result in results), [r for r in results if not r.ok]
