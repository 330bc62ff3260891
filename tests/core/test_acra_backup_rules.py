"""The keys directory keyloader leaves passes Acra's backup rules (tests/acrabackup.py)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader.secret import SecretBytes
from keyloader.stores import FilesystemKeyStore
from keyloader.themis import scell

from ..acrabackup import acra_context, acra_export_problems


def manager(keys: Path, key: MasterKey) -> KeyManager:
    store = FilesystemKeyStore({"keys_dir": keys, "lock_timeout": 5.0})
    return KeyManager(store, MasterKey(SecretBytes(key.encryption.buffer)))


def test_the_contexts_acra_derives() -> None:
    assert acra_context("client1_storage_sym") == b"client1"
    assert acra_context("client1_storage") == b"client1"
    assert acra_context("client1_hmac.old/2024-01-02T03:04:05") == b"client1"
    assert acra_context("secure_log_key") == b"secure_log_key"
    assert acra_context(".poison_key/poison_key") == b".poison_key/poison_key"
    assert acra_context(".poison_key/poison_key_sym") == b".poison_key/poison_key"


def test_every_key_keyloader_makes_passes_and_nothing_else_is_left(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    with generate_master_key() as key, manager(keys, key) as km:
        km.generate(["symmetric", "searchable", "storage"], client_id="client1")
        km.generate(["audit-log", "poison-record", "poison-record-symmetric"])
        for key_id in ("client/client1/symmetric", "client/client1/storage", "audit-log"):
            km.rotate(key_id)
        km.rotate("poison-record")
        km.destroy("client/client1/searchable")
        km.verify()
        km.list(rotated=True, check=True)
        export = acra_export_problems(keys, key.encryption.bytes())
    assert export.problems == []
    # Acra's backup misreads the contexts of its own poison keys (Acra's keymaker seals them
    # exactly as keyloader does): the poison symmetric key and rotated poison keypairs
    [rotated] = os.listdir(keys / ".poison_key" / "poison_key.old")
    assert sorted(export.acra_own) == [
        f".poison_key/poison_key.old/{rotated}",
        ".poison_key/poison_key_sym",
    ]
    assert not [p for p in keys.rglob("*") if p.name.startswith(".keyloader")]


def test_leftovers_of_a_crash_fail_acra_and_are_swept_by_the_next_command(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    with generate_master_key() as key:
        with manager(keys, key) as km:
            km.generate(["symmetric"], client_id="client1")
        (keys / ".keyloader-tmp-deadbeef").write_bytes(b"half")
        (keys / ".keyloader.lock").write_bytes(b"")
        assert len(acra_export_problems(keys, key.encryption.bytes()).problems) == 2
        with manager(keys, key) as km:
            km.list()  # a read, the first command after the crash
        assert acra_export_problems(keys, key.encryption.bytes()).ok


def test_a_refused_rewrap_leaves_no_lock_file(tmp_path: Path) -> None:
    from keyloader.errors import IntegrityError
    from keyloader.rewrap import rewrap_keys

    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    with generate_master_key() as key, generate_master_key() as new:
        broken = keys / "client1_hmac"
        broken.write_bytes(scell.encrypt(os.urandom(32), os.urandom(32), b"client1"))
        broken.chmod(0o600)
        with manager(keys, key) as km:
            with contextlib.suppress(IntegrityError):
                rewrap_keys(km, new)
        assert sorted(p.name for p in keys.iterdir()) == ["client1_hmac"]
