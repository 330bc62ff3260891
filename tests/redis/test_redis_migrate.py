"""``keys migrate`` into Redis: Acra's v1 directory into a Redis keystore v2 with Acra's
``--dst_redis_host_port``, Acra's Redis v2 keys back into a Redis v1 prefix, an interrupted
migration finished by a rerun, and a destination holding other keys refused."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keyloader.cli.app import app
from keyloader.errors import ConfigError
from keyloader.keyrings.engine import RingKeyManager
from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, generate_master_key, parse_master_key
from keyloader.migrate import migrate_keys
from keyloader.secret import SecretBytes
from keyloader.stores.filesystem import FilesystemKeyStore
from keyloader_redis import RedisKeyStore
from keyloader_redis.rings import RedisRings

from ..acrav2 import copy_v1_store, manifest
from .conftest import RedisServer
from .test_redis_keystore_v2 import REDIS_MANIFEST, _load_acras_dump, _open

V1 = manifest()["v1"]["api"]
V1_KEY = manifest()["master_keys"]["v1"]["ACRA_MASTER_KEY"]


def _copy(key: MasterKey) -> MasterKey:
    signature = SecretBytes(key.signature.buffer) if key.signature is not None else None
    return MasterKey(SecretBytes(key.encryption.buffer), signature)


def _v1_source(root: Path) -> KeyManager:
    store = FilesystemKeyStore({"keys_dir": root})
    return KeyManager(store, parse_master_key(V1_KEY), cache_size=0)


def test_the_cli_migrates_acras_v1_directory_into_redis_v2(
    redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    source_dir = copy_v1_store(tmp_path / "v1")
    with generate_master_key("v2") as pair, pair.to_text() as text:
        target = text.bytes().decode()
        args = [
            "keys",
            "migrate",
            "--src_keys_dir",
            str(source_dir),
            "--dst_keystore",
            "v2",
            "--dst_keys_dir",
            prefix,
            "--dst_redis_host_port",
            f"127.0.0.1:{redis_server.port}",
            "--json",
        ]
        env = {"ACRA_MASTER_KEY": V1_KEY, "DST_ACRA_MASTER_KEY": target}
        result = CliRunner().invoke(app, args, env=env)
        assert result.exit_code == 0, result.stderr
        assert '"versions": 11' in result.stdout
        assert redis_server.client().get(f"{prefix}/version") == b"Acra Keystore v2"
        store = RedisKeyStore({"url": redis_server.url, "keys_dir": prefix})
        rings = store.key_rings()
        assert rings is not None
        with RingKeyManager(rings, _copy(pair)) as moved:
            for index, value in enumerate(V1["client1"]["symmetric_all_newest_first"], start=1):
                with moved.read("client/client1/symmetric", index) as key:
                    assert key.bytes() == base64.b64decode(value)
            assert all(result.ok for result in moved.verify())
        again = CliRunner().invoke(app, args, env=env)  # a rerun: nothing to do
        assert again.exit_code == 0, again.stderr
        assert '"up_to_date": true' in again.stdout


def test_acras_redis_v2_keys_migrate_to_a_redis_v1_prefix(
    redis_server: RedisServer, prefix: str
) -> None:
    _load_acras_dump(redis_server, prefix)
    destination = prefix + "-v1"
    with _open(redis_server, prefix) as source, generate_master_key() as v1_key:
        expected = {}
        for info in source.list(rotated=True):
            assert info.key_id is not None
            with source.read(info.key_id, info.index or 1) as key:
                expected[(info.key_id, info.index)] = key.bytes()
        store = RedisKeyStore({"url": redis_server.url, "keys_dir": destination})
        report = migrate_keys(source, store, "v1", v1_key)
        assert report.versions == len(expected)
        back = RedisKeyStore({"url": redis_server.url, "keys_dir": destination})
        with KeyManager(back, _copy(v1_key)) as moved:
            for (key_id, index), value in expected.items():
                with moved.read(key_id, index or 1) as key:
                    assert key.bytes() == value
    assert redis_server.client().get(f"{destination}/version") is None  # v1 has none


def test_an_interrupted_migration_into_redis_is_finished_by_a_rerun(
    redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    source_dir = copy_v1_store(tmp_path / "v1")
    client = redis_server.client()

    def destination() -> RedisKeyStore:
        options = {"url": redis_server.url, "keys_dir": prefix, "keystore_version": "v2"}
        return RedisKeyStore(options)

    with generate_master_key("v2") as pair, _v1_source(source_dir) as source:
        first = migrate_keys(source, destination(), "v2", _copy(pair))
        assert not first.up_to_date
        rings = sorted(key.decode() for key in client.scan_iter(match=f"{prefix}/*.keyring"))
        # a run that died after some rings: the last three never written
        client.delete(*rings[-3:])
        again = migrate_keys(source, destination(), "v2", _copy(pair))
        assert not again.up_to_date
        assert sorted(key.decode() for key in client.scan_iter(match=f"{prefix}/*.keyring")) == (
            rings
        )
        assert migrate_keys(source, destination(), "v2", _copy(pair)).up_to_date
        # other keys under the same ring paths: refused, nothing written; --force writes
        before = {ring: client.get(ring) for ring in rings}
        with generate_master_key("v2") as other:
            with pytest.raises(ConfigError, match="does not open"):
                migrate_keys(source, destination(), "v2", other)
            assert {ring: client.get(ring) for ring in rings} == before
        with generate_master_key() as v1_key, pytest.raises(ConfigError, match="keystore v2"):
            migrate_keys(source, destination(), "v1", v1_key)


def test_the_rings_of_a_migration_are_redis_rings(redis_server: RedisServer, prefix: str) -> None:
    store = RedisKeyStore({"url": redis_server.url, "keys_dir": prefix, "keystore_version": "v2"})
    rings = store.key_rings()
    assert isinstance(rings, RedisRings)
    rings.close()


def test_a_redis_destination_with_other_keys_is_refused_unless_forced(
    redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    source_dir = copy_v1_store(tmp_path / "v1")
    options = {"url": redis_server.url, "keys_dir": prefix, "keystore_version": "v2"}
    with generate_master_key("v2") as pair, _v1_source(source_dir) as source:
        rings = RedisKeyStore(options).key_rings()
        assert rings is not None
        with RingKeyManager(rings, _copy(pair)) as other:
            other.generate(["symmetric"], client_id="client1")  # not the source's key
        ring = f"{prefix}/client/client1/storage-sym.keyring"
        before = redis_server.client().get(ring)
        with pytest.raises(ConfigError, match="holds other versions of client/client1/symmetric"):
            migrate_keys(source, RedisKeyStore(options), "v2", _copy(pair))
        assert redis_server.client().get(ring) == before
        assert redis_server.client().get(f"{prefix}/audit-log.keyring") is None  # none written
        report = migrate_keys(source, RedisKeyStore(options), "v2", _copy(pair), force=True)
        assert report.versions == 11
        rings = RedisKeyStore(options).key_rings()
        assert rings is not None
        with RingKeyManager(rings, _copy(pair)) as moved:
            newest = V1["client1"]["symmetric_all_newest_first"][0]
            with moved.read("client/client1/symmetric") as key:  # the source's current key
                assert key.bytes() == base64.b64decode(newest)


def test_the_cli_migrates_acras_redis_v2_keys_with_acras_src_redis_flags(
    redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    """``--src_redis_host_port``/``--src_redis_db_keys``: the source is Acra's Redis keystore."""
    _load_acras_dump(redis_server, prefix)
    with _open(redis_server, prefix) as source:
        expected = {}
        for info in source.list(rotated=True):
            assert info.key_id is not None
            with source.read(info.key_id, info.index or 1) as key:
                expected[(info.key_id, info.index or 1)] = key.bytes()
    destination = tmp_path / "v1"
    with generate_master_key() as v1_key, v1_key.to_text() as text:
        v1_text = text.bytes().decode()
    pair_text = REDIS_MANIFEST["master_keys"]["v2"]["ACRA_MASTER_KEY"]
    args = [
        "keys",
        "migrate",
        "--src_redis_host_port",
        f"127.0.0.1:{redis_server.port}",
        "--src_redis_db_keys",
        "0",
        "--src_keys_dir",
        prefix,
        "--src_keystore",
        "v2",
        "--dst_keystore",
        "v1",
        "--dst_keys_dir",
        str(destination),
        "--json",
    ]
    env = {"ACRA_MASTER_KEY": pair_text, "DST_ACRA_MASTER_KEY": v1_text}
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.stderr
    assert f'"versions": {len(expected)}' in result.stdout
    with _v1_at(destination, v1_text) as moved:
        for (key_id, index), value in expected.items():
            with moved.read(key_id, index) as key:
                assert key.bytes() == value
    wrong_db = [*args[:5], "5", *args[6:], "--dry-run"]
    result = CliRunner().invoke(app, wrong_db, env=env)  # db 5 holds nothing: not Acra's v2
    assert result.exit_code == 1
    assert "/5/" in result.stderr
    assert "not v2 (--src_keystore)" in result.stderr
    assert "Traceback" not in result.stderr


def _v1_at(root: Path, text: str) -> KeyManager:
    return KeyManager(FilesystemKeyStore({"keys_dir": root}), parse_master_key(text), cache_size=0)
