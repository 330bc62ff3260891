"""The ``redis`` store on a real server: Acra layout, auth, typed errors, the lock, recovery."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from keyloader.errors import (
    AuthenticationError,
    ConfigError,
    IntegrityError,
    KeyNotFoundError,
    KeyStoreError,
)
from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader.secret import SecretBytes
from keyloader.themis import scell
from keyloader_redis import RedisKeyStore

from .conftest import LOOPBACK, PASSWORD, RedisServer, free_port

StoreFactory = Callable[..., RedisKeyStore]


def _copy(key: MasterKey) -> MasterKey:
    return MasterKey(SecretBytes(key.encryption.bytes()))


# -- Acra layout ---------------------------------------------------------------------------


def test_acra_layout_raw_keys_and_base64_values(
    make_store: StoreFactory, redis_server: RedisServer, prefix: str
) -> None:
    master = generate_master_key()
    mk = master.encryption.bytes()
    with KeyManager(make_store(), _copy(master)) as keys:
        keys.generate(["symmetric", "searchable"], client_id="client1")
        keys.generate(["poison-record-symmetric"])
        keys.rotate("client/client1/symmetric")
    raw = redis_server.client()
    found = sorted(k.decode() for k in raw.scan_iter(match=f"{prefix}/*"))
    history = [k for k in found if ".old/" in k]
    assert len(history) == 1
    assert history[0].startswith(f"{prefix}/client1_storage_sym.old/")
    assert sorted(set(found) - set(history)) == [
        f"{prefix}/.poison_key/poison_key_sym",
        f"{prefix}/client1_hmac",
        f"{prefix}/client1_storage_sym",
    ]  # no lock key left behind, no other helper keys
    contexts = {
        f"{prefix}/client1_storage_sym": b"client1",
        history[0]: b"client1",
        f"{prefix}/client1_hmac": b"client1",
        f"{prefix}/.poison_key/poison_key_sym": b".poison_key/poison_key_sym",
    }
    for key, context in contexts.items():
        value = raw.get(key)
        assert value is not None
        blob = base64.b64decode(value, validate=True)  # standard base64, like Go's StdEncoding
        with scell.decrypt(mk, blob, context) as plain:
            assert len(plain) == 32
    assert raw.get(f"{prefix}/client1_storage_sym") != raw.get(history[0])
    raw.close()


def test_reads_keys_written_the_acra_way(
    make_store: StoreFactory, redis_server: RedisServer, prefix: str
) -> None:
    """Keys set with a plain client (as Acra's RedisStorage.WriteFile does) are read and listed."""
    master = generate_master_key()
    mk = master.encryption.bytes()
    secret, older = b"\x01" * 32, b"\x02" * 32
    raw = redis_server.client()
    raw.set(
        f"{prefix}/clientA_storage_sym", base64.b64encode(scell.encrypt(mk, secret, b"clientA"))
    )
    raw.set(
        f"{prefix}/clientA_storage_sym.old/2024-01-02T03:04:05.5",
        base64.b64encode(scell.encrypt(mk, older, b"clientA")),
    )
    raw.set(f"{prefix}/clientA_zone", b"")  # an older Acra name: listed as unknown
    raw.close()
    with KeyManager(make_store(), _copy(master)) as keys:
        with keys.use("client/clientA/symmetric") as key:
            assert key.bytes() == secret
        with keys.use("client/clientA/symmetric", index=2) as key:
            assert key.bytes() == older
        listed = {(info.key_id, info.index, info.state) for info in keys.list(rotated=True)}
    assert listed == {
        ("client/clientA/symmetric", 1, "current"),
        ("client/clientA/symmetric", 2, "rotated"),
        (None, None, "unknown"),
    }


def test_keys_dir_is_the_key_prefix(redis_server: RedisServer, prefix: str) -> None:
    store = RedisKeyStore({"url": redis_server.url, "keys_dir": f"./{prefix}//"})
    try:
        with store.lock():
            store.create("client1_hmac", b"blob")
        assert store.location == f"{redis_server.url}/{prefix}"
    finally:
        store.close()
    raw = redis_server.client()
    assert raw.get(f"{prefix}/client1_hmac") == base64.b64encode(b"blob")
    raw.close()


def test_db_option_selects_the_database(redis_server: RedisServer, prefix: str) -> None:
    store = RedisKeyStore({"url": redis_server.url, "db": 3, "keys_dir": prefix})
    try:
        with store.lock():
            store.create("client1_hmac", b"in db 3")
        assert store.location.startswith(f"redis://{LOOPBACK}:{redis_server.port}/3/")
    finally:
        store.close()
    assert redis_server.client(db=3).get(f"{prefix}/client1_hmac") is not None
    assert redis_server.client(db=0).get(f"{prefix}/client1_hmac") is None


def test_corrupt_value_is_an_integrity_error_naming_the_key(
    make_store: StoreFactory, redis_server: RedisServer, prefix: str
) -> None:
    raw = redis_server.client()
    raw.set(f"{prefix}/client1_hmac", b"not base64 !!")
    raw.close()
    store = make_store()
    with pytest.raises(IntegrityError, match=rf"{prefix}/client1_hmac.*not base64"):
        store.get("client1_hmac")


def test_list_check_reports_a_corrupt_value_as_not_decrypting(
    make_store: StoreFactory, redis_server: RedisServer, prefix: str
) -> None:
    """One undecodable value is one key that does not decrypt, not a failed listing."""
    master = generate_master_key()
    with KeyManager(make_store(), _copy(master)) as keys:
        keys.generate(["symmetric", "searchable"], client_id="client1")
        raw = redis_server.client()
        raw.set(f"{prefix}/client1_hmac", b"not base64 !!")
        raw.close()
        checked = {info.key_id: info.decrypts for info in keys.list(check=True)}
    assert checked == {"client/client1/symmetric": True, "client/client1/searchable": False}


def test_missing_key_is_key_not_found(make_store: StoreFactory) -> None:
    with pytest.raises(KeyNotFoundError, match="client1_hmac"):
        make_store().get("client1_hmac")


def test_bad_names_are_refused_before_any_command(make_store: StoreFactory) -> None:
    store = make_store()
    for name in ("../x", "/abs", "a/b", ".keyloader.lock", "version", "x.old", ""):
        with pytest.raises(ConfigError):
            store.get(name)


# -- options -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"url": "redis://:pw@127.0.0.1:6379/0"}, "carries a password"),
        ({"url": "http://127.0.0.1:6379"}, "not a Redis URL"),
        ({"url": "redis://127.0.0.1:6379/abc"}, "not a database number"),
        ({"url": "redis://127.0.0.1:6379/0?db=1"}, "query"),
        ({"ca_cert": "/tmp/ca.pem"}, "use a rediss:// URL"),
        ({"url": "rediss://127.0.0.1:6379/0", "client_cert": "/tmp/c.pem"}, "both"),
        ({"password": "a", "password_file": "/tmp/p"}, "keep one"),
        ({"password_file": "/nonexistent/redis-password"}, "does not exist"),
        ({"keys_dir": 123}, "not a key prefix"),
        ({"lock_timeout": -1}, "lock_timeout"),
    ],
)
def test_bad_options_are_config_errors(config: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        RedisKeyStore(config)
    assert "pw@" not in str(caught.value)


def test_secret_password_is_refused_on_the_command_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("keyloader")),
            "--keystore",
            "redis",
            "-s",
            "password=hunter2-on-cli",
            "keys",
            "list",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "password_file" in result.stderr
    assert "hunter2-on-cli" not in result.stderr + result.stdout


def test_plugin_module_does_not_import_redis() -> None:
    code = (
        "import sys, keyloader_redis.plugin as p\n"
        "assert [s.name for s in p.keyloader_key_stores()] == ['redis']\n"
        "s = p.keyloader_key_stores()[0]({'url': 'redis://127.0.0.1:1/0'})\n"
        "assert 'redis' not in sys.modules, sorted(m for m in sys.modules if 'redis' in m)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- authentication ------------------------------------------------------------------------


def test_password_auth(redis_auth_server: RedisServer, prefix: str, tmp_path: Path) -> None:
    password_file = tmp_path / "redis-password"
    password_file.write_text(PASSWORD + "\n")
    for options in ({"password": PASSWORD}, {"password_file": str(password_file)}):
        store = RedisKeyStore({"url": redis_auth_server.url, "keys_dir": prefix, **options})
        try:
            with store.lock():
                store.put("client1_hmac", b"authenticated")
            assert store.get("client1_hmac") == b"authenticated"
        finally:
            store.close()


@pytest.mark.parametrize("password", [None, "wrong-password-d41d8"])
def test_wrong_or_missing_password_is_authentication_error(
    redis_auth_server: RedisServer, prefix: str, password: str | None
) -> None:
    store = RedisKeyStore({"url": redis_auth_server.url, "keys_dir": prefix, "password": password})
    try:
        with pytest.raises(AuthenticationError, match=redis_auth_server.url) as caught:
            store.get("client1_hmac")
        with pytest.raises(AuthenticationError), store.lock():
            pass
    finally:
        store.close()
    text = str(caught.value)
    assert PASSWORD not in text
    assert password is None or password not in text
    assert "KEYLOADER_STORE_REDIS_PASSWORD" in text


# -- the writer lock -----------------------------------------------------------------------


def test_lock_excludes_other_writers(make_store: StoreFactory, redis_server: RedisServer) -> None:
    holder, other = make_store(), make_store(lock_timeout=0.2)
    with holder.lock():
        with pytest.raises(KeyStoreError, match=r"timed out after 0.2 s.*\.keyloader-lock"):
            other.put("client1_hmac", b"blocked")
        raw = redis_server.client()
        assert raw.pttl(holder.lock_key) > 0  # a lease, so a crashed writer's lock expires
        raw.close()
    other.put("client1_hmac", b"after release")
    assert holder.get("client1_hmac") == b"after release"


def test_write_after_losing_the_lock_writes_nothing(
    make_store: StoreFactory, redis_server: RedisServer
) -> None:
    store, thief = make_store(), make_store()
    raw = redis_server.client()
    with store.lock():
        store.create("client1_hmac", b"first")
        raw.delete(store.lock_key)  # the lease expired...
        with thief.lock():  # ...and another writer took the lock
            pass
        with pytest.raises(KeyStoreError, match="lost"):
            store.put("client1_hmac", b"must not land")
        with pytest.raises(KeyStoreError, match="lost"):
            store.rotate("client1_hmac", b"must not land")
    assert store.get("client1_hmac") == b"first"
    assert [b.history for b in store.list()] == [()]
    raw.close()


def test_lease_is_renewed_while_held(make_store: StoreFactory, redis_server: RedisServer) -> None:
    class ShortLease(RedisKeyStore):
        lock_lease = 0.3

    store = ShortLease({"url": redis_server.url, "keys_dir": make_store().settings.prefix})
    try:
        with store.lock():
            time.sleep(0.8)  # longer than the lease: only renewal keeps it
            store.put("client1_hmac", b"still ours")
    finally:
        store.close()
    assert store.get("client1_hmac") == b"still ours"


# -- outages -------------------------------------------------------------------------------


def test_server_stopped_mid_run_then_recovery(
    start_own_redis: Callable[..., RedisServer], prefix: str
) -> None:
    server = start_own_redis()
    store = RedisKeyStore({"url": server.url, "keys_dir": prefix, "timeout": 1.0})
    master = generate_master_key()
    try:
        with KeyManager(store, _copy(master)) as keys:
            keys.generate(["symmetric"], client_id="client1")
            with keys.use("client/client1/symmetric") as key:
                assert len(key) == 32
            server.stop()
            with pytest.raises(KeyStoreError, match=rf"{server.url} is unreachable") as caught:
                with keys.use("client/client1/symmetric"):
                    pass
            assert "attempts" in str(caught.value)
            with pytest.raises(KeyStoreError, match="unreachable"):
                keys.rotate("client/client1/symmetric")
            start_own_redis(port=server.port)  # back (empty: persistence is off)
            keys.generate(["symmetric"], client_id="client1")
            with keys.use("client/client1/symmetric") as key:
                assert len(key) == 32
            assert [info.key_id for info in keys.list()] == ["client/client1/symmetric"]
    finally:
        store.close()


def test_unreachable_server_names_url_without_password(tmp_path: Path) -> None:
    password_file = tmp_path / "pw"
    password_file.write_text("pw-that-must-not-leak")
    url = f"redis://{LOOPBACK}:{free_port()}/0"
    store = RedisKeyStore({"url": url, "username": "app", "password_file": str(password_file)})
    try:
        with pytest.raises(KeyStoreError) as caught:
            store.list()
    finally:
        store.close()
    text = str(caught.value)
    assert url.replace("redis://", "redis://app@") in text
    assert "pw-that-must-not-leak" not in text
    assert "pw-that-must-not-leak" not in repr(store) + repr(store.settings)
