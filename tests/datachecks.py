"""The data operations (``KeyManager.encrypt``/``decrypt``, ...) on any key store.

:class:`DataOperationsChecks` is subclassed once per store (tests/core for the
filesystem and memory stores, tests/redis for Redis); a subclass gives a ``store``
fixture with a fresh, empty store. Every check runs on a manager with the cache on
and, where it counts unseals, with the cache off.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from keyloader.containers import acrablock, envelope
from keyloader.errors import ConfigError, DecryptionError, KeyNotFoundError
from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader.secret import SecretBytes
from keyloader.stores.base import KeyStore

SYM = "client/client1/symmetric"
STORAGE = "client/client1/storage"
DATA_IDS = (SYM, STORAGE)
SECRET_ROW = b"4111 1111 1111 1111 secret row"


class DataOperationsChecks:
    """Round trips, rotations, searchable values and poison records on one store."""

    @pytest.fixture
    def master(self) -> Iterator[MasterKey]:
        with generate_master_key() as key:
            yield key

    @pytest.fixture
    def manager(self, store: KeyStore, master: MasterKey) -> Iterator[KeyManager]:
        keys = KeyManager(store, MasterKey(SecretBytes(master.encryption.buffer)))
        keys.generate(["symmetric", "searchable", "storage"], client_id="client1")
        with keys:
            yield keys

    @pytest.mark.parametrize("key_id", DATA_IDS)
    @pytest.mark.parametrize("wrapped", [True, False], ids=["enveloped", "bare"])
    @pytest.mark.parametrize("context", [None, b"row-17"], ids=["no-context", "context"])
    def test_a_value_round_trips(
        self, manager: KeyManager, key_id: str, wrapped: bool, context: bytes | None
    ) -> None:
        sealed = manager.encrypt(key_id, SECRET_ROW, context=context, envelope=wrapped)
        assert SECRET_ROW not in sealed
        assert sealed.startswith(envelope.TAG) is wrapped
        assert manager.decrypt(key_id, sealed, context=context) == SECRET_ROW
        with pytest.raises(DecryptionError) as failed:
            manager.decrypt(key_id, sealed, context=b"another" if context is None else None)
        assert key_id in str(failed.value)
        assert SECRET_ROW.decode() not in str(failed.value)

    @pytest.mark.parametrize("key_id", DATA_IDS)
    def test_searchable_values_carry_the_hash_and_check_it(
        self, manager: KeyManager, key_id: str
    ) -> None:
        sealed = manager.encrypt(key_id, SECRET_ROW, searchable=True)
        found = manager.search_hash("client1", SECRET_ROW)
        assert len(found) == 33
        assert found[0] == 0x7F
        assert sealed[:33] == found
        assert sealed[33:36] == envelope.TAG
        assert manager.decrypt(key_id, sealed, searchable=True) == SECRET_ROW
        other = manager.encrypt(key_id, b"another row", searchable=True)
        with pytest.raises(DecryptionError, match="hash does not match"):
            manager.decrypt(key_id, found + other[33:], searchable=True)
        with pytest.raises(DecryptionError, match="7F hash"):
            manager.decrypt(key_id, sealed[33:], searchable=True)
        assert manager.decrypt(key_id, sealed[33:]) == SECRET_ROW  # the container alone

    @pytest.mark.parametrize("key_id", DATA_IDS)
    def test_old_values_decrypt_after_rotations_and_new_ones_use_the_current_key(
        self, manager: KeyManager, key_id: str
    ) -> None:
        old = [manager.encrypt(key_id, b"value %d" % n) for n in range(3)]
        manager.rotate(key_id)
        manager.rotate(key_id)
        new = manager.encrypt(key_id, b"after")
        assert manager.decrypt_many(key_id, [*old, new]) == [
            b"value 0",
            b"value 1",
            b"value 2",
            b"after",
        ]
        manager.destroy(key_id, index=2)  # the oldest: the first values' key
        assert manager.decrypt(key_id, new) == b"after"
        with pytest.raises(DecryptionError, match=key_id):
            manager.decrypt(key_id, old[0])

    def test_a_new_acrablock_names_the_current_key(self, manager: KeyManager) -> None:
        manager.rotate(SYM)
        _, inner = envelope.unwrap(memoryview(manager.encrypt(SYM, b"x")))
        with manager.use(SYM) as key:
            assert acrablock.parse(inner).key_id == acrablock.key_id(key.buffer)

    @pytest.mark.parametrize("key_id", DATA_IDS)
    def test_values_of_a_destroyed_current_key_decrypt_with_the_rotated_one(
        self, manager: KeyManager, key_id: str
    ) -> None:
        old = manager.encrypt(key_id, SECRET_ROW)
        manager.rotate(key_id)
        manager.destroy(key_id)
        assert manager.decrypt(key_id, old) == SECRET_ROW

    @pytest.mark.parametrize("key_id", DATA_IDS)
    def test_a_value_of_another_client_is_refused_by_id(
        self, manager: KeyManager, key_id: str
    ) -> None:
        manager.generate(["symmetric", "storage"], client_id="client2")
        sealed = manager.encrypt(key_id.replace("client1", "client2"), SECRET_ROW)
        with pytest.raises(DecryptionError, match=key_id):
            manager.decrypt(key_id, sealed)

    def test_a_container_of_the_other_kind_is_named(self, manager: KeyManager) -> None:
        with pytest.raises(DecryptionError, match=r"is an AcraStruct, but .*symmetric makes"):
            manager.decrypt(SYM, manager.encrypt(STORAGE, SECRET_ROW))
        bare = manager.encrypt(STORAGE, SECRET_ROW, envelope=False)
        with pytest.raises(DecryptionError, match="is an AcraStruct"):
            manager.decrypt(SYM, bare)

    @pytest.mark.parametrize("key_id", ["client/client1/searchable", "audit-log", "poison-record"])
    def test_keys_that_do_not_encrypt_data_are_refused(
        self, manager: KeyManager, key_id: str
    ) -> None:
        with pytest.raises(ConfigError, match="does not encrypt data"):
            manager.encrypt(key_id, SECRET_ROW)
        with pytest.raises(ConfigError, match="does not encrypt data"):
            manager.decrypt(key_id, SECRET_ROW)

    @pytest.mark.parametrize("key_id", DATA_IDS)
    def test_a_missing_key_is_key_not_found(self, manager: KeyManager, key_id: str) -> None:
        missing = key_id.replace("client1", "client9")
        with pytest.raises(KeyNotFoundError):
            manager.encrypt(missing, SECRET_ROW)
        with pytest.raises(KeyNotFoundError):
            manager.decrypt(missing, manager.encrypt(key_id, SECRET_ROW))

    def test_empty_values_and_text_are_refused(self, manager: KeyManager) -> None:
        with pytest.raises(ConfigError, match="empty"):
            manager.encrypt(SYM, b"")
        with pytest.raises(ConfigError, match="bytes-like"):
            manager.encrypt(SYM, "text")  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="context must be bytes"):
            manager.encrypt(SYM, b"x", context="text")  # type: ignore[arg-type]

    def test_poison_records_of_both_kinds(self, manager: KeyManager) -> None:
        with pytest.raises(KeyNotFoundError, match="keys generate --poison-record"):
            manager.make_poison_record()
        with pytest.raises(KeyNotFoundError, match="keys generate --poison-record"):
            manager.is_poison_record(manager.encrypt(STORAGE, SECRET_ROW))
        manager.generate(["poison-record", "poison-record-symmetric"])
        for kind in ("acrastruct", "acrablock"):
            record = manager.make_poison_record(kind)
            assert record.startswith(envelope.TAG)
            assert manager.is_poison_record(record)
            assert manager.is_poison_record(envelope.unwrap(memoryview(record))[1].tobytes())
        sized = manager.make_poison_record("acrablock", data_length=500)
        assert len(sized) == envelope.HEADER_SIZE + acrablock.MIN_SIZE + 76 + 44 + 500
        for value in (
            manager.encrypt(SYM, SECRET_ROW),
            manager.encrypt(STORAGE, SECRET_ROW),
            SECRET_ROW,
            b"",
            b"%%%" + b"\xff" * 20,
        ):
            assert manager.is_poison_record(value) is False
        with pytest.raises(ConfigError, match="data length"):
            manager.make_poison_record(data_length=0)
        with pytest.raises(ConfigError, match="data length"):
            manager.make_poison_record(data_length=-5)
        with pytest.raises(ConfigError, match="unknown poison record type"):
            manager.make_poison_record("zone")

    def test_a_rotated_poison_key_still_recognizes_its_records(self, manager: KeyManager) -> None:
        manager.generate(["poison-record", "poison-record-symmetric"])
        records = [manager.make_poison_record(k) for k in ("acrastruct", "acrablock")]
        manager.rotate("poison-record")
        manager.rotate("poison-record-symmetric")
        assert all(manager.is_poison_record(record) for record in records)

    def test_bulk_forms_unseal_each_key_once(
        self, store: KeyStore, master: MasterKey, count_unseals: Callable[[KeyManager], list[int]]
    ) -> None:
        keys = KeyManager(store, MasterKey(SecretBytes(master.encryption.buffer)), cache_size=0)
        with keys:
            keys.generate(["symmetric", "storage"], client_id="client1")
            for key_id in DATA_IDS:
                old = keys.encrypt_many(key_id, [b"old %d" % n for n in range(20)])
                keys.rotate(key_id)
                new = keys.encrypt_many(key_id, [b"new %d" % n for n in range(20)])
                unseals = count_unseals(keys)
                plain = keys.decrypt_many(key_id, [*old, *new])
                assert plain == [b"old %d" % n for n in range(20)] + [
                    b"new %d" % n for n in range(20)
                ]
                assert len(unseals) == 2  # the current key and the rotated one, once each
                unseals.clear()
                assert keys.decrypt_many(key_id, new) == [b"new %d" % n for n in range(20)]
                assert len(unseals) == 1
                unseals.clear()
                keys.encrypt_many(key_id, [b"x"] * 20)
                assert len(unseals) == (1 if key_id == SYM else 0)  # a public key: no unseal

    def test_an_acrastruct_is_made_without_the_master_key(self, store: KeyStore) -> None:
        with generate_master_key() as key:
            writer = KeyManager(store, MasterKey(SecretBytes(key.encryption.buffer)))
            writer.generate(["storage"], client_id="client1")

            def refuse() -> MasterKey:
                raise AssertionError("the master key was loaded")

            reader = KeyManager(store, refuse)
            sealed = reader.encrypt(STORAGE, SECRET_ROW)
            assert writer.decrypt(STORAGE, sealed) == SECRET_ROW
            writer.close()


@pytest.fixture
def count_unseals(monkeypatch: pytest.MonkeyPatch) -> Callable[[KeyManager], list[int]]:
    """Patch a manager's ``unseal`` to record each call; returns the record."""

    def patch(keys: KeyManager) -> list[int]:
        calls: list[int] = []
        original = keys.unseal

        def counted(blob: bytes, context: bytes, where: str) -> SecretBytes:
            calls.append(1)
            return original(blob, context, where)

        monkeypatch.setattr(keys, "unseal", counted)
        return calls

    return patch
