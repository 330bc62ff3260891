"""Loading the master key from a real OpenBao server: KV v1/v2, mounts, versions, auth order."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from keyloader.api import load_master_key
from keyloader.errors import AuthenticationError, ConfigError, MasterKeyNotFoundError
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader_vault import VaultProvider

from ..keytext import text_of

NAMESPACE = "team-ns"  # created by the ``bao`` fixture
APPROLE = "keyloader"


def unique() -> str:
    return f"acra-{uuid.uuid4().hex[:12]}"


def put_v2(
    bao: Any, path: str, data: dict[str, Any], mount: str = "secret", ns: str | None = None
) -> None:
    bao.admin(ns).secrets.kv.v2.create_or_update_secret(path=path, secret=data, mount_point=mount)


def put_v1(bao: Any, path: str, data: dict[str, Any], mount: str = "kv1") -> None:
    bao.admin().secrets.kv.v1.create_or_update_secret(
        path=path, secret=data, mount_point=mount, method="PUT"
    )


def make(bao: Any, **options: Any) -> VaultProvider:
    return VaultProvider({"address": bao.address, "token": bao.token, **options})


def load(bao: Any, **options: Any) -> MasterKey:
    provider = make(bao, **options)
    try:
        return provider.load()
    finally:
        provider.close()


class RequestLog:
    """Every HTTP response the provider's session received (a requests response hook): the
    token's own (``auth/token/...``: a lookup on first use, a renewal) kept apart."""

    def __init__(self, provider: VaultProvider) -> None:
        self.urls: list[str] = []
        self.token_urls: list[str] = []
        provider.http_session().hooks["response"].append(self._record)

    def _record(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        url = response.request.url or ""
        (self.token_urls if "/v1/auth/token/" in url else self.urls).append(url)


@pytest.fixture
def stored(bao: Any, key: MasterKey) -> str:
    """A KV v2 secret ``secret/<name>`` holding ``key`` and another field."""
    name = unique()
    put_v2(bao, name, {"acra_master_key": text_of(key), "note": "kept"})
    return f"secret/{name}"


# -- KV versions and mounts ---------------------------------------------------------------


def test_kv2_auto_is_one_request(bao: Any, key: MasterKey, stored: str) -> None:
    """The common case, a KV v2 mount at the first segment: read at once, no detection."""
    provider = make(bao, secrets_path=stored)
    log = RequestLog(provider)
    try:
        with provider.load() as loaded:
            assert loaded == key
    finally:
        provider.close()
    assert log.urls == [f"{bao.address}/v1/secret/data/{stored.split('/', 1)[1]}"]


def test_kv1_auto_falls_back_to_detection(bao: Any, key: MasterKey) -> None:
    name = unique()
    put_v1(bao, name, {"acra_master_key": text_of(key)})
    provider = make(bao, secrets_path=f"kv1/{name}")
    log = RequestLog(provider)
    try:
        with provider.load() as loaded:
            assert loaded == key
    finally:
        provider.close()
    assert log.urls == [
        f"{bao.address}/v1/kv1/data/{name}",  # the KV v2 guess: not found there
        f"{bao.address}/v1/sys/internal/ui/mounts/kv1/{name}",
        f"{bao.address}/v1/kv1/{name}",
    ]


def test_a_kv1_secret_named_data_is_not_mistaken_for_kv2(bao: Any, key: MasterKey) -> None:
    """On KV v1, ``kv1/data/<name>`` is a plain path: its answer has no metadata."""
    name = unique()
    put_v1(bao, f"data/{name}", {"acra_master_key": "decoy"})
    put_v1(bao, name, {"acra_master_key": text_of(key)})
    with load(bao, secrets_path=f"kv1/{name}") as loaded:
        assert loaded == key


def test_kv1_auto_detection(bao: Any, key: MasterKey) -> None:
    name = unique()
    put_v1(bao, name, {"acra_master_key": text_of(key)})
    with load(bao, secrets_path=f"kv1/{name}") as loaded:
        assert loaded == key


@pytest.mark.parametrize(("mount", "version"), [("team/kv", 2), ("team/kv1", 1)])
def test_nested_mounts_are_detected(bao: Any, key: MasterKey, mount: str, version: int) -> None:
    name = f"{unique()}/deeper"
    if version == 2:
        put_v2(bao, name, {"acra_master_key": text_of(key)}, mount=mount)
    else:
        put_v1(bao, name, {"acra_master_key": text_of(key)}, mount=mount)
    with load(bao, secrets_path=f"{mount}/{name}") as loaded:
        assert loaded == key


@pytest.mark.parametrize("secrets_path_form", ["{path}", "/{path}/", "{mount}//{name}"])
def test_slashes_in_the_path_are_normalised(
    bao: Any, key: MasterKey, stored: str, secrets_path_form: str
) -> None:
    mount, name = stored.split("/", 1)
    path = secrets_path_form.format(path=stored, mount=mount, name=name)
    with load(bao, secrets_path=path) as loaded:
        assert loaded == key


def test_pinned_kv2_is_exactly_one_request(bao: Any, key: MasterKey, stored: str) -> None:
    provider = make(bao, secrets_path=stored, kv_version="2")
    log = RequestLog(provider)
    try:
        with provider.load() as loaded:
            assert loaded == key
        assert log.urls == [f"{bao.address}/v1/secret/data/{stored.split('/', 1)[1]}"]
        with provider.load() as again:  # the session is reused; still one request per load
            assert again == key
        assert len(log.urls) == 2
    finally:
        provider.close()


def test_pinned_nested_mount_is_exactly_one_request(bao: Any, key: MasterKey) -> None:
    name = unique()
    put_v2(bao, name, {"acra_master_key": text_of(key)}, mount="team/kv")
    provider = make(bao, secrets_path=f"team/kv/{name}", kv_version="2", mount="team/kv")
    log = RequestLog(provider)
    try:
        with provider.load() as loaded:
            assert loaded == key
    finally:
        provider.close()
    assert log.urls == [f"{bao.address}/v1/team/kv/data/{name}"]


def test_pinned_kv1_is_exactly_one_request(bao: Any, key: MasterKey) -> None:
    name = unique()
    put_v1(bao, name, {"acra_master_key": text_of(key)})
    provider = make(bao, secrets_path=f"kv1/{name}", kv_version="1")
    log = RequestLog(provider)
    try:
        with provider.load() as loaded:
            assert loaded == key
    finally:
        provider.close()
    assert log.urls == [f"{bao.address}/v1/kv1/{name}"]


def test_pinned_without_mount_uses_the_first_segment(bao: Any, key: MasterKey) -> None:
    """A nested mount needs ``mount`` when pinned: the first segment alone is not a mount."""
    name = unique()
    put_v2(bao, name, {"acra_master_key": text_of(key)}, mount="team/kv")
    provider = make(bao, secrets_path=f"team/kv/{name}", kv_version="2")
    log = RequestLog(provider)
    try:
        with pytest.raises((AuthenticationError, MasterKeyNotFoundError)):
            provider.load()
    finally:
        provider.close()
    assert log.urls == [f"{bao.address}/v1/team/data/kv/{name}"]


def test_secret_version(bao: Any) -> None:
    name = unique()
    with generate_master_key() as first, generate_master_key() as second:
        put_v2(bao, name, {"acra_master_key": text_of(first)})
        put_v2(bao, name, {"acra_master_key": text_of(second)})
        with load(bao, secrets_path=f"secret/{name}") as latest:
            assert latest == second
        with load(bao, secrets_path=f"secret/{name}", secret_version=1) as old:
            assert old == first
        with load(bao, secrets_path=f"secret/{name}", secret_version=2, kv_version="2") as pin:
            assert pin == second
    with pytest.raises(MasterKeyNotFoundError, match="version 7"):
        load(bao, secrets_path=f"secret/{name}", secret_version=7)


def test_secret_version_on_a_kv1_mount_is_a_config_error(bao: Any, key: MasterKey) -> None:
    name = unique()
    put_v1(bao, name, {"acra_master_key": text_of(key)})
    with pytest.raises(ConfigError, match="KV v1"):
        load(bao, secrets_path=f"kv1/{name}", secret_version=1)


def test_v2_master_key(bao: Any) -> None:
    name = unique()
    with generate_master_key("v2") as pair:
        put_v2(bao, name, {"acra_master_key": text_of(pair)})
        with load(bao, secrets_path=f"secret/{name}") as loaded:
            assert loaded.version == "v2"
            assert loaded == pair
        with load(bao, secrets_path=f"secret/{name}", keystore_version="v2") as loaded:
            assert loaded == pair


def test_other_field_name(bao: Any, key: MasterKey) -> None:
    name = unique()
    put_v2(bao, name, {"mine": text_of(key), "acra_master_key": "not this one"})
    with load(bao, secrets_path=f"secret/{name}", field="mine") as loaded:
        assert loaded == key


def test_wrapped_base64_is_accepted(bao: Any) -> None:
    with generate_master_key() as long_key:
        name = unique()
        text = base64.encodebytes(long_key.encryption.bytes()).decode()  # 76-column lines
        put_v2(bao, name, {"acra_master_key": text})
        with load(bao, secrets_path=f"secret/{name}") as loaded:
            assert loaded == long_key


def test_namespace(bao: Any, key: MasterKey, monkeypatch: pytest.MonkeyPatch) -> None:
    name = unique()
    put_v2(bao, name, {"acra_master_key": text_of(key)}, ns=NAMESPACE)
    with load(bao, secrets_path=f"secret/{name}", namespace=NAMESPACE) as loaded:
        assert loaded == key
    with pytest.raises(MasterKeyNotFoundError, match=f"secret/{name}"):
        load(bao, secrets_path=f"secret/{name}")
    monkeypatch.setenv("VAULT_NAMESPACE", NAMESPACE)
    monkeypatch.setenv("VAULT_ADDR", bao.address)
    monkeypatch.setenv("VAULT_TOKEN", bao.token)
    with load_master_key(
        provider="vault", provider_options={"secrets_path": f"secret/{name}"}
    ) as k:
        assert k == key


# -- authentication and precedence ------------------------------------------------------------


@pytest.fixture
def env_settings(bao: Any, stored: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Library settings selecting the vault provider, the address from VAULT_ADDR."""
    monkeypatch.setenv("VAULT_ADDR", bao.address)
    return {"provider": "vault", "provider_options": {"secrets_path": stored}}


def test_vault_token_from_the_environment(
    bao: Any, key: MasterKey, env_settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", bao.token)
    with load_master_key(**env_settings) as loaded:
        assert loaded == key


def test_acra_vault_api_token(
    bao: Any, key: MasterKey, env_settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_API_TOKEN", base64.b64encode(bao.token.encode() + b"\n").decode())
    with load_master_key(**env_settings) as loaded:
        assert loaded == key


def test_acra_alias_and_keyloader_env_names(
    bao: Any, key: MasterKey, stored: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYLOADER_PROVIDER", "vault_master_key")
    monkeypatch.setenv("KEYLOADER_VAULT_ADDRESS", bao.address)
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:1")  # the KEYLOADER_ name wins
    monkeypatch.setenv("KEYLOADER_VAULT_SECRETS_PATH", stored)
    monkeypatch.setenv("KEYLOADER_VAULT_TOKEN", bao.token)
    with load_master_key() as loaded:
        assert loaded == key


def test_vault_token_beats_vault_api_token(
    bao: Any, key: MasterKey, env_settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", bao.token)
    monkeypatch.setenv("VAULT_API_TOKEN", base64.b64encode(b"wrong-token").decode())
    with load_master_key(**env_settings) as loaded:
        assert loaded == key


def test_token_file_beats_the_environment(
    bao: Any,
    key: MasterKey,
    env_settings: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(bao.token + "\n")
    monkeypatch.setenv("VAULT_TOKEN", "wrong-token")
    monkeypatch.setenv("KEYLOADER_VAULT_TOKEN_FILE", str(token_file))
    with load_master_key(**env_settings) as loaded:
        assert loaded == key


def test_token_file_is_reread_at_each_load(
    bao: Any, key: MasterKey, stored: str, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("wrong-token")
    provider = VaultProvider(
        {"address": bao.address, "secrets_path": stored, "token_file": token_file}
    )
    try:
        with pytest.raises(AuthenticationError, match=str(token_file)):
            provider.load()
        token_file.write_text(bao.token)
        with provider.load() as loaded:
            assert loaded == key
    finally:
        provider.close()


@pytest.fixture
def approle(bao: Any) -> tuple[str, str]:
    """The role id and a fresh secret id of the ``keyloader`` AppRole."""
    admin = bao.admin()
    role_id = admin.auth.approle.read_role_id(APPROLE)["data"]["role_id"]
    secret_id = admin.auth.approle.generate_secret_id(APPROLE)["data"]["secret_id"]
    return role_id, secret_id


def test_approle_with_secret_id_file(
    bao: Any, key: MasterKey, stored: str, approle: tuple[str, str], tmp_path: Path
) -> None:
    role_id, secret_id = approle
    secret_file = tmp_path / "secret-id"
    secret_file.write_text(secret_id + "\n")
    provider = VaultProvider(
        {
            "address": bao.address,
            "secrets_path": stored,
            "role_id": role_id,
            "secret_id_file": secret_file,
            "token": "wrong-token",  # AppRole comes before VAULT_TOKEN
        }
    )
    log = RequestLog(provider)
    try:
        with provider.load() as loaded:
            assert loaded == key
    finally:
        provider.close()
    assert log.urls[0] == f"{bao.address}/v1/auth/approle/login"


def test_approle_secret_id_from_the_environment(
    bao: Any,
    key: MasterKey,
    env_settings: dict[str, Any],
    approle: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    role_id, secret_id = approle
    monkeypatch.setenv("KEYLOADER_VAULT_ROLE_ID", role_id)
    monkeypatch.setenv("KEYLOADER_VAULT_SECRET_ID", secret_id)
    with load_master_key(**env_settings) as loaded:
        assert loaded == key


def test_approle_with_a_wrong_secret_id(
    bao: Any, stored: str, approle: tuple[str, str], tmp_path: Path
) -> None:
    role_id, _ = approle
    wrong = str(uuid.uuid4())
    provider = VaultProvider(
        {"address": bao.address, "secrets_path": stored, "role_id": role_id, "secret_id": wrong}
    )
    try:
        with pytest.raises(AuthenticationError, match="AppRole login at auth/approle") as caught:
            provider.load()
    finally:
        provider.close()
    assert wrong not in str(caught.value)
    assert wrong not in str(caught.value.__cause__)


def test_home_vault_token_is_never_read(
    bao: Any, stored: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = Path.home()
    (home / ".vault-token").write_text(bao.token)
    monkeypatch.setenv("VAULT_ADDR", bao.address)
    with pytest.raises(ConfigError, match="no Vault credentials") as caught:
        load_master_key(provider="vault", provider_options={"secrets_path": stored})
    assert "~/.vault-token" in str(caught.value)


def test_hvac_environment_is_ignored(
    bao: Any, key: MasterKey, stored: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Options given to the provider win over what hvac and requests would read themselves."""
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:1")
    monkeypatch.setenv("VAULT_TOKEN", "wrong-token")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    with load(bao, secrets_path=stored) as loaded:
        assert loaded == key
