"""keystore v2 through the engine: Acra's own store read with the manifest's keys, the
data operations on it, and keys generated, rotated and destroyed as Acra's code would."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyloader.containers import acrablock
from keyloader.errors import ConfigError, KeyExistsError, KeyNotFoundError
from keyloader.keyrings import format as rings_format
from keyloader.keyrings.directory import RingDirectory
from keyloader.keyrings.engine import RingKeyManager
from keyloader.masterkey import MasterKey
from keyloader.secret import SecretBytes

from ..acrav2 import copy_store, manifest, master_pair

API = manifest()["v2"]["api"]


def _manager(root: Path, cache_size: int = 100) -> RingKeyManager:
    encryption, signature = master_pair()
    return RingKeyManager(
        RingDirectory(root), MasterKey(encryption, signature), cache_size=cache_size
    )


@pytest.fixture(params=[100, 0], ids=["cache-on", "cache-off"])
def keys(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RingKeyManager]:
    with _manager(copy_store("main", tmp_path / "keystore"), request.param) as manager:
        yield manager


def _b64(text: str) -> bytes:
    return base64.b64decode(text)


def test_acras_keys_read_through_the_engine(keys: RingKeyManager) -> None:
    client = API["client1"]
    with keys.read("client/client1/symmetric") as key:
        assert key.bytes() == _b64(client["symmetric_current"])
    with keys.read("client/client1/symmetric", 2) as key:  # the rotated one
        assert key.bytes() == _b64(client["symmetric_all_newest_first"][1])
    with keys.use("client/client1/searchable") as key:
        assert key.bytes() == _b64(client["hmac_current"])
    with keys.read("client/client1/storage") as key:
        assert key.bytes() == _b64(client["storage_private_current"])
    assert keys.read_public("client/client1/storage") == _b64(client["storage_public_current"])
    with keys.read("audit-log") as key:
        assert key.bytes() == _b64(API["audit_log_current"])
    with keys.read("poison-record-symmetric") as key:
        assert key.bytes() == _b64(API["poison_symmetric_current"])
    with pytest.raises(KeyNotFoundError, match="no index 3"):
        keys.read("client/client1/symmetric", 3)
    with pytest.raises(KeyNotFoundError):
        keys.read("client/nobody/symmetric")


def test_the_data_operations_work_on_a_v2_store(keys: RingKeyManager) -> None:
    row = b"a row on keystore v2"
    for key_id in ("client/client1/symmetric", "client/client1/storage"):
        assert keys.decrypt(key_id, keys.encrypt(key_id, row)) == row
    old_key = _b64(API["client1"]["symmetric_all_newest_first"][1])
    with acrablock.Kek(old_key) as kek:  # a value made before the rotation
        old_value = acrablock.encrypt(kek, row, enveloped=True)
    assert keys.decrypt("client/client1/symmetric", old_value) == row
    poison = keys.make_poison_record("acrablock")
    assert keys.is_poison_record(poison)


def test_listing_and_verification(keys: RingKeyManager) -> None:
    listed = keys.list(rotated=True, check=True)
    current = {info.key_id for info in listed if info.state == "current"}
    assert "client/client1/symmetric" in current
    assert "client/billing 2-x/storage" in current
    rotated = [info for info in listed if info.state == "rotated"]
    assert {info.key_id for info in rotated} == {
        "client/client1/symmetric",
        "client/client1/storage",
    }
    assert all(info.decrypts for info in listed)
    results = keys.verify()
    assert results
    assert all(result.ok for result in results)


def test_generate_rotate_destroy_leave_rings_acra_reads(tmp_path: Path) -> None:
    root = copy_store("main", tmp_path / "keystore")
    with _manager(root) as keys:
        keys.generate(["symmetric", "storage"], client_id="new-client")
        with pytest.raises(KeyExistsError):
            keys.generate(["symmetric"], client_id="new-client")
        first = keys.read("client/new-client/symmetric")
        keys.rotate("client/new-client/symmetric")
        with keys.read("client/new-client/symmetric", 2) as old:
            assert old == first
        with keys.read("client/new-client/symmetric") as new:
            assert new != first
        first.wipe()
        value = keys.encrypt("client/new-client/storage", b"row")
        keys.destroy("client/new-client/symmetric")
        with pytest.raises(KeyNotFoundError, match="no current key"):
            keys.read("client/new-client/symmetric")
    _encryption, signature = master_pair()
    data = (root / "client" / "new-client" / "storage-sym.keyring").read_bytes()
    ring = rings_format.open_ring(data, "client/new-client/storage-sym", signature)
    assert [key.seqnum for key in ring.keys] == [1, 2]
    assert ring.current == 2
    assert ring.keys[1].destroyed
    with _manager(root) as again:  # a new process reads what the first wrote
        assert again.decrypt("client/new-client/storage", value) == b"row"


def test_a_v1_master_key_is_refused(tmp_path: Path) -> None:
    root = copy_store("main", tmp_path / "keystore")
    with RingKeyManager(RingDirectory(root), MasterKey(SecretBytes(os.urandom(32)))) as keys:
        with pytest.raises(ConfigError, match="needs a v2 master key pair"):
            keys.read("audit-log")


def test_keyloader_aio_opens_a_v2_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    import keyloader.aio

    root = copy_store("main", tmp_path / "keystore")
    monkeypatch.setenv("ACRA_MASTER_KEY", manifest()["master_keys"]["v2"]["ACRA_MASTER_KEY"])

    async def main() -> bytes:
        async with keyloader.aio.open_keystore(keys_dir=root) as keys:
            sealed = await keys.encrypt("client/client1/symmetric", b"async row")
            async with keys.use("client/client1/symmetric") as key:
                assert key.bytes() == _b64(API["client1"]["symmetric_current"])
            async with keys.use("client/client1/symmetric") as key:  # from the cache now
                assert len(key) == 32
            return await keys.decrypt("client/client1/symmetric", sealed)

    assert asyncio.run(main()) == b"async row"


@pytest.mark.parametrize("cache_size", [100, 0], ids=["cache-on", "cache-off"])
def test_a_ring_another_writer_changed_is_read_again(tmp_path: Path, cache_size: int) -> None:
    """Parsed rings (and cached keys) are kept per revision of the ring file: a rotation
    by another manager (another process) is seen on the next use."""
    root = copy_store("main", tmp_path / "keystore")
    with _manager(root, cache_size) as reader, _manager(root) as writer:
        with reader.read("client/client1/symmetric") as before:
            old = before.bytes()
        writer.rotate("client/client1/symmetric")
        with reader.read("client/client1/symmetric") as after:
            assert after.bytes() != old
        with reader.read("client/client1/symmetric", 3) as rotated:  # the one read before
            assert rotated.bytes() == old
