"""keyloader's own bundle of a keystore v2 store (``KLBUNDLE`` version 2): every ring of
Acra's own store, history and states included, goes out and back into a store under
another master key pair; a bad file is refused with the reason, and nothing is written."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from keyloader.errors import ConfigError, InsecurePermissionsError, IntegrityError
from keyloader.keyids import KeyId
from keyloader.keyrings.bundle import export_ring_bundle, import_ring_bundle
from keyloader.keyrings.directory import RingDirectory
from keyloader.keyrings.engine import RingKeyManager
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader.secret import SecretBytes
from keyloader.themis import scell

from ..acrav2 import copy_store, master_pair


@pytest.fixture
def source(tmp_path: Path) -> Iterator[RingKeyManager]:
    root = copy_store("main", tmp_path / "acra")
    with RingKeyManager(RingDirectory(root), MasterKey(*master_pair())) as keys:
        yield keys


@pytest.fixture
def target(tmp_path: Path) -> Iterator[RingKeyManager]:
    with generate_master_key("v2") as pair:
        with RingKeyManager(RingDirectory.create(tmp_path / "target"), pair) as keys:
            yield keys


def _export(keys: RingKeyManager, where: Path, name: str = "b") -> tuple[Path, Path]:
    bundle, secret = where / f"{name}.bundle", where / f"{name}.secret"
    export_ring_bundle(keys, None, bundle, secret)
    return bundle, secret


def test_every_ring_goes_out_and_back_with_its_history(
    source: RingKeyManager, target: RingKeyManager, tmp_path: Path
) -> None:
    bundle, secret = _export(source, tmp_path)
    assert secret.stat().st_mode & 0o777 == 0o600
    assert len(secret.read_bytes()) == 32
    report = import_ring_bundle(target, bundle, secret)
    assert sorted(report.imported) == sorted(source.store.list())
    before = {(i.key_id, i.index, i.state) for i in source.list(rotated=True)}
    assert {(i.key_id, i.index, i.state) for i in target.list(rotated=True)} == before
    compared = 0
    for info in source.list(rotated=True):
        if info.key_id is None or info.index is None:
            continue
        compared += 1
        if KeyId.parse(info.key_id).kind.keypair:
            assert target.read_public(info.key_id) == source.read_public(info.key_id)
        with source.read(info.key_id, info.index) as a, target.read(info.key_id, info.index) as b:
            assert a == b, (info.key_id, info.index)
    assert compared >= 10
    assert all(result.ok for result in target.verify())
    assert len(import_ring_bundle(target, bundle, secret).kept) == len(report.imported)


def test_a_changed_bundle_or_another_secret_is_refused_and_nothing_is_written(
    source: RingKeyManager, target: RingKeyManager, tmp_path: Path
) -> None:
    bundle, secret = _export(source, tmp_path)
    _, other = _export(source, tmp_path, "other")
    with pytest.raises(IntegrityError, match="wrong secret file"):
        import_ring_bundle(target, bundle, other)
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 1
    bundle.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="nothing was imported"):
        import_ring_bundle(target, bundle, secret)
    secret.chmod(0o644)
    with pytest.raises(InsecurePermissionsError, match="chmod 600"):
        import_ring_bundle(target, bundle, secret)
    assert target.store.list() == []


def test_a_payload_that_is_not_rings_is_refused(target: RingKeyManager, tmp_path: Path) -> None:
    secret_path, bundle = tmp_path / "s", tmp_path / "b"
    with SecretBytes.random(32) as secret:
        secret_path.write_bytes(secret.bytes())
        secret_path.chmod(0o600)
        for payload, error, message in (
            (b"KLBUNDLE\x01\x00" + bytes(4), ConfigError, "holds keystore v1 keys"),
            (b"NOTABUND\x02\x00" + bytes(4), IntegrityError, "not a keyloader export bundle"),
            (b"KLBUNDLE\x02\x00\x30\x03\x31\x01", IntegrityError, "bundle"),
            (b"KLBUNDLE\x02\x00\x30\x02\x31\x00", IntegrityError, "holds no key rings"),
        ):
            bundle.write_bytes(scell.encrypt(secret.buffer, payload, b"keyloader export bundle"))
            with pytest.raises(error, match=message):
                import_ring_bundle(target, bundle, secret_path)
    assert target.store.list() == []
