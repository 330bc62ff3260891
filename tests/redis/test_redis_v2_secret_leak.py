"""Security regression for Acra keystore v2 on Redis and for ``keys migrate`` into Redis: a
whole CLI workflow at DEBUG level (generate, rotate, read, verify, destroy, both bundle
formats, rewrap to another pair, migrate v1 -> Redis v2 and Redis v2 -> Redis v1, broken
rings, wrong passwords) never shows key material, stored rings or the Redis password.

Only ``keys read`` and ``master-key generate`` without ``--output`` may print keys.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
from pathlib import Path

import pytest

from keyloader.keyrings.engine import RingKeyManager
from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, master_key_from_file_content
from keyloader_redis import RedisKeyStore

from ..leakscan import Workflow
from .conftest import PASSWORD, RedisServer

PASSWORD_ENV = "KEYLOADER_STORE_REDIS_PASSWORD"
WRONG_PASSWORD = "wrong-redis-pass-v2-51d3"


def _keys_of(server: RedisServer, prefix: str, key_file: Path) -> list[bytes]:
    """Every key under ``prefix`` (current and rotated, v1 or v2), through the library."""
    store = RedisKeyStore({"url": server.url, "keys_dir": prefix, "password": server.password})
    rings = store.key_rings()
    master = _master(key_file)
    manager = (
        RingKeyManager(rings, master, cache_size=0)
        if rings is not None
        else KeyManager(store, master, cache_size=0)
    )
    found = []
    with manager:
        for info in manager.list(rotated=True):
            if info.key_id is not None and info.index is not None:
                with manager.read(info.key_id, info.index) as key:
                    found.append(key.bytes())
    store.close()
    return found


def _stored(server: RedisServer, prefix: str) -> list[bytes]:
    """Every value under ``prefix`` as stored, and decoded where it is base64 (but public
    halves, which ``keys read --public`` prints)."""
    client = server.client()
    try:
        names = [key for key in client.scan_iter(match=f"{prefix}/*") if b".pub" not in key]
        values = [client.get(key) for key in names]
    finally:
        client.close()
    found = []
    for value in values:
        assert isinstance(value, bytes)
        if len(value) < 24:  # the version key, a lock token
            continue
        found.append(value)
        with contextlib.suppress(ValueError):  # the version key is not base64
            found.append(base64.b64decode(value, validate=True))
    return found


def _master(key_file: Path) -> MasterKey:
    return master_key_from_file_content(key_file.read_bytes(), source=str(key_file))


def _pair_secrets(key_file: Path) -> list[bytes]:
    with _master(key_file) as key:
        parts = [key.encryption.bytes()]
        if key.signature is not None:
            parts.append(key.signature.bytes())
    return [key_file.read_bytes().strip(), *parts]


def test_redis_v2_and_migrate_workflow_leaks_no_secret(
    redis_auth_server: RedisServer,
    prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    server = redis_auth_server
    for name, value in {
        "KEYLOADER_LOG_LEVEL": "DEBUG",
        "KEYLOADER_KEYSTORE": "redis",
        "KEYLOADER_STORE_REDIS_URL": server.url,
        "KEYLOADER_STORE_REDIS_KEYS_DIR": prefix,
        PASSWORD_ENV: PASSWORD,
        "KEYLOADER_STORE_REDIS_TIMEOUT": "2",
    }.items():
        monkeypatch.setenv(name, value)
    flow = Workflow(caplog)
    pair, other_pair, v1_key = tmp_path / "pair.key", tmp_path / "other.key", tmp_path / "v1.key"
    v2 = ["--keystore-version", "v2"]
    flow.run(*v2, "master-key", "generate", "--output", str(pair))
    flow.run(*v2, "master-key", "generate", "--output", str(other_pair), "--json")
    flow.run("master-key", "generate", "--output", str(v1_key))
    flow.run(*v2, "master-key", "generate")  # prints a pair: allowed
    monkeypatch.setenv("KEYLOADER_ENV_FILE", str(pair))

    # a Redis keystore v2: every command
    flow.run(*v2, "keys", "generate", "--client-id", "alpha-client", "--symmetric", "--storage")
    flow.run("keys", "generate", "--audit-log", "--poison-record")
    flow.run("keys", "rotate", "client/alpha-client/symmetric", "--json")
    flow.run("keys", "list", "--rotated", "--check")
    flow.run("--json", "keys", "verify")
    flow.run("keys", "read", "client/alpha-client/symmetric", "--index", "2")
    flow.run("keys", "read", "client/alpha-client/storage", "--format", "raw")
    flow.run("keys", "read", "client/alpha-client/storage", "--public")
    row = tmp_path / "row"
    row.write_bytes(b"a row on redis v2")
    sealed = flow.run("data", "encrypt", "client/alpha-client/symmetric", "--input", str(row))
    assert sealed.stdout.startswith(b"%%%")
    assert server.client().get(f"{prefix}/version") == b"Acra Keystore v2"

    # both bundle formats, and an import into a second prefix
    bundles = {}
    for form in ("keyloader", "acra"):
        out, secret = tmp_path / f"{form}.bundle", tmp_path / f"{form}.secret"
        args = ["--format", form, "--output", str(out), "--secret-output", str(secret)]
        flow.run("keys", "export", "--all", *args)
        bundles[form] = (out, secret)
    restored = f"{prefix}-restored"
    for out, secret in bundles.values():
        restore = ["--keys-dir", restored, "-s", "keystore_version=v2", "keys", "import"]
        flow.run(*restore, "--input", str(out), "--secret", str(secret), "--force")
        flow.run(*restore, "--input", str(out), "--secret", str(v1_key), expect=1)  # wrong one

    # broken rings, a wrong password, a v1 key on a v2 store
    raw = server.client()
    ring = f"{prefix}/client/alpha-client/storage-sym.keyring"
    original = raw.get(ring)
    assert isinstance(original, bytes)
    try:
        raw.set(ring, b"!" + original)
        for debug in ("0", "1"):
            env = {"KEYLOADER_DEBUG": debug}
            flow.run("keys", "read", "client/alpha-client/symmetric", expect=1, env=env)
        flipped = bytearray(base64.b64decode(original))
        flipped[-40] ^= 1
        raw.set(ring, base64.b64encode(flipped))
        flow.run("keys", "verify", "--json", expect=1, env={"KEYLOADER_DEBUG": "1"})
    finally:
        raw.set(ring, original)
        raw.close()
    flow.run("keys", "list", expect=1, env={PASSWORD_ENV: WRONG_PASSWORD, "KEYLOADER_DEBUG": "1"})
    flow.run("-o", f"file={v1_key}", "keys", "verify", expect=1, env={"KEYLOADER_DEBUG": "1"})

    # migrate the Redis v2 keys to a Redis v1 prefix, and a v1 directory into Redis v2
    as_v1 = f"{prefix}-v1"
    migrate = ["keys", "migrate", "--dst-store", "redis", "--dst-keys-dir", as_v1]
    to_v1 = ["--to-option", f"file={v1_key}"]
    flow.run(*migrate, "--dst-keystore", "v1", *to_v1, "--dry-run")
    flow.run(*migrate, "--dst-keystore", "v1", *to_v1, "--json")
    host_port = server.url.removeprefix("redis://").split("/")[0]
    v1_dir = tmp_path / "v1-dir"
    flow.run(
        "--keystore", "filesystem", "--keys-dir", str(v1_dir), "-o", f"file={v1_key}",
        "keys", "generate", "--client-id", "beta-client", "--symmetric",
    )  # fmt: skip
    into_v2 = [
        "--keystore", "filesystem", "-o", f"file={v1_key}", "keys", "migrate",
        "--src_keys_dir", str(v1_dir), "--dst_keystore", "v2", "--dst_keys_dir", f"{prefix}-mv2",
        "--dst_redis_host_port", host_port, "--to-option", f"file={other_pair}",
    ]  # fmt: skip
    flow.run(*into_v2)
    flow.run(*into_v2, expect=1, env={PASSWORD_ENV: WRONG_PASSWORD})

    # rewrap the v2 prefix to another pair
    flow.run("keys", "rewrap", "--to-provider", "env", "--to-option", f"file={other_pair}")
    flow.run("keys", "verify", "-o", f"file={other_pair}")
    flow.run("-o", f"file={other_pair}", "keys", "destroy", "client/alpha-client/symmetric")
    listed = flow.run_process(
        "-o", f"file={other_pair}", "keys", "list", "--rotated", "--check", env=os.environ
    )
    assert prefix.encode() in listed.stdout

    secrets = [*_pair_secrets(pair), *_pair_secrets(other_pair), *_pair_secrets(v1_key)]
    secrets += [secret.read_bytes() for _, secret in bundles.values()]
    for where, key_file in (
        (prefix, other_pair),
        (restored, pair),
        (as_v1, v1_key),
        (f"{prefix}-mv2", other_pair),
    ):
        found = _keys_of(server, where, key_file)
        assert found, where
        secrets += found
    never = [PASSWORD.encode(), WRONG_PASSWORD.encode()]
    for where in (prefix, restored, as_v1, f"{prefix}-mv2"):
        never += _stored(server, where)
    printed = flow.scan(secrets, never=never)
    assert printed >= 3  # the scan saw what `keys read` and `master-key generate` printed
