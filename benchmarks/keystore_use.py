"""KeyManager.use() against a bare Secure Cell decrypt, with and without the cache.

Floors, measured in the same run:
- cached use()   vs a bare `scell.decrypt` loop of the same blob      (target <= 1.25)
- uncached use() vs a raw file read + bare `scell.decrypt`             (target <= 1.5)
- the price of safety: the default `open_keystore()` + `use()` (secret pages, register
  scrubbing) vs a naive unseal of the same file's bytes (`hmac.digest` + `AESGCM.decrypt`,
  nothing wiped)                                                        (target <= 1.5)
  Printed beside it, not compared: the same cached use() on a memory store, whose revision
  token is a counter, and the filesystem's revision check alone, to show what the per-use
  `statx` (rotations seen on the next use) costs on this machine.
"""

from __future__ import annotations

import base64
import hmac
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import interleaved_medians, ratio, report
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import keyloader
from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader.secret import SecretBytes
from keyloader.stores import MemoryKeyStore
from keyloader.stores.filesystem import FilesystemKeyStore
from keyloader.themis import scell

KEY_ID = "client/bench-client/symmetric"


def main() -> None:
    keys_dir = Path(tempfile.mkdtemp(prefix="keyloader-bench-")) / ".acrakeys"
    master = generate_master_key()
    mk = master.encryption.bytes()

    def manager(cache_size: int) -> KeyManager:
        store = FilesystemKeyStore({"keys_dir": keys_dir, "lock_timeout": 30.0})
        return KeyManager(store, MasterKey(SecretBytes(mk)), cache_size=cache_size)

    with manager(0) as setup:
        setup.generate(["symmetric"], client_id="bench-client")
    path = keys_dir / "bench-client_storage_sym"
    blob = path.read_bytes()
    context = b"bench-client"

    cached, uncached = manager(16), manager(0)
    os.environ["ACRA_MASTER_KEY"] = base64.b64encode(mk).decode()
    default = keyloader.open_keystore(keys_dir=keys_dir)
    naive_prefix = b"\x00\x00\x00\x01Themis secure cell message key\x00" + blob[12:16] + context

    def naive_unseal() -> bytes:
        message_key = hmac.digest(mk, naive_prefix, "sha256")
        return AESGCM(message_key).decrypt(blob[16:28], blob[44:] + blob[28:44], context)

    def use_default() -> None:
        with default.use(KEY_ID):
            pass

    memory_store = MemoryKeyStore({})
    memory_store.create(path.name, blob)  # the same sealed key, in a store without statx
    in_memory = KeyManager(memory_store, MasterKey(SecretBytes(mk)))

    def use_in_memory() -> None:
        with in_memory.use(KEY_ID):
            pass

    def bare_decrypt() -> None:
        scell.decrypt(mk, blob, context).wipe()

    def read_and_decrypt() -> None:
        with open(path, "rb") as fh:
            data = fh.read()
        scell.decrypt(mk, data, context).wipe()

    def use_cached() -> None:
        with cached.use(KEY_ID):
            pass

    def use_uncached() -> None:
        with uncached.use(KEY_ID):
            pass

    medians = interleaved_medians(
        {
            "floor: scell.decrypt": bare_decrypt,
            "use() cached": use_cached,
            "floor: read + decrypt": read_and_decrypt,
            "use() uncached": use_uncached,
            "floor: naive unseal": naive_unseal,
            "open_keystore() use()": use_default,
            "cached use(), memory store": use_in_memory,
            "revision check (statx)": lambda: default.store.revision(path.name),
        },
        calls=2000,
        rounds=9,
    )
    report(medians)
    ratio("use_cached_vs_scell", medians["use() cached"] / medians["floor: scell.decrypt"], 1.25)
    ratio(
        "use_uncached_vs_read_scell",
        medians["use() uncached"] / medians["floor: read + decrypt"],
        1.5,
    )
    ratio(
        "default_use_vs_naive_unseal",
        medians["open_keystore() use()"] / medians["floor: naive unseal"],
        1.5,
    )
    cached.close()
    uncached.close()
    default.close()
    in_memory.close()
    master.close()


if __name__ == "__main__":
    main()
