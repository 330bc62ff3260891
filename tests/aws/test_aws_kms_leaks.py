"""No key material from aws-kms in any output or log, DEBUG included (botocore logs bodies)."""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path

import pytest

from keyloader.masterkey import generate_master_key
from keyloader_aws import AwsKmsProvider

from ..leakscan import Workflow
from .conftest import ACCESS_KEY, ALIAS, REGION, SECRET_KEY, MotoServer, encrypted_key, make_alias


def test_cli_store_check_exec_at_debug_leak_nothing(
    moto: MotoServer, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ACRA_"))},
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL_KMS": moto.url,
        "AWS_EC2_METADATA_DISABLED": "true",
        "KEYLOADER_ENTERPRISE": "1",
        "KEYLOADER_LOG_LEVEL": "DEBUG",
    }
    workflow = Workflow(caplog)
    aws = ["--provider", "aws-kms"]
    stored = workflow.run_process(*aws, "master-key", "store", "--generate", env=env, cwd=tmp_path)
    value = stored.stdout.decode().strip().partition("=")[2]
    env["ACRA_MASTER_KEY"] = value
    plaintext = moto.admin().decrypt(KeyId=ALIAS, CiphertextBlob=base64.b64decode(value))
    key = plaintext["Plaintext"]
    caplog.clear()  # the admin client's own DEBUG records hold the plaintext it asked for
    workflow.run_process(*aws, "master-key", "check", env=env, cwd=tmp_path)
    workflow.run_process(*aws, "keys", "generate", "--client-id", "client1", env=env, cwd=tmp_path)
    workflow.run_process(*aws, "keys", "verify", env=env, cwd=tmp_path)
    workflow.run_process(*aws, "exec", "--", "true", env=env, cwd=tmp_path)
    in_process = {k: v for k, v in env.items() if k != "KEYLOADER_LOG_LEVEL"}
    workflow.run(*aws, "master-key", "check", env={**in_process, "HOME": str(tmp_path)})
    assert workflow.scan([key], never=[SECRET_KEY.encode()]) == 0


def test_an_application_at_debug_gets_botocore_logs_but_not_the_key(
    moto: MotoServer,
    credentials_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    admin = moto.admin()
    make_alias(admin)
    with generate_master_key() as key:
        monkeypatch.setenv("ACRA_MASTER_KEY", encrypted_key(admin, key))  # admin logs it
        caplog.set_level(logging.DEBUG)
        provider = AwsKmsProvider({"credentials_path": credentials_file})
        try:
            with provider.load():
                pass
            with key.to_bytes() as plain:
                provider.store(key, force=True)
                secret = plain.bytes()
        finally:
            provider.close()
        text = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records).encode()
        assert b"urllib3" in b" ".join(r.name.encode() for r in caplog.records), "nothing logged"
        for form in (secret, base64.b64encode(secret), secret.hex().encode()):
            assert form not in text
        caplog.clear()  # the application's own call, as the admin client makes it:
        admin.decrypt(KeyId=ALIAS, CiphertextBlob=base64.b64decode(encrypted_key(admin, key)))
        logged = [r for r in caplog.records if r.name.startswith("botocore")]
        assert any(r.levelno == logging.DEBUG for r in logged), "the application's logs are cut"
