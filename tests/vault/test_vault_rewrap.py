"""Master-key migration between providers against a real OpenBao server: env -> vault -> env."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from keyloader.api import open_keystore, resolve, rewrap_keystore
from keyloader.errors import MasterKeyNotFoundError
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader_vault import VaultProvider

from ..keytext import text_of
from ..rewrapcheck import settings_plaintexts as plaintexts

SYM = "client/client1/symmetric"


def vault_options(bao: Any, path: str) -> dict[str, object]:
    return {"address": bao.address, "token": bao.token, "secrets_path": path}


def store_in_vault(bao: Any, path: str, key: MasterKey) -> None:
    provider = VaultProvider(vault_options(bao, path))
    try:
        provider.store(key)
    finally:
        provider.close()


def test_env_to_vault_and_back(bao: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys_dir = tmp_path / ".acrakeys"
    path = f"secret/{uuid.uuid4().hex[:12]}"
    with generate_master_key() as env_key, generate_master_key() as vault_key:
        monkeypatch.setenv("ACRA_MASTER_KEY", text_of(env_key))
        env_settings = resolve(keys_dir=keys_dir)
        with open_keystore(env_settings) as keys:
            keys.generate(["symmetric", "searchable"], client_id="client1")
            keys.rotate(SYM)
        before = plaintexts(env_settings)
        assert len(before) == 3

        # env -> vault: the new key lives in Vault, the store follows it
        store_in_vault(bao, path, vault_key)
        report = rewrap_keystore(
            resolve(keys_dir=keys_dir, rewrap_to_options=vault_options(bao, path)),
            to_provider="vault",
        )
        assert (report.rewrapped, report.new_fingerprint) == (3, vault_key.fingerprint)
        vault_settings = resolve(
            provider="vault", provider_options=vault_options(bao, path), keys_dir=keys_dir
        )
        assert plaintexts(vault_settings) == before

        # vault -> env (DST_ACRA_MASTER_KEY by default), e.g. to move off Vault again
        with generate_master_key() as back:
            monkeypatch.setenv("DST_ACRA_MASTER_KEY", text_of(back))
            report = rewrap_keystore(vault_settings, to_provider="env")
            assert (report.rewrapped, report.skipped) == (3, 0)
            monkeypatch.setenv("ACRA_MASTER_KEY", text_of(back))
            assert plaintexts(resolve(keys_dir=keys_dir)) == before


def test_missing_vault_target_changes_nothing(
    bao: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys_dir = tmp_path / ".acrakeys"
    with generate_master_key() as env_key:
        monkeypatch.setenv("ACRA_MASTER_KEY", text_of(env_key))
        settings = resolve(keys_dir=keys_dir)
        with open_keystore(settings) as keys:
            keys.generate(["symmetric"], client_id="client1")
        snapshot = {p: p.read_bytes() for p in keys_dir.rglob("*") if p.is_file()}
        missing = f"secret/{uuid.uuid4().hex[:12]}"
        with pytest.raises(MasterKeyNotFoundError, match="rewrap target provider 'vault'"):
            rewrap_keystore(
                resolve(keys_dir=keys_dir, rewrap_to_options=vault_options(bao, missing)),
                to_provider="vault",
            )
        assert {p: p.read_bytes() for p in keys_dir.rglob("*") if p.is_file()} == snapshot


def test_cli_rewrap_env_to_vault(bao: Any, tmp_path: Path) -> None:
    """Target options come only from --to-option: the token through token_file, not argv."""
    import json
    import os
    import subprocess
    import sys

    path = f"secret/{uuid.uuid4().hex[:12]}"
    token_file = tmp_path / "token"
    token_file.write_text(bao.token)
    token_file.chmod(0o600)
    keyloader = str(Path(sys.executable).with_name("keyloader"))
    with generate_master_key() as env_key, generate_master_key() as vault_key:
        store_in_vault(bao, path, vault_key)
        env = {**os.environ, "ACRA_MASTER_KEY": text_of(env_key)}

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [keyloader, *args],
                env=env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )

        assert run("keys", "generate", "--client-id", "client1").returncode == 0
        refused = run(
            "keys", "rewrap", "--to-provider", "vault", "--to-option", f"token={bao.token}"
        )
        assert refused.returncode == 1
        assert bao.token not in refused.stderr
        assert "secret" in refused.stderr
        result = run(
            "keys",
            "rewrap",
            "--to-provider",
            "vault",
            "--json",
            "--to-option",
            f"address={bao.address}",
            "--to-option",
            f"secrets_path={path}",
            "--to-option",
            f"token_file={token_file}",
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["new_fingerprint"] == vault_key.fingerprint
        for secret in (text_of(env_key), text_of(vault_key), bao.token):
            assert secret not in result.stdout + result.stderr
