"""aws-kms through the real CLI against a real moto server: store (key and alias), check, exec."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

from keyloader.masterkey import generate_master_key
from keyloader.testing.providers import assert_no_key_material

from .conftest import ACCESS_KEY, ALIAS, REGION, SECRET_KEY, MotoServer, encrypted_key, make_alias

KEYLOADER = str(Path(sys.executable).with_name("keyloader"))
CHILD = str(Path(__file__).parents[1] / "exec_child.py")
AWS = ["--enterprise", "--provider", "aws-kms"]


def chain_env(moto: MotoServer, **extra: str) -> dict[str, str]:
    """The standard AWS chain for the moto server, nothing else of the machine's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ACRA_"))}
    return {
        **env,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL_KMS": moto.url,
        **extra,
    }


def run(
    env: dict[str, str], *args: str, stdin: bytes = b"", cwd: Path
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [KEYLOADER, *args],
        input=stdin,
        capture_output=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def aliases(admin: Any) -> list[str]:
    return [entry["AliasName"] for entry in admin.list_aliases()["Aliases"]]


def key_count(admin: Any) -> int:
    return len(admin.list_keys()["Keys"])


def test_store_generate_creates_key_and_alias_and_prints_only_the_ciphertext(
    moto: MotoServer, tmp_path: Path
) -> None:
    admin = moto.admin()
    keys_before = key_count(admin)
    assert ALIAS not in aliases(admin)
    env = chain_env(moto)
    stored = run(env, *AWS, "master-key", "store", "--generate", cwd=tmp_path)
    assert stored.returncode == 0, stored.stderr
    assert ALIAS in aliases(admin), "the alias was not created"
    assert key_count(admin) == keys_before + 1
    [line] = stored.stdout.decode().splitlines()
    name, _, value = line.partition("=")
    assert name == "ACRA_MASTER_KEY"
    blob = base64.b64decode(value, validate=True)
    plaintext = admin.decrypt(KeyId=ALIAS, CiphertextBlob=blob)["Plaintext"]
    assert len(plaintext) == 32
    assert plaintext not in stored.stdout + stored.stderr
    assert base64.b64encode(plaintext) not in stored.stdout + stored.stderr
    note = stored.stderr.decode()
    assert note.startswith("keyloader: stored master key ")

    checked = run(
        {**env, "ACRA_MASTER_KEY": value}, *AWS, "--json", "master-key", "check", cwd=tmp_path
    )
    assert checked.returncode == 0, checked.stderr
    document = json.loads(checked.stdout)
    assert (document["provider"], document["version"]) == ("aws-kms", "v1")
    assert document["fingerprint"] in note

    # an existing alias is used again (matched by name and region), no second key is made
    again = run(env, *AWS, "master-key", "store", "--generate", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert key_count(admin) == keys_before + 1
    assert again.stdout != stored.stdout


def test_an_alias_of_another_region_does_not_count(moto: MotoServer, tmp_path: Path) -> None:
    make_alias(moto.admin("us-east-1"))
    env = chain_env(moto)
    stored = run(env, *AWS, "master-key", "store", "--generate", cwd=tmp_path)
    assert stored.returncode == 0, stored.stderr
    assert ALIAS in aliases(moto.admin())  # created in eu-west-1 as well


def test_store_a_v2_pair_from_stdin_with_json_output(moto: MotoServer, tmp_path: Path) -> None:
    env = chain_env(moto)
    with generate_master_key("v2") as pair, pair.to_text() as text:
        stored = run(env, *AWS, "--json", "master-key", "store", stdin=text.bytes(), cwd=tmp_path)
        assert stored.returncode == 0, stored.stderr
        document = json.loads(stored.stdout)
        assert set(document) == {"provider", "version", "fingerprint", "environment"}
        assert (document["version"], document["fingerprint"]) == ("v2", pair.fingerprint)
        assert_no_key_material((stored.stdout + stored.stderr).decode(), pair, "store output")
        value = document["environment"]["ACRA_MASTER_KEY"]
        checked = run(
            {**env, "ACRA_MASTER_KEY": value}, *AWS, "--json", "master-key", "check", cwd=tmp_path
        )
        assert json.loads(checked.stdout)["fingerprint"] == pair.fingerprint


def test_store_refuses_to_replace_a_key_without_force(moto: MotoServer, tmp_path: Path) -> None:
    admin = moto.admin()
    make_alias(admin)
    with generate_master_key() as key:
        env = chain_env(moto, ACRA_MASTER_KEY=encrypted_key(admin, key))
        refused = run(env, *AWS, "master-key", "store", "--generate", cwd=tmp_path)
        assert refused.returncode == 1
        assert refused.stdout == b""
        message = refused.stderr.decode()
        assert message.startswith("error: environment variable ACRA_MASTER_KEY already holds")
        assert key.fingerprint in message
        assert "--force" in message
        forced = run(env, *AWS, "master-key", "store", "--generate", "--force", cwd=tmp_path)
        assert forced.returncode == 0, forced.stderr


def test_force_is_refused_while_keys_decrypt_only_with_the_old_key(
    moto: MotoServer, tmp_path: Path
) -> None:
    admin = moto.admin()
    make_alias(admin)
    with generate_master_key() as key:
        env = chain_env(moto, ACRA_MASTER_KEY=encrypted_key(admin, key))
        made = run(env, *AWS, "keys", "generate", "--client-id", "client1", cwd=tmp_path)
        assert made.returncode == 0, made.stderr
        refused = run(env, *AWS, "master-key", "store", "--generate", "--force", cwd=tmp_path)
        assert refused.returncode == 1
        assert "refusing to replace master key" in refused.stderr.decode()
        assert "rewrap them to the new key first" in refused.stderr.decode()


def test_a_plaintext_master_key_in_the_variable_is_not_a_key_to_keep(
    moto: MotoServer, tmp_path: Path
) -> None:
    """Moving from env to aws-kms: ACRA_MASTER_KEY still holds the plaintext key."""
    with generate_master_key() as key, key.to_text() as text:
        env = chain_env(moto, ACRA_MASTER_KEY=text.bytes().decode())
        stored = run(env, *AWS, "master-key", "store", "--generate", cwd=tmp_path)
        assert stored.returncode == 0, stored.stderr
        assert text.bytes() not in stored.stdout + stored.stderr


def test_output_writes_an_env_file_of_mode_0600(moto: MotoServer, tmp_path: Path) -> None:
    env = chain_env(moto)
    target = tmp_path / "master-key.env"
    stored = run(
        env,
        *AWS,
        "--json",
        "master-key",
        "store",
        "--generate",
        "--output",
        str(target),
        cwd=tmp_path,
    )
    assert stored.returncode == 0, stored.stderr
    document = json.loads(stored.stdout)
    assert document["output"] == str(target)
    assert "environment" not in document
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    [line] = target.read_text().splitlines()
    assert line.startswith("ACRA_MASTER_KEY=")
    assert target.read_text().endswith("\n")
    value = line.partition("=")[2]
    checked = run(
        {**env, "ACRA_MASTER_KEY": value}, *AWS, "--json", "master-key", "check", cwd=tmp_path
    )
    assert json.loads(checked.stdout)["fingerprint"] == document["fingerprint"]


def test_output_never_replaces_a_file_and_then_nothing_is_made(
    moto: MotoServer, tmp_path: Path
) -> None:
    admin = moto.admin()
    target = tmp_path / "master-key.env"
    target.write_text("KEEP=me\n")
    env = chain_env(moto)
    refused = run(
        env, *AWS, "master-key", "store", "--generate", "--output", str(target), cwd=tmp_path
    )
    assert refused.returncode == 1
    assert "already exists" in refused.stderr.decode()
    assert target.read_text() == "KEEP=me\n"
    assert ALIAS not in aliases(admin), "KMS was asked before the output path was checked"
    missing_dir = run(
        env,
        *AWS,
        "master-key",
        "store",
        "--generate",
        "--output",
        str(tmp_path / "nope" / "x.env"),
        cwd=tmp_path,
    )
    assert missing_dir.returncode == 1
    assert "does not exist" in missing_dir.stderr.decode()


def test_another_variable_name_for_the_output(moto: MotoServer, tmp_path: Path) -> None:
    env = chain_env(moto)
    options = ["-o", "encrypted_key_variable=DST_ACRA_MASTER_KEY"]
    stored = run(env, *AWS, *options, "master-key", "store", "--generate", cwd=tmp_path)
    assert stored.returncode == 0, stored.stderr
    assert stored.stdout.startswith(b"DST_ACRA_MASTER_KEY=")


def test_store_errors_are_one_line(moto: MotoServer, tmp_path: Path) -> None:
    admin = moto.admin()
    key_id = make_alias(admin)
    admin.disable_key(KeyId=key_id)
    env = chain_env(moto)
    result = run(env, *AWS, "master-key", "store", "--generate", cwd=tmp_path)
    assert result.returncode == 1
    [line] = result.stderr.decode().splitlines()
    assert line.startswith("error: KMS key alias/acra_master_key in region eu-west-1")
    assert "is disabled" in line
    locked = run(env, "--provider", "aws-kms", "master-key", "store", "--generate", cwd=tmp_path)
    assert locked.returncode == 1
    assert "Enterprise Edition feature" in locked.stderr.decode()


# -- exec ------------------------------------------------------------------------------------


def test_exec_gives_the_service_the_key_and_not_the_aws_credentials(
    moto: MotoServer, tmp_path: Path
) -> None:
    admin = moto.admin()
    make_alias(admin)
    with generate_master_key() as key:
        env = chain_env(moto, ACRA_MASTER_KEY=encrypted_key(admin, key))
        process = subprocess.Popen(
            [KEYLOADER, *AWS, "exec", "--", sys.executable, CHILD, "ACRA_MASTER_KEY", "5"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=tmp_path,
        )
        out, err = process.communicate(timeout=60)
        assert process.returncode == 5, err
        report = json.loads(out)
        assert report["pid"] == process.pid
        assert report["fingerprint"] == key.fingerprint, "the child got the ciphertext, not the key"
        assert set(report["aws"]) == {"AWS_REGION", "AWS_ENDPOINT_URL_KMS"}
        assert_no_key_material((out + err).decode(), key, "exec output")
        kept = run(
            env,
            *AWS,
            "exec",
            "--keep-provider-env",
            "--",
            sys.executable,
            CHILD,
            "ACRA_MASTER_KEY",
            "0",
            cwd=tmp_path,
        )
        assert "AWS_SECRET_ACCESS_KEY" in json.loads(kept.stdout)["aws"]


def test_exec_with_the_credentials_file_keeps_unrelated_aws_variables(
    moto: MotoServer, tmp_path: Path, credentials_file: Path
) -> None:
    admin = moto.admin()
    make_alias(admin)
    with generate_master_key() as key:
        env = chain_env(moto, ACRA_MASTER_KEY=encrypted_key(admin, key))
        result = run(
            env,
            *AWS,
            "-o",
            f"credentials_path={credentials_file}",
            "exec",
            "--",
            sys.executable,
            CHILD,
            "ACRA_MASTER_KEY",
            "0",
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["fingerprint"] == key.fingerprint
        assert "AWS_SECRET_ACCESS_KEY" in report["aws"], "keyloader did not use them"


def test_an_aws_failure_starts_nothing(moto: MotoServer, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    env = chain_env(moto, ACRA_MASTER_KEY=base64.b64encode(b"c" * 64).decode())
    result = run(
        env,
        *AWS,
        "-o",
        "key_alias=alias/missing",
        "exec",
        "--",
        sys.executable,
        "-c",
        f"open({str(marker)!r}, 'w')",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.decode().startswith("error: KMS key alias/missing")
    assert not marker.exists()
