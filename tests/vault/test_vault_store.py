"""Storing a master key into a real OpenBao server, and ``keyloader.api.store_master_key``."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from keyloader.api import load_master_key, open_keystore, resolve, store_master_key
from keyloader.errors import AuthenticationError, ConfigError, KeyExistsError
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader_vault import VaultProvider

from ..keytext import text_of

DENY_POLICY = "keyloader-deny"  # created by the ``bao`` fixture: reads secret/data/allowed/*


def unique() -> str:
    return f"acra-{uuid.uuid4().hex[:12]}"


def make(bao: Any, **options: Any) -> VaultProvider:
    return VaultProvider({"address": bao.address, "token": bao.token, **options})


def store(bao: Any, key: MasterKey, *, force: bool = False, **options: Any) -> None:
    provider = make(bao, **options)
    try:
        provider.store(key, force=force)
    finally:
        provider.close()


def load(bao: Any, **options: Any) -> MasterKey:
    provider = make(bao, **options)
    try:
        return provider.load()
    finally:
        provider.close()


def read_v2(bao: Any, name: str) -> dict[str, Any]:
    answer = bao.admin().secrets.kv.v2.read_secret_version(
        path=name, mount_point="secret", raise_on_deleted_version=True
    )
    return dict(answer["data"])


def test_provider_can_store() -> None:
    assert VaultProvider.can_store is True


@pytest.mark.parametrize("mount", ["secret", "kv1", "team/kv"])
def test_store_creates_the_secret(bao: Any, key: MasterKey, mount: str) -> None:
    path = f"{mount}/{unique()}"
    store(bao, key, secrets_path=path)
    with load(bao, secrets_path=path) as loaded:
        assert loaded == key


def test_store_v2_pair(bao: Any) -> None:
    path = f"secret/{unique()}"
    with generate_master_key("v2") as pair:
        store(bao, pair, secrets_path=path)
        with load(bao, secrets_path=path) as loaded:
            assert loaded.version == "v2"
            assert loaded == pair


def test_kv2_write_uses_check_and_set(bao: Any, key: MasterKey) -> None:
    name = unique()
    store(bao, key, secrets_path=f"secret/{name}")
    data = read_v2(bao, name)
    assert data["metadata"]["version"] == 1
    assert data["data"] == {"acra_master_key": text_of(key)}


def test_second_store_without_force_fails(bao: Any, key: MasterKey) -> None:
    path = f"secret/{unique()}"
    store(bao, key, secrets_path=path)
    with generate_master_key() as other:
        with pytest.raises(KeyExistsError, match="already holds field 'acra_master_key'") as err:
            store(bao, other, secrets_path=path)
        assert text_of(other) not in str(err.value)
        assert text_of(key) not in str(err.value)
        with load(bao, secrets_path=path) as loaded:
            assert loaded == key  # unchanged
        store(bao, other, secrets_path=path, force=True)
        with load(bao, secrets_path=path) as loaded:
            assert loaded == other


def test_other_fields_are_kept_kv2(bao: Any, key: MasterKey) -> None:
    name = unique()
    bao.admin().secrets.kv.v2.create_or_update_secret(
        path=name, secret={"note": "kept", "acra_master_key": "old"}, mount_point="secret"
    )
    store(bao, key, secrets_path=f"secret/{name}", force=True)
    data = read_v2(bao, name)
    assert data["data"] == {"note": "kept", "acra_master_key": text_of(key)}
    assert data["metadata"]["version"] == 2


def test_other_fields_are_kept_kv1(bao: Any, key: MasterKey) -> None:
    name = unique()
    admin = bao.admin()
    admin.secrets.kv.v1.create_or_update_secret(
        path=name, secret={"note": "kept"}, mount_point="kv1", method="PUT"
    )
    store(bao, key, secrets_path=f"kv1/{name}")
    answer = admin.secrets.kv.v1.read_secret(path=name, mount_point="kv1")
    assert answer["data"] == {"note": "kept", "acra_master_key": text_of(key)}


def test_store_after_the_latest_version_was_deleted(bao: Any, key: MasterKey) -> None:
    name = unique()
    admin = bao.admin()
    admin.secrets.kv.v2.create_or_update_secret(
        path=name, secret={"acra_master_key": "gone"}, mount_point="secret"
    )
    admin.secrets.kv.v2.delete_latest_version_of_secret(path=name, mount_point="secret")
    store(bao, key, secrets_path=f"secret/{name}")  # nothing live to replace: no force needed
    assert read_v2(bao, name)["metadata"]["version"] == 2
    with load(bao, secrets_path=f"secret/{name}") as loaded:
        assert loaded == key


def test_concurrent_writer_is_a_check_and_set_conflict(bao: Any, key: MasterKey) -> None:
    """Another writer between the read and the write: Vault refuses the stale ``cas``."""
    name = unique()
    provider = make(bao, secrets_path=f"secret/{name}", kv_version="2")
    admin = bao.admin()

    def interleave(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if response.request.method == "GET":
            admin.secrets.kv.v2.create_or_update_secret(
                path=name, secret={"by": "someone else"}, mount_point="secret"
            )

    provider.http_session().hooks["response"].append(interleave)
    try:
        with pytest.raises(KeyExistsError, match="check-and-set") as caught:
            provider.store(key)
    finally:
        provider.close()
    assert text_of(key) not in str(caught.value)
    assert bao.token not in str(caught.value)
    assert read_v2(bao, name)["data"] == {"by": "someone else"}


def test_store_denied(bao: Any, key: MasterKey) -> None:
    token = bao.admin().auth.token.create(policies=[DENY_POLICY], ttl="10m")["auth"]
    provider = make(
        bao, token=token["client_token"], secrets_path="secret/allowed/x", kv_version="2"
    )
    try:
        with pytest.raises(AuthenticationError, match="lacks create and update on") as caught:
            provider.store(key)
    finally:
        provider.close()
    assert token["client_token"] not in str(caught.value)
    assert text_of(key) not in str(caught.value)


# -- keyloader.api.store_master_key -------------------------------------------------------------


@pytest.fixture
def settings_for(bao: Any, tmp_path: Path) -> Any:
    def settings(path: str, **kwargs: Any) -> Any:
        return resolve(
            provider="vault",
            provider_options={"address": bao.address, "token": bao.token, "secrets_path": path},
            keys_dir=tmp_path / "keys",
            **kwargs,
        )

    return settings


def test_store_master_key_says_what_it_stored(settings_for: Any, key: MasterKey) -> None:
    settings = settings_for(f"secret/{unique()}")
    stored = store_master_key(settings, key)
    assert (stored.provider, stored.version, stored.fingerprint) == ("vault", "v1", key.fingerprint)
    assert stored.environment == {}, "vault holds the key itself: a service needs nothing more"
    assert not key.closed
    with load_master_key(settings) as loaded:
        assert loaded == key
    with generate_master_key() as other, pytest.raises(KeyExistsError):
        store_master_key(settings, other)


def test_store_master_key_refuses_providers_that_cannot_store(key: MasterKey) -> None:
    with pytest.raises(ConfigError, match="cannot store"):
        store_master_key(resolve(provider="env"), key)


def test_force_refused_while_keys_decrypt_only_with_the_old_key(
    settings_for: Any, key: MasterKey
) -> None:
    settings = settings_for(f"secret/{unique()}")
    store_master_key(settings, key)
    with open_keystore(settings) as keys:
        keys.generate(["symmetric"], client_id="client1")
        keys.rotate("client/client1/symmetric")
    with generate_master_key() as new:
        with pytest.raises(KeyExistsError, match="decrypt only with it") as caught:
            store_master_key(settings, new, force=True)
        message = str(caught.value)
        assert key.fingerprint in message
        assert "2 keys" in message  # the current key and its rotated version
        assert "rewrap" in message
        for text in (text_of(key), text_of(new)):
            assert text not in message
        with load_master_key(settings) as loaded:
            assert loaded == key  # nothing was written


def test_force_allowed_when_the_key_store_is_empty(settings_for: Any, key: MasterKey) -> None:
    settings = settings_for(f"secret/{unique()}")
    store_master_key(settings, key)
    with generate_master_key() as new:
        assert store_master_key(settings, new, force=True).fingerprint == new.fingerprint
        with load_master_key(settings) as loaded:
            assert loaded == new


def test_force_allowed_when_the_keys_are_rewrapped(
    settings_for: Any, key: MasterKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys sealed under the new key (already rewrapped) do not block the replacement."""
    settings = settings_for(f"secret/{unique()}")
    store_master_key(settings, key)
    with generate_master_key() as new:
        monkeypatch.setenv("ACRA_MASTER_KEY", text_of(new))
        with open_keystore(provider="env", keys_dir=tmp_path / "keys") as keys:
            keys.generate(["symmetric"], client_id="client1")
        assert store_master_key(settings, new, force=True).fingerprint == new.fingerprint
        with open_keystore(settings) as keys:  # the vault key now opens them
            with keys.use("client/client1/symmetric") as secret:
                assert len(secret) == 32


def test_force_with_the_same_key_is_allowed(settings_for: Any, key: MasterKey) -> None:
    settings = settings_for(f"secret/{unique()}")
    store_master_key(settings, key)
    with open_keystore(settings) as keys:
        keys.generate(["symmetric"], client_id="client1")
    assert store_master_key(settings, key, force=True).fingerprint == key.fingerprint


def test_force_replaces_an_invalid_stored_value(
    bao: Any, settings_for: Any, key: MasterKey
) -> None:
    name = unique()
    bao.admin().secrets.kv.v2.create_or_update_secret(
        path=name, secret={"acra_master_key": "not a key"}, mount_point="secret"
    )
    settings = settings_for(f"secret/{name}")
    with pytest.raises(KeyExistsError):
        store_master_key(settings, key)
    assert store_master_key(settings, key, force=True).fingerprint == key.fingerprint
    with load_master_key(settings) as loaded:
        assert loaded == key
