"""The ``redis`` store under Redis Sentinel: real master, replica and sentinels on loopback.

A session group serves the tests that break nothing; a test that kills a master
starts its own group. Options, the contract suite, the CLI, WAIT, reading from the
replica, a wrong service name, unreachable sentinels, and failover (SIGKILL of the
master) in the middle of a stream of rotations and of a rewrap.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from keyloader.errors import AuthenticationError, ConfigError, KeyStoreError
from keyloader.masterkey import generate_master_key
from keyloader.testing.stores import KeyStoreContract
from keyloader_redis import RedisKeyStore

from ..leakscan import Workflow
from ..pki import make_pki
from ..servers import LOOPBACK, free_port
from .conftest import manager
from .sentinels import SERVICE, SentinelGroup, start_sentinel_group

KEYLOADER = str(Path(sys.executable).with_name("keyloader"))
KID = "client/client1/symmetric"

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    group = start_sentinel_group(tmp_path_factory.mktemp("sentinel"))
    try:
        yield group
    finally:
        group.stop()


@pytest.fixture
def own_group(tmp_path: Path) -> Iterator[SentinelGroup]:
    group = start_sentinel_group(tmp_path / "own")
    try:
        yield group
    finally:
        group.stop()


@pytest.fixture
def prefix() -> str:
    return f"sentinel-{uuid.uuid4().hex[:10]}/.acrakeys"


@pytest.fixture
def make_sentinel_store(
    group: SentinelGroup, prefix: str, open_stores: Callable[..., RedisKeyStore]
) -> Callable[..., RedisKeyStore]:
    return functools.partial(open_stores, group.options(prefix))


# -- options -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"sentinels": "h:26379", "url": "redis://h:6379/0"}, "'url' and 'sentinels' are both"),
        ({"sentinels": "h:26379"}, "needs 'service_name'"),
        ({"service_name": "keys"}, "'sentinels' is not"),
        ({"sentinels": "h:x", "service_name": "keys"}, "no valid port"),
        ({"sentinels": "a/b", "service_name": "keys"}, "is not host:port"),
        ({"read_from_replicas": True}, "needs Sentinel mode"),
        ({"wait_replicas": "many"}, "auto or a number"),
        (
            {"sentinels": "h", "service_name": "k", "ca_cert": "/x"},
            "neither 'tls' nor 'sentinel_tls'",
        ),
        ({"tls": True}, "'tls' needs Sentinel mode.*rediss://"),
        ({"sentinel_tls": True}, "'sentinel_tls' needs Sentinel mode"),
    ],
)
def test_bad_sentinel_options(options: dict[str, object], expected: str) -> None:
    from keyloader.stores.base import KeyStore

    schema = {option.name: option for option in RedisKeyStore.options}
    config = {name: option.default for name, option in schema.items()}

    def build() -> RedisKeyStore:  # as the core converts the options, then the store checks
        for name, value in options.items():
            config[name] = schema[name].convert(value, origin=name)
        return RedisKeyStore(config)

    with pytest.raises(ConfigError, match=expected):
        build()
    assert issubclass(RedisKeyStore, KeyStore)


def test_location_names_the_sentinels_and_the_service(
    group: SentinelGroup, make_sentinel_store: Callable[..., RedisKeyStore], prefix: str
) -> None:
    store = make_sentinel_store()
    assert store.location == f"redis+sentinel://{group.addresses}/{SERVICE}/0/{prefix}"


# -- the contract ------------------------------------------------------------------------


class TestSentinelKeyStoreContract(KeyStoreContract):
    @pytest.fixture
    def store(self, make_sentinel_store: Callable[..., RedisKeyStore]) -> RedisKeyStore:
        return make_sentinel_store()

    @pytest.fixture
    def reopen_store(
        self, make_sentinel_store: Callable[..., RedisKeyStore]
    ) -> Callable[..., RedisKeyStore]:
        return make_sentinel_store


# -- the CLI ----------------------------------------------------------------------------


def test_cli_keys_through_the_sentinels(group: SentinelGroup, prefix: str, tmp_path: Path) -> None:
    with generate_master_key() as master, master.to_text() as text:
        env = {**os.environ, "ACRA_MASTER_KEY": text.bytes().decode()}
        store = ["--keystore", "redis", "-s", f"sentinels={group.addresses}"]
        store += ["-s", f"service_name={SERVICE}", "--keys-dir", prefix]

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [KEYLOADER, *store, *args],
                capture_output=True,
                text=True,
                env=env,
                cwd=tmp_path,
                timeout=60,
                check=False,
            )

        assert run("keys", "generate", "--client-id", "client1").returncode == 0
        assert run("keys", "rotate", KID).returncode == 0
        listed = run("keys", "list", "--rotated", "--check")
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.count("client/client1/symmetric") == 2
        assert "false" not in listed.stdout.split()


# -- WAIT ---------------------------------------------------------------------------------


def test_writes_wait_for_the_replica_by_default(
    group: SentinelGroup, make_sentinel_store: Callable[..., RedisKeyStore]
) -> None:
    store = make_sentinel_store()
    replica = group.server(
        next(p for p in (group.master.port, group.replica.port) if p != group.current_master_port())
    )
    with generate_master_key() as master, manager(store, master) as keys:
        keys.generate(["symmetric"], client_id="client1")
        with keys.use(KID) as key:
            value = key.bytes()
    raw = replica.client().get(store.redis_key("client1_storage_sym"))
    assert raw is not None, "the write returned before the replica had it"
    assert value  # the key exists on both sides


def test_a_write_the_replicas_do_not_acknowledge_is_reported(
    own_group: SentinelGroup, prefix: str
) -> None:
    store = RedisKeyStore(own_group.options(prefix, wait_timeout=0.3))
    try:
        with generate_master_key() as master, manager(store, master) as keys:
            keys.generate(["symmetric"], client_id="client1")
            replica = own_group.replica.process
            replica.send_signal(19)  # SIGSTOP: connected, but it acknowledges nothing
            try:
                with pytest.raises(
                    KeyStoreError, match=r"0 of 1 replicas acknowledged .*unconfirmed"
                ):
                    keys.rotate(KID)
            finally:
                replica.send_signal(18)  # SIGCONT
            with keys.use(KID):  # done on the master all the same
                pass
            listed = [i for i in keys.list(rotated=True) if i.key_id == KID]
            assert len(listed) == 2
    finally:
        store.close()
    off = RedisKeyStore(own_group.options(prefix, wait_replicas="0"))
    try:
        assert off.connection.wanted_acks(off.connection.client()) == 0
    finally:
        off.close()


# -- reading from the replica -------------------------------------------------------------


def test_read_from_replicas_sends_reads_to_a_replica(
    group: SentinelGroup, make_sentinel_store: Callable[..., RedisKeyStore]
) -> None:
    writer = make_sentinel_store()
    with generate_master_key() as master, manager(writer, master) as keys:
        keys.generate(["symmetric"], client_id="client1")
    replica_port = next(
        p for p in (group.master.port, group.replica.port) if p != group.current_master_port()
    )
    before = group.server(replica_port).client().info("commandstats").get("cmdstat_get", {})
    reader = make_sentinel_store(read_from_replicas=True)
    for _ in range(5):
        assert len(reader.get("client1_storage_sym")) > 0
    after = group.server(replica_port).client().info("commandstats").get("cmdstat_get", {})
    assert after.get("calls", 0) - before.get("calls", 0) >= 5


# -- what goes wrong ---------------------------------------------------------------------


def test_a_wrong_service_name_is_reported_at_once(group: SentinelGroup, prefix: str) -> None:
    store = RedisKeyStore({**group.options(prefix), "service_name": "nope"})
    try:
        started = time.monotonic()
        with pytest.raises(KeyStoreError, match="monitors a master named 'nope'"):
            store.list()
        assert time.monotonic() - started < 5, "a wrong name waited for a failover"
    finally:
        store.close()


def test_unreachable_sentinels_fail_within_failover_timeout(prefix: str) -> None:
    addresses = f"{LOOPBACK}:{free_port()},{LOOPBACK}:{free_port()}"
    store = RedisKeyStore(
        {
            "sentinels": addresses,
            "service_name": SERVICE,
            "keys_dir": prefix,
            "failover_timeout": 1.0,
            "timeout": 0.5,
        }
    )
    try:
        started = time.monotonic()
        with pytest.raises(KeyStoreError, match=r"no Redis master .* failover_timeout"):
            store.list()
        assert time.monotonic() - started < 5
    finally:
        store.close()


def test_password_protected_sentinels_and_data_nodes(
    tmp_path: Path, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_password, sentinel_password = "data-pass-4a1f", "sentinel-pass-9c2e"
    group = start_sentinel_group(
        tmp_path / "auth", password=data_password, sentinel_password=sentinel_password
    )
    try:
        refused = RedisKeyStore({**group.options(prefix), "failover_timeout": 10.0})
        try:
            started = time.monotonic()
            with pytest.raises(AuthenticationError, match=r"sentinels .* refused authentication"):
                refused.list()  # no sentinel password
            assert time.monotonic() - started < 5, "an auth failure waited for a failover"
        finally:
            refused.close()
        no_data_password = RedisKeyStore(
            {**group.options(prefix), "sentinel_password": sentinel_password}
        )
        try:
            with pytest.raises(AuthenticationError, match="KEYLOADER_STORE_REDIS_PASSWORD"):
                no_data_password.list()
        finally:
            no_data_password.close()
        monkeypatch.setenv("KEYLOADER_STORE_REDIS_SENTINEL_PASSWORD", sentinel_password)
        secret_file = tmp_path / "redis-password"
        secret_file.write_text(data_password + "\n")
        options = {
            **group.options(prefix),
            "sentinel_password": sentinel_password,
            "password_file": str(secret_file),
        }
        store = RedisKeyStore(options)
        try:
            with generate_master_key() as master, manager(store, master) as keys:
                keys.generate(["symmetric"], client_id="client1")
                with keys.use(KID):
                    pass
            assert sentinel_password not in repr(store.settings)
            assert data_password not in store.location
        finally:
            store.close()
    finally:
        group.stop()


DEBIAN_REDIS = Path(sys.executable).parent.parent / "debian-redis" / "bin" / "redis-server"


@pytest.mark.skipif(
    not DEBIAN_REDIS.exists(),
    reason="no TLS build of redis-server: `make install` unpacks Debian's into "
    ".venv/debian-redis (.ci/debian-redis.sh), which needs apt-get",
)
def test_sentinels_and_data_nodes_over_tls(tmp_path: Path, prefix: str) -> None:
    pki = make_pki(tmp_path / "pki")
    group = start_sentinel_group(tmp_path / "tls", tls=pki, binary=str(DEBIAN_REDIS))
    try:
        options = {
            **group.options(prefix),
            "tls": True,
            "sentinel_tls": True,
            "ca_cert": str(pki["mtls_ca"]),
        }
        store = RedisKeyStore(options)
        try:
            with generate_master_key() as master, manager(store, master) as keys:
                keys.generate(["symmetric"], client_id="client1")
                keys.rotate(KID)  # WAIT over TLS too: the replica acknowledged it
                assert len([i for i in keys.list(rotated=True) if i.key_id == KID]) == 2
        finally:
            store.close()
        plain = RedisKeyStore({**group.options(prefix), "failover_timeout": 1.0, "timeout": 1.0})
        try:
            with pytest.raises(KeyStoreError):
                plain.list()  # sentinels that speak TLS only: a plain client gets nothing
        finally:
            plain.close()
        wrong_ca = make_pki(tmp_path / "other-pki")["mtls_ca"]
        refused = RedisKeyStore({**options, "ca_cert": str(wrong_ca), "failover_timeout": 10.0})
        try:
            started = time.monotonic()
            with pytest.raises(KeyStoreError, match="certificate was refused"):
                refused.list()
            assert time.monotonic() - started < 5, "a refused certificate waited for a failover"
        finally:
            refused.close()
    finally:
        group.stop()


# -- failover ------------------------------------------------------------------------------


@pytest.mark.slow
def test_sigkill_of_the_master_during_rotations(own_group: SentinelGroup, prefix: str) -> None:
    """Rotations keep coming while the master dies: after promotion they go on, and every
    rotation that returned is there; every key decrypts."""
    store = RedisKeyStore(own_group.options(prefix, failover_timeout=20.0))
    done: list[bytes] = []
    failures: list[BaseException] = []
    try:
        with generate_master_key() as master, manager(store, master) as keys:
            keys.generate(["symmetric"], client_id="client1")
            stop = threading.Event()

            def rotate_forever() -> None:
                while not stop.is_set():
                    try:
                        keys.rotate(KID)
                        with keys.use(KID) as key:
                            done.append(key.bytes())
                    except KeyStoreError as exc:  # a lock lost to the failover: typed, retried
                        failures.append(exc)
                        time.sleep(0.05)

            rotator = threading.Thread(target=rotate_forever)
            rotator.start()
            time.sleep(0.5)
            old_port = own_group.current_master_port()
            own_group.kill_master()
            own_group.wait_for_new_master(old_port)
            count = len(done)
            deadline = time.monotonic() + 20
            while len(done) < count + 5 and time.monotonic() < deadline:
                time.sleep(0.1)
            stop.set()
            rotator.join(30)
            assert len(done) >= count + 5, "rotations did not resume after the promotion"
            assert all("lock" in str(f) or "unconfirmed" in str(f) for f in failures), failures
            held = {
                keys.read(KID, info.index).bytes()
                for info in keys.list(rotated=True)
                if info.key_id == KID and info.index
            }
            assert set(done) <= held, "a rotation that returned was lost in the failover"
            assert all(result.ok for result in keys.verify())
    finally:
        store.close()


@pytest.mark.slow
def test_sigkill_of_the_master_during_a_rewrap_then_the_rerun_completes(
    own_group: SentinelGroup, prefix: str, tmp_path: Path
) -> None:
    options = ["--keystore", "redis", "-s", f"sentinels={own_group.addresses}"]
    options += ["-s", f"service_name={SERVICE}", "-s", "failover_timeout=20", "--keys-dir", prefix]
    with generate_master_key() as old, generate_master_key() as new:
        env = {**os.environ}
        with old.to_text() as text:
            env["ACRA_MASTER_KEY"] = text.bytes().decode()
        with new.to_text() as text:
            env["DST_ACRA_MASTER_KEY"] = text.bytes().decode()
        store = RedisKeyStore(own_group.options(prefix))
        try:
            with manager(store, old) as keys:
                for n in range(40):
                    keys.generate(["symmetric", "searchable"], client_id=f"client{n:03d}")
        finally:
            store.close()
        rewrap = subprocess.Popen(
            [KEYLOADER, *options, "keys", "rewrap", "--to-provider", "env"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        time.sleep(0.3)
        old_port = own_group.current_master_port()
        own_group.kill_master()
        own_group.wait_for_new_master(old_port)
        rewrap.communicate(timeout=120)  # done or failed: both are fine here
        rerun = subprocess.run(
            [KEYLOADER, *options, "keys", "rewrap", "--to-provider", "env"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert rerun.returncode == 0, rerun.stderr
        store = RedisKeyStore(own_group.options(prefix))
        try:
            with manager(store, new) as keys:
                results = keys.verify()
                assert len(results) == 80
                assert all(result.ok for result in results), [r for r in results if not r.ok]
        finally:
            store.close()


@pytest.mark.slow
def test_sigkill_of_the_master_during_an_import_then_the_rerun_completes(
    own_group: SentinelGroup, prefix: str, tmp_path: Path
) -> None:
    options = ["--keystore", "redis", "-s", f"sentinels={own_group.addresses}"]
    options += ["-s", f"service_name={SERVICE}", "-s", "failover_timeout=20", "--keys-dir", prefix]
    with generate_master_key() as master, master.to_text() as text:
        env = {**os.environ, "ACRA_MASTER_KEY": text.bytes().decode()}

        def run(*args: str, store: list[str] | None = None) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [KEYLOADER, *(store if store is not None else options), *args],
                env=env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )

        source = ["--keys-dir", str(tmp_path / "source")]
        for n in range(30):
            made = run("keys", "generate", "--client-id", f"client{n:03d}", store=source)
            assert made.returncode == 0, made.stderr
        bundle, secret = tmp_path / "keys.bundle", tmp_path / "keys.secret"
        exported = run(
            "keys",
            "export",
            "--all",
            "--output",
            str(bundle),
            "--secret-output",
            str(secret),
            store=source,
        )
        assert exported.returncode == 0, exported.stderr
        importing = subprocess.Popen(
            [
                KEYLOADER,
                *options,
                "keys",
                "import",
                "--input",
                str(bundle),
                "--secret",
                str(secret),
            ],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        time.sleep(0.2)
        old_port = own_group.current_master_port()
        own_group.kill_master()
        own_group.wait_for_new_master(old_port)
        importing.communicate(timeout=120)  # done, or failed typed: the rerun decides
        rerun = run("keys", "import", "--input", str(bundle), "--secret", str(secret))
        assert rerun.returncode == 0, rerun.stderr
        verified = run("keys", "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        listed = run("--json", "keys", "list")
        assert listed.returncode == 0, listed.stderr
        symmetric = [k for k in json.loads(listed.stdout)["keys"] if k["purpose"] == "symmetric"]
        assert len(symmetric) == 30, "an imported key is missing after the failover"


def test_a_debug_cli_workflow_through_password_sentinels_leaks_nothing(
    tmp_path: Path, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """No password (sentinels', data nodes') and no key in any output or log, DEBUG on."""
    caplog.set_level(logging.DEBUG)
    data_password, sentinel_password = "leak-data-pass-51d0", "leak-sentinel-pass-8e3a"
    group = start_sentinel_group(
        tmp_path / "auth", password=data_password, sentinel_password=sentinel_password
    )
    try:
        with generate_master_key() as master, master.to_text() as text:
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("KEYLOADER_")},
                "ACRA_MASTER_KEY": text.bytes().decode(),
                "KEYLOADER_STORE_REDIS_PASSWORD": data_password,
                "KEYLOADER_STORE_REDIS_SENTINEL_PASSWORD": sentinel_password,
                "KEYLOADER_LOG_LEVEL": "DEBUG",
            }
            store = ["--keystore", "redis", "-s", f"sentinels={group.addresses}"]
            store += ["-s", f"service_name={SERVICE}", "--keys-dir", prefix]
            workflow = Workflow(caplog)
            workflow.run_process(*store, "keys", "generate", "--client-id", "client1", env=env)
            workflow.run_process(*store, "keys", "rotate", KID, env=env)
            workflow.run_process(*store, "keys", "list", "--rotated", "--check", env=env)
            workflow.run_process(*store, "config", "show", env=env)
            wrong = {
                **env,
                "KEYLOADER_STORE_REDIS_SENTINEL_PASSWORD": "not-it-" + sentinel_password,
            }
            workflow.run_process(*store, "keys", "list", env=wrong, expect=1)
            refused = {**env, "KEYLOADER_STORE_REDIS_PASSWORD": "not-it-" + data_password}
            workflow.run_process(*store, "keys", "list", env=refused, expect=1)
            reader = RedisKeyStore(
                {
                    **group.options(prefix),
                    "password": data_password,
                    "sentinel_password": sentinel_password,
                }
            )
            try:
                with manager(reader, master) as keys:
                    secrets_ = [
                        keys.read(info.key_id, info.index).bytes()
                        for info in keys.list(rotated=True)
                        if info.key_id and info.index
                    ]
            finally:
                reader.close()
            assert len(secrets_) == 2
            never = [data_password.encode(), sentinel_password.encode()]
            assert workflow.scan([*secrets_, master.encryption.bytes()], never=never) == 0
    finally:
        group.stop()
