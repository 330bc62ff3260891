"""Keypairs through the engine: generate, read, rotate with both histories, destroy both halves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keyloader.errors import KeyExistsError, KeyNotFoundError
from keyloader.keyids import KeyId
from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader.secret import SecretBytes
from keyloader.stores import FilesystemKeyStore, MemoryKeyStore
from keyloader.themis import keys as themis_keys

STORAGE = "client/client1/storage"
POISON = "poison-record"


@pytest.fixture(params=["filesystem", "memory"])
def manager(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyManager]:
    store: Any
    if request.param == "filesystem":
        store = FilesystemKeyStore({"keys_dir": tmp_path / "keys", "lock_timeout": 5.0})
    else:
        store = MemoryKeyStore({"keys_dir": ".acrakeys"})
    with (
        generate_master_key() as key,
        KeyManager(store, MasterKey(SecretBytes(key.encryption.buffer))) as km,
    ):
        yield km


def pair(manager: KeyManager, key_id: str, index: int = 1) -> tuple[bytes, bytes]:
    """The private half (decrypted) and the public half of a keypair at ``index``."""
    kid = KeyId.parse(key_id)
    with manager.use(kid, index) as private:
        raw = private.bytes()
    listing = {b.name: b for b in manager.store.list()}
    assert kid.public_name is not None
    if index == 1:
        return raw, manager.store.get(kid.public_name)
    stamp = listing[kid.store_name].history[index - 2]
    return raw, manager.store.get_history(kid.public_name, stamp)


@pytest.mark.parametrize(
    ("key_id", "kind", "client"), [(STORAGE, "storage", "client1"), (POISON, "poison-record", None)]
)
def test_generate_makes_a_themis_keypair_with_its_public_half(
    manager: KeyManager, key_id: str, kind: str, client: str | None
) -> None:
    assert [str(k) for k in manager.generate([kind], client_id=client)] == [key_id]
    private, public = pair(manager, key_id)
    assert themis_keys.public_of(private) == public
    assert manager.read_public(key_id) == public
    names = {b.name for b in manager.store.list()}
    kid = KeyId.parse(key_id)
    assert names == {kid.store_name, kid.public_name}
    sealed = manager.store.get(kid.store_name)
    assert private not in sealed  # sealed under the master key, Acra's context
    with pytest.raises(KeyExistsError, match="keys rotate"):
        manager.generate([kind], client_id=client)


def test_an_existing_public_half_alone_blocks_generation_and_nothing_is_written(
    manager: KeyManager,
) -> None:
    manager.store.create("client1_storage.pub", b"left behind", public=True)
    with pytest.raises(KeyExistsError):
        manager.generate(["symmetric", "storage"], client_id="client1")
    assert [b.name for b in manager.store.list()] == ["client1_storage.pub"]


def test_rotate_keeps_both_histories_under_one_timestamp(manager: KeyManager) -> None:
    manager.generate(["storage"], client_id="client1")
    first = pair(manager, STORAGE)
    manager.rotate(STORAGE)
    manager.rotate(STORAGE)
    listing = {b.name: b for b in manager.store.list()}
    private, public = listing["client1_storage"], listing["client1_storage.pub"]
    assert len(private.history) == 2
    assert private.history == public.history  # one timestamp per rotation, for both halves
    assert pair(manager, STORAGE, 2) == first  # the oldest pair, both halves
    for index in (1, 2, 3):
        raw, pub = pair(manager, STORAGE, index)
        assert themis_keys.public_of(raw) == pub
    assert len({pair(manager, STORAGE, i)[1] for i in (1, 2, 3)}) == 3


def test_destroy_removes_both_halves_current_or_by_index(manager: KeyManager) -> None:
    manager.generate(["poison-record"])
    manager.rotate(POISON)
    manager.rotate(POISON)
    manager.destroy(POISON, index=2)
    listing = {b.name: b for b in manager.store.list()}
    assert len(listing[".poison_key/poison_key"].history) == 1
    assert (
        listing[".poison_key/poison_key.pub"].history == listing[".poison_key/poison_key"].history
    )
    manager.destroy(POISON)
    listing = {b.name: b for b in manager.store.list()}
    assert not listing[".poison_key/poison_key"].current
    assert not listing[".poison_key/poison_key.pub"].current
    with pytest.raises(KeyNotFoundError):
        manager.destroy(POISON)


def test_list_rotated_shows_the_public_history(manager: KeyManager) -> None:
    manager.generate(["storage"], client_id="client1")
    manager.rotate(STORAGE)
    rows = [(i.key_id, i.index, i.state) for i in manager.list(rotated=True)]
    assert rows == [
        (STORAGE, 1, "current"),
        (STORAGE, 2, "rotated"),
        (STORAGE, None, "public"),
        (STORAGE, 2, "public"),
    ]
    assert [(i.index, i.state) for i in manager.list()] == [(1, "current"), (None, "public")]


def test_verify_checks_each_private_half_against_its_public_half(manager: KeyManager) -> None:
    manager.generate(["storage"], client_id="client1")
    manager.rotate(STORAGE)
    assert all(r.ok for r in manager.verify())
    _, other = themis_keys.generate_keypair()
    manager.store.put("client1_storage.pub", other, public=True)
    by_index = {r.index: r for r in manager.verify() if r.key_id == STORAGE}
    assert by_index[1].ok is False
    assert "does not match its public half" in (by_index[1].error or "")
    assert by_index[2].ok is True


def test_rewrap_reseals_private_halves_only_and_keeps_both_histories(
    manager: KeyManager,
) -> None:
    from keyloader.rewrap import rewrap_keys

    manager.generate(["storage"], client_id="client1")
    manager.rotate(STORAGE)
    before = [pair(manager, STORAGE, i) for i in (1, 2)]
    publics = {
        (b.name, ts): manager.store.get_history(b.name, ts)
        for b in manager.store.list()
        if b.name.endswith(".pub")
        for ts in b.history
    }
    with generate_master_key() as new_key:
        report = rewrap_keys(manager, new_key)
        assert report.complete
        with KeyManager(manager.store, MasterKey(SecretBytes(new_key.encryption.buffer))) as fresh:
            assert [pair(fresh, STORAGE, i) for i in (1, 2)] == before
            assert all(r.ok for r in fresh.verify())
    after = {
        (b.name, ts): manager.store.get_history(b.name, ts)
        for b in manager.store.list()
        if b.name.endswith(".pub")
        for ts in b.history
    }
    assert after == publics
