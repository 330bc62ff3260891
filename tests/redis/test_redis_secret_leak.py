"""Security regression for the ``redis`` key store: a full CLI workflow at DEBUG level never
shows key material, stored values or the Redis password (docs/cli.md).

Only ``keys read`` and ``master-key generate`` without ``--output`` may print keys; the
values stored in Redis and the Redis password never appear in any output or log record.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey
from keyloader.secret import SecretBytes
from keyloader_redis import RedisKeyStore

from ..leakscan import Captured, Workflow
from .conftest import PASSWORD, RedisServer

CLIENTS = ("alpha-client", "beta-client")
WRONG_PASSWORD = "wrong-redis-pass-0b9e"
PASSWORD_ENV = "KEYLOADER_STORE_REDIS_PASSWORD"


def stored_blobs(server: RedisServer, prefix: str) -> dict[str, bytes]:
    """Every blob under ``prefix``, read with a plain redis client: Redis key -> decoded value."""
    client = server.client()
    try:
        keys = sorted(k.decode() for k in client.scan_iter(match=f"{prefix}/*"))
        values = {key: client.get(key) for key in keys}
    finally:
        client.close()
    blobs = {}
    for key, value in values.items():
        assert isinstance(value, bytes), key
        blobs[key] = base64.b64decode(value, validate=True)
    return blobs


def plain_keys(server: RedisServer, prefix: str, master: bytes) -> list[bytes]:
    """Every intermediate key under ``prefix`` (current and rotated), through the library."""
    store = RedisKeyStore({"url": server.url, "keys_dir": prefix, "password": server.password})
    found = []
    try:
        with KeyManager(store, MasterKey(SecretBytes(master))) as keys:
            for info in keys.list(rotated=True):
                if info.key_id is not None and info.index is not None:
                    found.append(keys.read(info.key_id, info.index).bytes())
    finally:
        store.close()
    return found


def error_line(captured: Captured) -> str:
    """The one ``error:`` line of a failed run, which must end its stderr."""
    lines = captured.stderr.decode().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, captured.stderr
    assert lines[-1] == errors[0]
    return errors[0]


def test_redis_workflow_leaks_no_secret(
    redis_auth_server: RedisServer,
    prefix: str,
    start_own_redis: Callable[..., RedisServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    server = redis_auth_server
    assert server.password == PASSWORD
    monkeypatch.setenv("KEYLOADER_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("KEYLOADER_KEYSTORE", "redis")
    monkeypatch.setenv("KEYLOADER_STORE_REDIS_URL", server.url)
    monkeypatch.setenv("KEYLOADER_STORE_REDIS_KEYS_DIR", prefix)
    monkeypatch.setenv("KEYLOADER_STORE_REDIS_PASSWORD", PASSWORD)
    monkeypatch.setenv("KEYLOADER_STORE_REDIS_TIMEOUT", "2")
    flow = Workflow(caplog)
    key_file, other_key_file = tmp_path / "master.key", tmp_path / "other.key"

    # master keys
    flow.run("master-key", "generate", "--output", str(key_file))
    flow.run("master-key", "generate", "--output", str(other_key_file), "--json")
    flow.run("master-key", "generate")
    monkeypatch.setenv("KEYLOADER_ENV_FILE", str(key_file))
    flow.run("master-key", "check")
    flow.run("master-key", "check", "--json")

    # every kind, several clients; some runs name the store on the command line
    for client in CLIENTS:
        flow.run("keys", "generate", "--client-id", client, "--symmetric", "--searchable")
    on_command_line = ["--keystore", "redis", "-s", f"url={server.url}", "--keys-dir", prefix]
    flow.run(*on_command_line, "keys", "generate", "--audit-log", "--poison-record-symmetric")
    for client in CLIENTS:
        flow.run("keys", "rotate", f"client/{client}/symmetric")
    flow.run("keys", "rotate", "audit-log", "--json")
    flow.run("keys", "list")
    flow.run(*on_command_line, "keys", "list", "--rotated", "--check")
    flow.run("--json", "keys", "list", "--rotated", "--check")
    flow.run("keys", "verify")
    flow.run("keys", "verify", "--json")
    for client in CLIENTS:
        flow.run("keys", "read", f"client/{client}/symmetric")
        flow.run("keys", "read", f"client/{client}/symmetric", "--index", "2", "--format", "raw")
        flow.run(*on_command_line, "keys", "read", f"client/{client}/searchable", "--json")
    flow.run("keys", "read", "audit-log")
    password_file = tmp_path / "redis.pass"
    password_file.write_text(PASSWORD + "\n")
    flow.run("keys", "list", "-s", f"password_file={password_file}", env={PASSWORD_ENV: None})

    # the secrets: keys through the library, stored values with a plain client
    master = key_file.read_bytes()
    secrets = [master, other_key_file.read_bytes()]
    keys = plain_keys(server, prefix, master)
    assert len(keys) == 2 * 2 + 2 + 2 + 1  # current keys of each kind, history
    secrets += keys
    blobs = stored_blobs(server, prefix)
    assert len(blobs) == len(keys)
    stored = list(blobs.values())
    never = [PASSWORD.encode(), WRONG_PASSWORD.encode()]

    # the Redis password: wrong, missing, refused on the command line, in the URL
    for debug in ("0", "1"):
        wrong = {PASSWORD_ENV: WRONG_PASSWORD, "KEYLOADER_DEBUG": debug}
        failed = flow.run("keys", "list", expect=1, env=wrong)
        assert "refused authentication" in error_line(failed)
        flow.run("keys", "read", "client/alpha-client/symmetric", expect=1, env=wrong)
    failed = flow.run("keys", "verify", expect=1, env={PASSWORD_ENV: None})
    assert PASSWORD_ENV in error_line(failed)
    refused = flow.run("-s", f"password={PASSWORD}", "keys", "list", expect=1)
    assert "refused on the command line" in error_line(refused)
    flow.run(*on_command_line, "-s", f"password={PASSWORD}", "keys", "read", "audit-log", expect=1)
    flow.run("-s", PASSWORD, "keys", "list", expect=2)  # not KEY=VALUE: a usage error
    in_url = server.url.replace("redis://", f"redis://:{PASSWORD}@")
    failed = flow.run("-s", f"url={in_url}", "keys", "list", expect=1)
    assert "carries a password" in error_line(failed)
    flow.run("keys", "list", expect=1, env={"KEYLOADER_STORE_REDIS_URL": in_url})
    config = tmp_path / "keyloader.toml"
    no_env = {PASSWORD_ENV: None}
    config.write_text(f'keystore = "redis"\n[stores.redis]\npassword = "{PASSWORD}"\n')
    flow.run("--config", str(config), "keys", "list", "--check", env=no_env)
    config.write_text(f'[stores.redis]\npasswd = "{PASSWORD}"\n')  # a misspelt option
    failed = flow.run("--config", str(config), "keys", "list", expect=1, env=no_env)
    assert "'passwd'" in error_line(failed)
    config.write_text(f'[stores.redis]\npassword = "{PASSWORD}" x\n')  # not TOML
    flow.run("--config", str(config), "keys", "list", expect=1, env=no_env)
    config.write_text(f'[stores.redis]\npassword = "{WRONG_PASSWORD}"\n')
    flow.run(
        "--config", str(config), "keys", "list", expect=1, env={**no_env, "KEYLOADER_DEBUG": "1"}
    )
    password_file.write_text(WRONG_PASSWORD)
    flow.run("keys", "list", "-s", f"password_file={password_file}", expect=1)  # and the env too
    flow.run(
        "keys",
        "list",
        "-s",
        f"password_file={password_file}",
        expect=1,
        env={PASSWORD_ENV: None, "KEYLOADER_DEBUG": "1"},
    )

    # a server that stops in the middle of the run
    own = start_own_redis(password=PASSWORD)
    at_own = ["-s", f"url={own.url}", "-s", "timeout=1"]
    flow.run(*at_own, "keys", "generate", "--client-id", "gamma-client", "--symmetric")
    secrets += plain_keys(own, prefix, master)
    stored += stored_blobs(own, prefix).values()
    own.stop()
    failed = flow.run(*at_own, "keys", "list", expect=1, env={"KEYLOADER_LOG_LEVEL": None})
    assert failed.stderr.decode().splitlines() == [error_line(failed)]
    assert own.url in error_line(failed)
    flow.run(*at_own, "keys", "read", "client/gamma-client/symmetric", expect=1)
    flow.run(*at_own, "keys", "verify", expect=1, env={"KEYLOADER_DEBUG": "1"})

    # the wrong master key, with and without tracebacks
    wrong_master = ["-o", f"file={other_key_file}"]
    flow.run("keys", "read", "client/alpha-client/symmetric", *wrong_master, expect=1)
    flow.run("keys", "verify", *wrong_master, expect=1)
    flow.run("keys", "list", "--check", *wrong_master, env={"KEYLOADER_DEBUG": "1"})
    flow.run(
        "keys",
        "read",
        "client/alpha-client/symmetric",
        *wrong_master,
        expect=1,
        env={"KEYLOADER_DEBUG": "1"},
    )

    # stored values broken behind keyloader's back, with a plain client
    raw = server.client()
    try:
        corrupt_key = f"{prefix}/alpha-client_storage_sym"
        tampered_key = f"{prefix}/beta-client_hmac"
        original = raw.get(corrupt_key)
        assert isinstance(original, bytes)
        raw.set(corrupt_key, b"!" + original)  # not base64, and holds the real value
        for debug in ("0", "1"):
            failed = flow.run(
                "keys",
                "read",
                "client/alpha-client/symmetric",
                expect=1,
                env={"KEYLOADER_DEBUG": debug},
            )
            assert corrupt_key in error_line(failed)
        flow.run("keys", "verify", "--json", expect=1)
        flow.run("keys", "list", "--rotated")
        raw.set(corrupt_key, original)
        tampered = bytearray(blobs[tampered_key])
        tampered[-1] ^= 1
        stored.append(bytes(tampered))
        raw.set(tampered_key, base64.b64encode(tampered))
        flow.run("keys", "read", "client/beta-client/searchable", expect=1)
        flow.run("keys", "verify", expect=1, env={"KEYLOADER_DEBUG": "1"})
        raw.set(tampered_key, base64.b64encode(blobs[tampered_key]))
    finally:
        raw.close()
    flow.run("keys", "verify")

    # destroy
    flow.run("keys", "destroy", "client/alpha-client/symmetric", "--index", "2")
    flow.run("keys", "destroy", "client/beta-client/symmetric", "--json")
    flow.run("keys", "destroy", "client/gamma-client/symmetric", expect=1)
    flow.run("keys", "list", "--rotated", "--check", "--json")

    # one end-to-end process with DEBUG logs and the password in its environment
    listed = flow.run_process("keys", "list", "--rotated", "--check", env=os.environ)
    assert f"{server.url}/{prefix}/".encode() in listed.stdout

    # backup to a second prefix, then a master-key rewrap
    bundle, bundle_secret = tmp_path / "keys.bundle", tmp_path / "keys.secret"
    flow.run(
        "keys", "export", "--all", "--output", str(bundle), "--secret-output", str(bundle_secret)
    )
    secrets.append(bundle_secret.read_bytes())
    restored = f"{prefix}-restored"
    restore = ["--keys-dir", restored, "keys", "import", "--input", str(bundle)]
    flow.run(*restore, "--secret", str(other_key_file), expect=1)  # the wrong secret
    flow.run(*restore, "--secret", str(bundle_secret), "--json")
    flow.run("--keys-dir", restored, "keys", "verify")
    stored += stored_blobs(server, restored).values()
    to_other = ["keys", "rewrap", "--to-provider", "env", "--to-option", f"file={other_key_file}"]
    flow.run(*to_other, "--dry-run", "--json")
    flow.run("keys", "rewrap", "--to-provider", "env", "--to-option", f"file={key_file}", expect=1)
    flow.run(*to_other)
    flow.run(*to_other, "--json", "-o", f"file={other_key_file}", expect=1)  # same key: refused
    flow.run("keys", "verify", "-o", f"file={other_key_file}")
    rewrapped = stored_blobs(server, prefix)
    assert not set(rewrapped.values()) & set(stored)
    stored += rewrapped.values()

    assert any(r.levelno == logging.DEBUG for r in caplog.records)
    assert any(b"DEBUG keyloader.cli: settings" in c.stderr for c in flow.captured)
    assert any(b"refused authentication" in c.stderr for c in flow.captured)
    printed_keys = flow.scan(secrets, never=[*never, *stored])
    assert printed_keys >= len(CLIENTS) * 3  # the scan sees what `keys read` printed
