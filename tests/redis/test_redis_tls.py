"""``rediss://`` against a real redis-server behind a TLS-terminating proxy (see tls_proxy.py).

The bundled redis-server has no TLS build, so :class:`TLSProxy` terminates TLS
in front of it, as stunnel or Envoy would. Checked: the CA (``ca_cert``, the
system CAs, a foreign CA), the host name, mutual TLS, missing TLS files, and the
CLI. Every refusal is a typed one-line error naming the URL, and writes nothing.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from keyloader.errors import ConfigError, KeyNotFoundError, KeyStoreError
from keyloader.masterkey import generate_master_key
from keyloader_redis import RedisKeyStore

from ..pki import make_pki
from .conftest import LOOPBACK, RedisServer
from .tls_proxy import TLSProxy, server_context

KEYLOADER = str(Path(sys.executable).with_name("keyloader"))
PKI = dict[str, Path]
ProxyFactory = Callable[..., TLSProxy]
StoreFactory = Callable[..., RedisKeyStore]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    """The test CA, a server cert for 127.0.0.1/localhost, a client cert."""
    return make_pki(tmp_path_factory.mktemp("redis-pki"))


@pytest.fixture
def start_proxy(redis_server: RedisServer, pki: PKI) -> Iterator[ProxyFactory]:
    """TLS proxies in front of the shared server; all stopped (threads joined) at the end."""
    started: list[TLSProxy] = []

    def start(certs: PKI | None = None, *, mutual: bool = False) -> TLSProxy:
        certs = certs or pki
        client_ca = certs["mtls_ca"] if mutual else None
        context = server_context(certs["server_cert"], certs["server_key"], client_ca=client_ca)
        proxy = TLSProxy(context, redis_server.port).start()
        started.append(proxy)
        return proxy

    try:
        yield start
    finally:
        for proxy in started:
            proxy.stop()


@pytest.fixture
def proxy(start_proxy: ProxyFactory) -> TLSProxy:
    """One TLS proxy with the test PKI's server certificate."""
    return start_proxy()


@pytest.fixture
def open_store(prefix: str) -> Iterator[StoreFactory]:
    """Stores under this test's prefix with the given options; all closed at the end."""
    made: list[RedisKeyStore] = []

    def open_(url: str, **options: object) -> RedisKeyStore:
        store = RedisKeyStore({"url": url, "keys_dir": prefix, "timeout": 5, **options})
        made.append(store)
        return store

    try:
        yield open_
    finally:
        for store in made:
            store.close()


def stored_keys(server: RedisServer, prefix: str) -> list[str]:
    """The Redis keys under ``prefix``, read with a plain client on the real server."""
    client = server.client()
    try:
        return sorted(key.decode() for key in client.scan_iter(match=f"{prefix}/*"))
    finally:
        client.close()


def assert_refused(
    store: RedisKeyStore, url: str, server: RedisServer, prefix: str, *hints: str
) -> KeyStoreError:
    """Writing and reading both fail with a one-line ``KeyStoreError``; nothing is written."""
    with pytest.raises(KeyStoreError) as written:
        store.create("client1_storage_sym", b"blob")
    with pytest.raises(KeyStoreError) as read:
        store.get("client1_storage_sym")  # not KeyNotFoundError: nothing was looked up
    for error in (written.value, read.value):
        message = str(error)
        assert url in message
        assert "Traceback" not in message
        assert len(message.splitlines()) == 1
        for hint in hints:
            assert hint in message
    assert stored_keys(server, prefix) == []
    return written.value


# -- the happy path -----------------------------------------------------------------------


def test_round_trip_lands_in_the_real_server(
    proxy: TLSProxy, pki: PKI, open_store: StoreFactory, redis_server: RedisServer, prefix: str
) -> None:
    store = open_store(proxy.url, ca_cert=pki["mtls_ca"])
    store.create("client1_storage_sym", b"first blob")
    assert store.get("client1_storage_sym") == b"first blob"
    timestamp = store.rotate("client1_storage_sym", b"second blob")
    assert store.get("client1_storage_sym") == b"second blob"
    assert store.get_history("client1_storage_sym", timestamp) == b"first blob"
    [listed] = store.list()
    assert (listed.name, listed.current, listed.history) == (
        "client1_storage_sym",
        True,
        (timestamp,),
    )
    with pytest.raises(KeyNotFoundError):
        store.get("client2_storage_sym")

    raw = redis_server.client()
    try:
        assert raw.get(f"{prefix}/client1_storage_sym") == base64.b64encode(b"second blob")
        old = raw.get(f"{prefix}/client1_storage_sym.old/{timestamp}")
        assert old == base64.b64encode(b"first blob")
    finally:
        raw.close()
    assert stored_keys(redis_server, prefix) == [
        f"{prefix}/client1_storage_sym",
        f"{prefix}/client1_storage_sym.old/{timestamp}",
    ]
    assert proxy.accepted >= 1  # the plain server has no TLS: it all went through the proxy
    assert proxy.failures == []


def test_many_concurrent_connections_from_the_pool(
    proxy: TLSProxy, pki: PKI, open_store: StoreFactory, redis_server: RedisServer, prefix: str
) -> None:
    store = open_store(proxy.url, ca_cert=pki["mtls_ca"])
    names = [f"client{i}_storage_sym" for i in range(24)]
    barrier = threading.Barrier(len(names))

    def write_and_read(name: str) -> bytes:
        barrier.wait(timeout=10)
        store.put(name, name.encode() * 100)
        return store.get(name)

    with ThreadPoolExecutor(len(names)) as pool:
        results = list(pool.map(write_and_read, names))
    assert results == [name.encode() * 100 for name in names]
    assert stored_keys(redis_server, prefix) == sorted(f"{prefix}/{name}" for name in names)
    assert proxy.accepted > 1  # the readers ran on several pooled TLS connections
    assert proxy.failures == []


def test_stop_closes_the_port_and_joins_every_thread(
    start_proxy: ProxyFactory, pki: PKI, open_store: StoreFactory
) -> None:
    proxy = start_proxy()
    store = open_store(proxy.url, ca_cert=pki["mtls_ca"])
    store.put("client1_storage_sym", b"blob")  # leaves an open pooled connection
    assert any(t.name.startswith(f"tls-proxy-{proxy.port}-") for t in threading.enumerate())
    proxy.stop()
    assert not [t for t in threading.enumerate() if t.name.startswith(f"tls-proxy-{proxy.port}")]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((LOOPBACK, proxy.port), timeout=2).close()
    with pytest.raises(KeyStoreError, match="unreachable"):
        store.get("client1_storage_sym")


# -- the server certificate ------------------------------------------------------------------


def test_system_cas_do_not_know_the_test_ca(
    proxy: TLSProxy, open_store: StoreFactory, redis_server: RedisServer, prefix: str
) -> None:
    store = open_store(proxy.url)
    error = assert_refused(store, proxy.url, redis_server, prefix, "ca_cert", "certificate")
    assert "unreachable" not in str(error)
    assert any("UNKNOWN_CA" in failure for failure in proxy.failures)
    assert proxy.accepted == 2  # one handshake per operation: a refused certificate is final


def test_a_ca_that_did_not_sign_the_server_cert(
    proxy: TLSProxy,
    open_store: StoreFactory,
    redis_server: RedisServer,
    prefix: str,
    tmp_path: Path,
) -> None:
    foreign = make_pki(tmp_path / "foreign")
    store = open_store(proxy.url, ca_cert=foreign["mtls_ca"])
    assert_refused(store, proxy.url, redis_server, prefix, "ca_cert", "certificate")


def test_localhost_is_a_name_of_the_server_cert(
    proxy: TLSProxy, pki: PKI, open_store: StoreFactory, redis_server: RedisServer, prefix: str
) -> None:
    store = open_store(f"rediss://localhost:{proxy.port}/0", ca_cert=pki["mtls_ca"])
    store.put("client1_storage_sym", b"blob")
    assert store.get("client1_storage_sym") == b"blob"
    assert stored_keys(redis_server, prefix) == [f"{prefix}/client1_storage_sym"]


@pytest.mark.parametrize(
    ("cert_names", "good_host", "bad_host"),
    [
        (("127.0.0.1",), LOOPBACK, "localhost"),
        (("localhost",), "localhost", LOOPBACK),
    ],
)
def test_a_host_the_certificate_does_not_name_is_refused(
    start_proxy: ProxyFactory,
    open_store: StoreFactory,
    redis_server: RedisServer,
    prefix: str,
    tmp_path: Path,
    cert_names: tuple[str, ...],
    good_host: str,
    bad_host: str,
) -> None:
    certs = make_pki(tmp_path / "pki", server_names=cert_names)
    proxy = start_proxy(certs)
    bad_url = f"rediss://{bad_host}:{proxy.port}/0"
    error = assert_refused(
        open_store(bad_url, ca_cert=certs["mtls_ca"]), bad_url, redis_server, prefix, "host"
    )
    assert "mismatch" in str(error)
    # the same CA and server, under a name the certificate has: accepted
    good = open_store(f"rediss://{good_host}:{proxy.port}/0", ca_cert=certs["mtls_ca"])
    good.put("client1_storage_sym", b"blob")
    assert stored_keys(redis_server, prefix) == [f"{prefix}/client1_storage_sym"]


def test_a_cert_for_another_host_only_is_refused(
    start_proxy: ProxyFactory,
    open_store: StoreFactory,
    redis_server: RedisServer,
    prefix: str,
    tmp_path: Path,
) -> None:
    certs = make_pki(tmp_path / "pki", server_names=("redis.keyloader.test",))
    proxy = start_proxy(certs)
    for host in (LOOPBACK, "localhost"):
        url = f"rediss://{host}:{proxy.port}/0"
        store = open_store(url, ca_cert=certs["mtls_ca"])
        assert_refused(store, url, redis_server, prefix, "mismatch", "ca_cert")


def test_rediss_to_a_plain_server_times_out(
    open_store: StoreFactory, pki: PKI, redis_server: RedisServer, prefix: str
) -> None:
    url = f"rediss://{LOOPBACK}:{redis_server.port}/0"
    store = open_store(url, ca_cert=pki["mtls_ca"], timeout=0.3)
    with pytest.raises(KeyStoreError) as caught:  # redis-server waits for a line, not a hello
        store.put("client1_storage_sym", b"blob")
    assert url in str(caught.value)
    assert "did not answer within 0.3 s" in str(caught.value)
    assert stored_keys(redis_server, prefix) == []


# -- mutual TLS ------------------------------------------------------------------------------


def test_mutual_tls_with_a_client_cert(
    start_proxy: ProxyFactory,
    pki: PKI,
    open_store: StoreFactory,
    redis_server: RedisServer,
    prefix: str,
) -> None:
    proxy = start_proxy(mutual=True)
    store = open_store(
        proxy.url,
        ca_cert=pki["mtls_ca"],
        client_cert=pki["client_cert"],
        client_key=pki["client_key"],
    )
    store.create("client1_storage_sym", b"blob")
    assert store.get("client1_storage_sym") == b"blob"
    assert stored_keys(redis_server, prefix) == [f"{prefix}/client1_storage_sym"]
    assert proxy.failures == []


def test_mutual_tls_without_a_client_cert_is_refused(
    start_proxy: ProxyFactory,
    pki: PKI,
    open_store: StoreFactory,
    redis_server: RedisServer,
    prefix: str,
) -> None:
    proxy = start_proxy(mutual=True)
    store = open_store(proxy.url, ca_cert=pki["mtls_ca"])
    assert_refused(store, proxy.url, redis_server, prefix, "client_cert", "client_key")
    assert proxy.failures
    assert all("PEER_DID_NOT_RETURN_A_CERTIFICATE" in failure for failure in proxy.failures)


def test_mutual_tls_with_a_client_cert_of_another_ca_is_refused(
    start_proxy: ProxyFactory,
    pki: PKI,
    open_store: StoreFactory,
    redis_server: RedisServer,
    prefix: str,
    tmp_path: Path,
) -> None:
    foreign = make_pki(tmp_path / "foreign")
    proxy = start_proxy(mutual=True)
    store = open_store(
        proxy.url,
        ca_cert=pki["mtls_ca"],
        client_cert=foreign["client_cert"],
        client_key=foreign["client_key"],
    )
    assert_refused(store, proxy.url, redis_server, prefix, "client_cert")
    assert any("CERTIFICATE_VERIFY_FAILED" in failure for failure in proxy.failures)


# -- TLS files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["ca_cert", "client_cert", "client_key"])
def test_a_missing_tls_file_is_a_config_error(
    start_proxy: ProxyFactory,
    pki: PKI,
    open_store: StoreFactory,
    redis_server: RedisServer,
    prefix: str,
    tmp_path: Path,
    option: str,
) -> None:
    proxy = start_proxy(mutual=True)
    files = {
        "ca_cert": pki["mtls_ca"],
        "client_cert": pki["client_cert"],
        "client_key": pki["client_key"],
    }
    missing = tmp_path / "missing" / f"{option}.pem"
    store = open_store(proxy.url, **{**files, option: missing})
    with pytest.raises(ConfigError) as caught:
        store.put("client1_storage_sym", b"blob")
    message = str(caught.value)
    assert f"'{option}'" in message
    assert str(missing) in message
    assert proxy.url in message
    assert stored_keys(redis_server, prefix) == []


# -- the CLI ------------------------------------------------------------------------------------


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KEYLOADER, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_cli_over_tls(
    proxy: TLSProxy, pki: PKI, redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    master = generate_master_key()
    env = {**os.environ, "ACRA_MASTER_KEY": base64.b64encode(master.encryption.bytes()).decode()}
    base = ["--keystore", "redis", "-s", f"url={proxy.url}", "-s", f"keys_dir={prefix}"]
    tls = ["-s", f"ca_cert={pki['mtls_ca']}"]

    generated = _cli([*base, *tls, "keys", "generate", "--client-id", "tlsclient1"], env, tmp_path)
    assert generated.returncode == 0, generated.stderr
    listed = _cli([*base, *tls, "keys", "list"], env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split("\t") for line in listed.stdout.splitlines()[1:]]
    assert rows
    assert {row[0] for row in rows} == set(generated.stdout.split())
    assert all(row[-1].startswith(f"{proxy.url}/{prefix}/tlsclient1") for row in rows)
    assert stored_keys(redis_server, prefix) == sorted(
        f"{prefix}/{Path(row[-1]).name}" for row in rows
    )

    refused = _cli([*base, "keys", "list"], env, tmp_path)  # no ca_cert: system CAs
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr.startswith("error: ")
    assert len(refused.stderr.splitlines()) == 1
    assert proxy.url in refused.stderr
    assert "ca_cert" in refused.stderr
    assert "Traceback" not in refused.stderr
