"""Security regression: a full CLI workflow at DEBUG level never shows key material
outside ``keys read`` and ``master-key generate`` without ``--output`` (docs/cli.md)."""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path

import pytest

from keyloader.keystore import KeyManager
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader.secret import SecretBytes
from keyloader.stores.filesystem import FilesystemKeyStore

from ..leakscan import Captured, Workflow

CLIENTS = ("alpha-client", "beta-client")


def test_full_workflow_leaks_no_key_material(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("KEYLOADER_LOG_LEVEL", "DEBUG")
    flow = Workflow(caplog)
    key_file = tmp_path / "master.key"
    other_key_file = tmp_path / "other.key"

    # master keys
    flow.run("master-key", "generate", "--output", str(key_file))
    flow.run("master-key", "generate", "--output", str(other_key_file), "--json")
    flow.run("master-key", "generate")
    flow.run("master-key", "generate", "--keystore-version", "v2", "--json")
    monkeypatch.setenv("KEYLOADER_ENV_FILE", str(key_file))
    flow.run("master-key", "check")
    flow.run("master-key", "check", "--json")

    # every kind, several clients
    for client in CLIENTS:
        flow.run("keys", "generate", "--client-id", client, "--symmetric", "--searchable")
    flow.run("keys", "generate", "--audit-log", "--poison-record-symmetric", "--json")
    for client in CLIENTS:
        flow.run("keys", "rotate", f"client/{client}/symmetric")
    flow.run("keys", "rotate", "audit-log", "--json")
    # keypairs (Themis containers), with Acra's spellings too
    flow.run("keys", "generate", "--client_id", "beta-client", "--client_storage_key")
    flow.run("keys", "generate", "--poison-record", "--json", expect=1)  # its symmetric key exists
    flow.run("keys", "generate", "--poison_record_keys", "--keys-dir", str(tmp_path / "poison"))
    flow.run("keys", "rotate", "client/beta-client/storage", "--json")
    flow.run("keys", "read", "client/beta-client/storage", "--public")
    flow.run("keys", "read", "client/beta-client/storage", "--index", "2", "--format", "raw")
    # the resolved configuration, and a service started with the key
    flow.run("config", "show")
    flow.run("--json", "config", "show")
    flow.run_process("exec", "--", "true", env=os.environ)
    flow.run_process("exec", "--", "no-such-command-here", env=os.environ, expect=127)
    flow.run("keys", "list")
    flow.run("keys", "list", "--rotated", "--check")
    flow.run("--json", "keys", "list", "--rotated", "--check")
    flow.run("keys", "verify")
    flow.run("keys", "verify", "--json")
    for client in CLIENTS:
        flow.run("keys", "read", f"client/{client}/symmetric")
        flow.run("keys", "read", f"client/{client}/symmetric", "--index", "2", "--format", "raw")
        flow.run("keys", "read", f"client/{client}/searchable", "--json")
    flow.run("keys", "read", "audit-log")
    # data operations: the keys stay inside keyloader, the values come and go
    row, sealed = tmp_path / "row.txt", tmp_path / "row.sealed"
    row.write_bytes(b"a secret row")
    alpha = "client/alpha-client/symmetric"
    flow.run("data", "encrypt", alpha, "--input", str(row), "--output", str(sealed))
    flow.run("data", "decrypt", alpha, "--input", str(sealed))
    flow.run("data", "encrypt", alpha, "--input", str(row), "--searchable", "--base64")
    flow.run("data", "encrypt", "client/beta-client/storage", "--input", str(row), "--base64")
    flow.run("data", "hash", "alpha-client", "--input", str(row), "--base64")
    flow.run("data", "poison-record", "--type", "acrablock")
    flow.run("data", "is-poison", "--input", str(sealed), expect=1)
    for debug in ("0", "1"):  # another client's key, and a value that is no container
        env = {"KEYLOADER_DEBUG": debug}
        flow.run("data", "decrypt", "client/beta-client/symmetric", "--input", str(sealed),
                 expect=1, env=env)  # fmt: skip
        flow.run("data", "decrypt", alpha, "--input", str(row), expect=1, env=env)
    flow.run_process("data", "decrypt", alpha, "--input", str(sealed), env=os.environ)

    # the secrets, read through the library (before anything is destroyed)
    master = key_file.read_bytes()
    secrets = [master, other_key_file.read_bytes()]
    store = FilesystemKeyStore({"keys_dir": Path(".acrakeys"), "lock_timeout": 5.0})
    with KeyManager(store, MasterKey(SecretBytes(master))) as keys:
        for info in keys.list(rotated=True):
            if info.key_id is not None and info.state in ("current", "rotated"):
                secrets.append(keys.read(info.key_id, info.index).bytes())
    # masters, current keys, history, the storage keypair's two private halves
    assert len(secrets) == 2 + 2 * 2 + 2 + 2 + 1 + 2

    # every error case
    flow.run("keys", "generate", "--client-id", "alpha-client", expect=1)
    flow.run("keys", "generate", "--client-id", "bad!", expect=1)
    flow.run("keys", "read", "not-a-key-id", expect=1)
    flow.run("keys", "read", "client/alpha-client/symmetric", "--index", "9", expect=1)
    flow.run("keys", "read", "client/alpha-client/symmetric", "--public", expect=1)
    flow.run("keys", "rotate", "client/alpha-client/storage", expect=1)
    flow.run("keys", "destroy", "client/gamma-client/symmetric", expect=1)
    flow.run("--provider", "nope", "master-key", "check", expect=1)
    flow.run("master-key", "check", "-o", "colour=blue", expect=1)
    flow.run("--config", str(tmp_path / "missing.toml"), "keys", "list", expect=1)
    flow.run("master-key", "generate", "--output", str(key_file), expect=1)
    flow.run("keys", "read", "client/alpha-client/symmetric", "--index", "x", expect=2)
    # the wrong master key, with and without tracebacks
    flow.run(
        "keys", "read", "client/alpha-client/symmetric", "-o", f"file={other_key_file}", expect=1
    )
    flow.run("keys", "verify", "-o", f"file={other_key_file}", expect=1)
    flow.run(
        "keys", "list", "--check", "-o", f"file={other_key_file}", env={"KEYLOADER_DEBUG": "1"}
    )
    flow.run(
        "keys",
        "read",
        "client/alpha-client/symmetric",
        "-o",
        f"file={other_key_file}",
        expect=1,
        env={"KEYLOADER_DEBUG": "1"},
    )
    # bad master keys given in the environment
    monkeypatch.delenv("KEYLOADER_ENV_FILE")
    short = base64.b64encode(master[:31]).decode()
    secrets.append(master[:31])
    for value in ("", "%%%not base64", short):
        flow.run(
            "master-key", "check", expect=1, env={"ACRA_MASTER_KEY": value, "KEYLOADER_DEBUG": "1"}
        )
    monkeypatch.setenv("KEYLOADER_ENV_FILE", str(key_file))
    # a tampered file
    path = Path(".acrakeys/beta-client_hmac")
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 1
    path.write_bytes(bytes(blob))
    flow.run("keys", "read", "client/beta-client/searchable", expect=1)
    flow.run("keys", "verify", "--json", expect=1)
    path.write_bytes(bytes(blob[:-1]) + bytes([blob[-1] ^ 1]))
    # destroy
    flow.run("keys", "destroy", "client/alpha-client/symmetric", "--index", "2")
    flow.run("keys", "destroy", "client/beta-client/symmetric", "--json")
    flow.run("keys", "list", "--rotated", "--check", "--json")

    # one end-to-end process with DEBUG logs
    flow.run_process("keys", "list", "--rotated", "--check", env=os.environ)

    # backup and master-key rotation
    bundle, bundle_secret = tmp_path / "keys.bundle", tmp_path / "keys.secret"
    flow.run(
        "keys", "export", "--all", "--output", str(bundle), "--secret-output", str(bundle_secret)
    )
    secrets.append(bundle_secret.read_bytes())
    restore = ["--keys-dir", str(tmp_path / "restored"), "keys", "import", "--input", str(bundle)]
    flow.run(*restore, "--secret", str(bundle_secret), "--json")
    flow.run(*restore, "--secret", str(other_key_file), expect=1)  # the wrong secret
    to_other = ["keys", "rewrap", "--to-provider", "env", "--to-option", f"file={other_key_file}"]
    flow.run(*to_other, "--dry-run", "--json")
    flow.run("keys", "rewrap", "--to-provider", "env", "--to-option", f"file={key_file}", expect=1)
    flow.run(*to_other)
    flow.run(*to_other, "--json", "-o", f"file={other_key_file}", expect=1)  # same key: refused

    assert any(r.levelno == logging.DEBUG for r in caplog.records)
    assert any(b"DEBUG keyloader.cli: settings" in c.stderr for c in flow.captured)
    assert any(c.stderr for c in flow.captured)
    printed_keys = flow.scan(secrets)
    assert printed_keys >= len(CLIENTS) * 3  # the scan sees what `keys read` printed


def test_the_scan_catches_a_leak(caplog: pytest.LogCaptureFixture) -> None:
    """The scan is not vacuous: each kind of leak it looks for fails it."""
    caplog.set_level(logging.DEBUG)
    secret = os.urandom(32)
    for form in (secret, base64.b64encode(secret).rstrip(b"="), secret.hex().upper().encode()):
        flow = Workflow(caplog)
        flow.captured.append(Captured(("keys", "read", "x"), 0, form, b""))
        assert flow.scan([secret]) >= 1  # `keys read` may print it
        for leak in (
            Captured(("keys", "list"), 0, b"id " + form, b""),
            Captured(("keys", "read", "x"), 1, b"", b"error: " + form),
            Captured(("master-key", "generate", "--output", "f"), 0, form, b""),
        ):
            flow.captured.append(leak)
            with pytest.raises(AssertionError, match="leaks a key"):
                flow.scan([secret])
            flow.captured.remove(leak)
        with pytest.raises(AssertionError, match="leaks a secret"):
            flow.scan([], never=[secret])  # not even `keys read` may print these
    flow = Workflow(caplog)
    flow.captured.append(Captured(("keys", "list"), 0, b"", b""))
    assert flow.scan([secret]) == 0
    logging.getLogger("keyloader.test").debug("value %s", base64.urlsafe_b64encode(secret))
    with pytest.raises(AssertionError, match="log record"):
        flow.scan([secret])


def test_keystore_v2_workflow_leaks_no_key_material(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The same scan over the keystore v2 commands, on a copy of Acra's own v2 store:
    list, verify, data, generate, rotate, destroy, export and import in Acra's format,
    migrate to v1, rewrap; with DEBUG logs and tracebacks on."""
    from ..acrav2 import copy_store, manifest

    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("KEYLOADER_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("KEYLOADER_DEBUG", "1")
    pair = manifest()["master_keys"]["v2"]
    monkeypatch.setenv("ACRA_MASTER_KEY", pair["ACRA_MASTER_KEY"])
    root = copy_store("main", tmp_path / "v2")
    flow = Workflow(caplog)
    at = ["--keys-dir", str(root)]
    flow.run(*at, "keys", "list", "--rotated", "--check")
    flow.run(*at, "--json", "keys", "verify")
    row = tmp_path / "row"
    row.write_bytes(b"a row")
    flow.run(*at, "data", "encrypt", "client/client1/symmetric", "--input", str(row), "--base64")
    flow.run(*at, "keys", "generate", "--client-id", "leak-check", "--symmetric", "--storage")
    flow.run(*at, "keys", "rotate", "client/leak-check/symmetric")
    flow.run(*at, "keys", "destroy", "client/leak-check/symmetric", "--index", "2")
    flow.run(*at, "keys", "read", "client/client1/symmetric")  # prints a key: allowed
    bundle, secret = tmp_path / "b", tmp_path / "s"
    flow.run(*at, "keys", "export", "--all", "--format", "acra", "--output", str(bundle),
             "--secret-output", str(secret))  # fmt: skip
    other = tmp_path / "other"
    flow.run("--keys-dir", str(other), "-s", "keystore_version=v2", "keys", "import",
             "--input", str(bundle), "--secret", str(secret))  # fmt: skip
    with generate_master_key() as v1, v1.to_text() as v1_text:
        monkeypatch.setenv("DST_ACRA_MASTER_KEY", v1_text.bytes().decode())
        flow.run(*at, "keys", "migrate", "--dst-keys-dir", str(tmp_path / "v1"),
                 "--dst-keystore", "v1")  # fmt: skip
        secrets = [v1.encryption.bytes()]
    with generate_master_key("v2") as new, new.to_text() as new_text:
        monkeypatch.setenv("DST_ACRA_MASTER_KEY", new_text.bytes().decode())
        flow.run(*at, "keys", "rewrap", "--to-provider", "env")
        assert new.signature is not None
        secrets += [new.encryption.bytes(), new.signature.bytes()]
    flow.run(*at, "keys", "read", "audit-log", expect=1)  # the old pair no longer verifies
    api = manifest()["v2"]["api"]
    secrets += [
        base64.b64decode(pair["encryption"]),
        base64.b64decode(pair["signature"]),
        base64.b64decode(api["client1"]["symmetric_current"]),
        base64.b64decode(api["client1"]["hmac_current"]),
        base64.b64decode(api["audit_log_current"]),
    ]
    assert flow.scan(secrets) >= 1  # `keys read` printed the client key, and only it
