"""Keypairs on the Redis store: Acra's layout for both halves and both histories."""

from __future__ import annotations

import base64
from collections.abc import Callable

from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader.secret import SecretBytes
from keyloader.themis import keys as themis_keys
from keyloader_redis import RedisKeyStore

from .conftest import RedisServer

STORAGE = "client/client1/storage"


def test_generate_rotate_verify_destroy_a_keypair_on_redis(
    redis_server: RedisServer, prefix: str, make_store: Callable[..., RedisKeyStore]
) -> None:
    with generate_master_key() as key:
        manager = KeyManager(make_store(), MasterKey(SecretBytes(key.encryption.buffer)))
        with manager:
            manager.generate(["storage"], client_id="client1")
            manager.generate(["poison-record"])
            manager.rotate(STORAGE)
            assert all(r.ok for r in manager.verify())
            rows = [(i.key_id, i.index, i.state) for i in manager.list(rotated=True)]
            assert (STORAGE, 2, "public") in rows
            raw = redis_server.client()
            try:
                names = sorted(k.decode() for k in raw.scan_iter(match=f"{prefix}/*"))
                public = base64.b64decode(raw.get(f"{prefix}/client1_storage.pub"))
            finally:
                raw.close()
            history = [n for n in names if ".old/" in n]
            assert len(history) == 2
            [private_ts] = [n.rsplit("/", 1)[1] for n in history if "_storage.old/" in n]
            [public_ts] = [n.rsplit("/", 1)[1] for n in history if "_storage.pub.old/" in n]
            assert private_ts == public_ts  # one timestamp for both halves
            with manager.use(STORAGE) as private:
                assert themis_keys.public_of(private) == public
            manager.destroy(STORAGE, index=2)
            manager.destroy(STORAGE)
            left = {b.name for b in manager.store.list()}
            assert not {n for n in left if n.startswith("client1_storage")}
            assert {".poison_key/poison_key", ".poison_key/poison_key.pub"} <= left
