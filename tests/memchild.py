"""A service that embeds keyloader, for the memory tests (tests/core/test_memory_residue.py).

Run as ``python memchild.py KEYS_DIR MODE CACHE_SIZE``: it opens the store with the
env provider, runs ``ROUNDS`` rounds of every data operation and of ``use()`` (an
AES-GCM operation with the key inside the block, as an application would), in one
thread, in 8 threads (MODE ``threads``) or through ``keyloader.aio`` (MODE ``aio``),
then prints one JSON line with the values of its last round and waits on stdin. MODE
``admin`` instead rewraps the store, exports it and imports the bundle into a new store
(the paths it made are its JSON line). It handles SIGUSR1 (the scanner's signal to push
registers into memory).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import keyloader
import keyloader.aio

ROUNDS = 200
SYM, STORAGE = "client/client1/symmetric", "client/client1/storage"
NONCE = bytes(12)
LARGE = bytes(range(256)) * 4  # AES-GCM over more than 256 bytes takes other code paths


def one_round(keys: keyloader.KeyManager) -> dict[str, str]:
    for key_id in (SYM, STORAGE, "client/client1/searchable"):
        with keys.use(key_id) as key:
            AESGCM(key.view[:32]).encrypt(NONCE, b"application data", None)
    with keys.read(SYM) as key:  # the caller's own copy, wiped by the block
        AESGCM(key.view).encrypt(NONCE, b"application data", None)
    block = keys.encrypt(SYM, b"a row", searchable=True)
    struct = keys.encrypt(STORAGE, b"a row")
    assert keys.decrypt(SYM, block, searchable=True) == b"a row"
    assert keys.decrypt(STORAGE, struct) == b"a row"
    assert keys.decrypt_many(SYM, keys.encrypt_many(SYM, [b"x", b"y"])) == [b"x", b"y"]
    keys.search_hash("client1", b"a row")
    large = keys.encrypt(SYM, LARGE)
    assert keys.decrypt(SYM, large) == LARGE
    poison = keys.make_poison_record("acrablock")
    assert keys.is_poison_record(poison)
    assert keys.is_poison_record(keys.make_poison_record("acrastruct"))
    return {
        "acrablock": block.hex(),
        "acrastruct": struct.hex(),
        "poison": poison.hex(),
        "large": large.hex(),
    }


async def aio_rounds(keys_dir: str, cache_size: int) -> dict[str, str]:
    last: dict[str, str] = {}
    async with keyloader.aio.open_keystore(keys_dir=keys_dir, cache_size=cache_size) as keys:
        for _ in range(ROUNDS):
            async with keys.use(SYM) as key:
                AESGCM(key.view).encrypt(NONCE, b"application data", None)
            block = await keys.encrypt(SYM, b"a row", searchable=True)
            struct = await keys.encrypt(STORAGE, b"a row")
            assert await keys.decrypt(SYM, block, searchable=True) == b"a row"
            assert await keys.decrypt(STORAGE, struct) == b"a row"
            large = await keys.encrypt(SYM, LARGE)
            assert await keys.decrypt(SYM, large) == LARGE
            poison = await keys.make_poison_record("acrablock")
            assert await keys.is_poison_record(poison)
            last = {
                "acrablock": block.hex(),
                "acrastruct": struct.hex(),
                "poison": poison.hex(),
                "large": large.hex(),
            }
    return last


def administer(keys_dir: str) -> dict[str, str]:
    """Rewrap the store to the key in DST_ACRA_MASTER_KEY, export it to a bundle and
    import that into a new store, as an operator's tool would in one process."""
    from keyloader.api import load_rewrap_target
    from keyloader.bundle import export_keys, import_keys
    from keyloader.keystore import KeyManager
    from keyloader.masterkey import MasterKey
    from keyloader.rewrap import rewrap_keys
    from keyloader.secret import SecretBytes
    from keyloader.stores.filesystem import FilesystemKeyStore

    work = os.path.dirname(keys_dir)
    out = {
        "bundle": os.path.join(work, "keys.bundle"),
        "secret": os.path.join(work, "keys.secret"),
        "imported": os.path.join(work, "imported", ".acrakeys"),
    }
    # a rewrap target takes no options from the environment: its scrub is asked here
    scrub = os.environ.get("KEYLOADER_ENV_SCRUB") == "1"
    settings = keyloader.resolve(keys_dir=keys_dir, rewrap_to_options={"scrub": scrub})
    with load_rewrap_target(settings, "env") as new_key:
        with keyloader.open_keystore(settings) as manager:
            rewrap_keys(manager, new_key)

        def with_new_key(directory: str) -> KeyManager:
            store = FilesystemKeyStore({"keys_dir": directory})
            return KeyManager(store, MasterKey(SecretBytes(new_key.encryption.buffer)))

        with with_new_key(keys_dir) as manager:
            export_keys(manager, None, out["bundle"], out["secret"])
        with with_new_key(out["imported"]) as manager:
            import_keys(manager, out["bundle"], out["secret"])
    return out


def main() -> None:
    keys_dir, mode, cache_size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    signal.signal(signal.SIGUSR1, lambda *_: None)
    last: dict[str, Any] = {}
    if mode == "admin":
        last = administer(keys_dir)
        keys = None
    elif mode == "aio":
        last = asyncio.run(aio_rounds(keys_dir, cache_size))
        keys = None
    else:
        keys = keyloader.open_keystore(keys_dir=keys_dir, cache_size=cache_size)
        if mode == "threads":
            results: list[dict[str, str]] = []

            def work() -> None:
                for _ in range(ROUNDS // 8):
                    results.append(one_round(keys))

            threads = [threading.Thread(target=work) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            last = results[-1]
        else:
            for _ in range(ROUNDS):
                last = one_round(keys)
    last["pid"] = os.getpid()
    print(json.dumps(last), flush=True)
    if keys is not None:  # the last things before waiting, as a request handler's
        keys.decrypt(SYM, bytes.fromhex(last["acrablock"])[33:])
        with keys.use(SYM) as key:
            AESGCM(key.view).encrypt(NONCE, b"application data", None)
    sys.stdin.readline()
    if keys is not None:
        keys.close()


if __name__ == "__main__":
    main()
