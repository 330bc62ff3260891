"""Eight threads share one KeyManager while other processes rotate keys and rewrap the store.

The service opens the store once (the default road: cache on, env provider reading
a key file, ``auto_reload``) and its threads call ``use()`` without pause. Meanwhile
real ``keyloader`` processes rotate a key, then the operator's rewrap moves the
store to a new master key (new key file first, then ``keys rewrap``), then more
rotations run under the new key. Checked: no thread ever fails; after each
rotation completes, the very next ``use()`` gives the new key; every value any
thread saw is one the store really held (current or history): nothing torn.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import defaultdict
from pathlib import Path

import pytest

import keyloader
from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, generate_master_key, write_master_key_file
from keyloader.secret import SecretBytes
from keyloader.stores.filesystem import FilesystemKeyStore

from ..keytext import text_of

KEYLOADER = str(Path(sys.executable).with_name("keyloader"))
KIDS = [f"client/client{n}/symmetric" for n in (1, 2, 3)]
THREADS = 8
ROTATIONS = 4


def disk_manager(keys_dir: Path, master: MasterKey) -> KeyManager:
    """A second, uncached manager: what the store holds right now."""
    store = FilesystemKeyStore({"keys_dir": keys_dir})
    return KeyManager(store, MasterKey(SecretBytes(master.encryption.buffer)), cache_size=0)


def cli(keys_dir: Path, master: MasterKey, *args: str, **env: str) -> None:
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ACRA_", "DST_"))},
        "ACRA_MASTER_KEY": text_of(master),
        **env,
    }
    result = subprocess.run(
        [KEYLOADER, "--keys-dir", str(keys_dir), *args],
        capture_output=True,
        env=environment,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_threads_rotations_and_a_rewrap_by_other_processes(tmp_path: Path) -> None:
    keys_dir = tmp_path / ".acrakeys"
    key_file = tmp_path / "master.key"
    with generate_master_key() as old, generate_master_key() as new:
        write_master_key_file(old, key_file)
        service = keyloader.open_keystore(
            keys_dir=keys_dir, provider_options={"file": str(key_file)}, auto_reload=True
        )
        with service:
            assert service._cache is not None
            for kid in KIDS:
                service.generate(["symmetric"], client_id=kid.split("/")[1])
            stop = threading.Event()
            errors: list[BaseException] = []
            seen: dict[str, set[bytes]] = defaultdict(set)
            uses = [0] * THREADS

            def worker(index: int) -> None:
                while not stop.is_set():
                    for kid in KIDS:
                        try:
                            with service.use(kid) as key:
                                seen[kid].add(key.bytes())
                        except BaseException as exc:
                            errors.append(exc)
                            return
                        uses[index] += 1

            threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
            for thread in threads:
                thread.start()

            def check_next_use(master: MasterKey) -> None:
                with disk_manager(keys_dir, master) as disk:
                    for kid in KIDS:
                        with disk.use(kid) as stored, service.use(kid) as served:
                            assert served.bytes() == stored.bytes(), f"stale {kid}"

            try:
                for round_ in range(ROTATIONS):
                    cli(keys_dir, old, "keys", "rotate", KIDS[round_ % len(KIDS)])
                    check_next_use(old)
                write_master_key_file(new, key_file, force=True)  # the new key first
                cli(
                    keys_dir,
                    old,
                    "keys",
                    "rewrap",
                    "--to-provider",
                    "env",
                    DST_ACRA_MASTER_KEY=text_of(new),
                )
                check_next_use(new)
                assert service.fingerprint == new.fingerprint
                for round_ in range(ROTATIONS):
                    cli(keys_dir, new, "keys", "rotate", KIDS[round_ % len(KIDS)])
                    check_next_use(new)
            finally:
                stop.set()
                for thread in threads:
                    thread.join(30)
            assert errors == [], f"{len(errors)} uses failed, first: {errors[0]!r}"
            assert all(count > 100 for count in uses), f"a thread barely ran: {uses}"

            with disk_manager(keys_dir, new) as disk:
                for kid in KIDS:
                    held = set()
                    for info in disk.list(rotated=True):
                        if info.key_id == kid and info.index:
                            held.add(disk.read(kid, info.index).bytes())
                    assert seen[kid] <= held, f"a value of {kid} the store never held"
                    assert len(seen[kid]) >= 2
