"""Typed, leak-free errors from a real OpenBao server: denied, missing, bad key, down, sealed."""

from __future__ import annotations

import base64
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from keyloader.api import load_master_key
from keyloader.errors import (
    AuthenticationError,
    ConfigError,
    InvalidMasterKeyError,
    KeyloaderError,
    MasterKeyNotFoundError,
    ProviderUnavailableError,
)
from keyloader.masterkey import MasterKey
from keyloader.testing.providers import assert_no_key_material
from keyloader_vault import VaultProvider

from ..keytext import text_of
from ..servers import LOOPBACK, free_port

DENY_POLICY = "keyloader-deny"  # created by the ``bao`` fixture: reads secret/data/allowed/* only


def unique() -> str:
    return f"acra-{uuid.uuid4().hex[:12]}"


def chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def assert_no_secret(exc: BaseException, *values: str) -> None:
    """Neither the error nor anything it chains to shows any of ``values``."""
    for item in chain(exc):
        shown = [str(item), repr(item.args), repr(getattr(item, "__dict__", {}))]
        for value in values:
            assert value, "an empty secret proves nothing"
            for text in shown:
                assert value not in text, f"{type(item).__name__} shows a secret"


def fail(provider: VaultProvider, error: type[KeyloaderError]) -> KeyloaderError:
    try:
        with pytest.raises(error) as caught:
            provider.load()
    finally:
        provider.close()
    return caught.value


def make(bao: Any, **options: Any) -> VaultProvider:
    return VaultProvider({"address": bao.address, "token": bao.token, **options})


class RequestCount:
    """Responses to the load's own requests (``count``) and to all, the token's included."""

    def __init__(self, provider: VaultProvider) -> None:
        self.count = 0
        self.all = 0
        provider.http_session().hooks["response"].append(self._hook)

    def _hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.all += 1
        if "/v1/auth/token/" not in (response.request.url or ""):  # the token's own lookup
            self.count += 1


def put_v2(bao: Any, path: str, data: dict[str, Any]) -> None:
    bao.admin().secrets.kv.v2.create_or_update_secret(path=path, secret=data, mount_point="secret")


@pytest.fixture
def stored(bao: Any, key: MasterKey) -> str:
    name = unique()
    put_v2(bao, name, {"acra_master_key": text_of(key)})
    return f"secret/{name}"


@pytest.fixture
def limited_token(bao: Any) -> str:
    """A token whose policy allows reading only secret/data/allowed/*."""
    answer = bao.admin().auth.token.create(policies=[DENY_POLICY], ttl="10m")
    return str(answer["auth"]["client_token"])


# -- authorization ------------------------------------------------------------------------------


@pytest.mark.parametrize("kv_version", ["auto", "2"])
def test_denied_path(
    bao: Any, key: MasterKey, stored: str, limited_token: str, kv_version: str
) -> None:
    provider = VaultProvider(
        {
            "address": bao.address,
            "token": limited_token,
            "secrets_path": stored,
            "kv_version": kv_version,
        }
    )
    error = fail(provider, AuthenticationError)
    message = str(error)
    assert f"token invalid or lacks read on {stored}" in message
    assert bao.address in message
    assert_no_secret(error, limited_token, text_of(key))


def test_invalid_token(bao: Any, stored: str) -> None:
    bogus = "s." + secrets.token_hex(12)
    error = fail(make(bao, token=bogus, secrets_path=stored, kv_version="2"), AuthenticationError)
    assert "token invalid or lacks read" in str(error)
    assert_no_secret(error, bogus)


def test_four_hundreds_are_not_retried(bao: Any, stored: str, limited_token: str) -> None:
    for token, path, error in (
        (limited_token, stored, AuthenticationError),
        (bao.token, f"secret/{unique()}", MasterKeyNotFoundError),
    ):
        provider = make(bao, token=token, secrets_path=path, kv_version="2", retries=5)
        count = RequestCount(provider)
        fail(provider, error)
        assert count.count == 1


# -- what is stored ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["secret/{name}", "kv1/{name}", "team/kv/{name}/x"])
def test_missing_secret(bao: Any, path: str) -> None:
    secrets_path = path.format(name=unique())
    error = fail(make(bao, secrets_path=secrets_path), MasterKeyNotFoundError)
    assert secrets_path in str(error)
    assert bao.address in str(error)
    assert_no_secret(error, bao.token)


def test_deleted_latest_version(bao: Any, key: MasterKey) -> None:
    name = unique()
    put_v2(bao, name, {"acra_master_key": text_of(key)})
    bao.admin().secrets.kv.v2.delete_latest_version_of_secret(path=name, mount_point="secret")
    error = fail(make(bao, secrets_path=f"secret/{name}"), MasterKeyNotFoundError)
    assert "was deleted" in str(error)
    assert_no_secret(error, bao.token, text_of(key))


def test_destroyed_version(bao: Any, key: MasterKey) -> None:
    name = unique()
    put_v2(bao, name, {"acra_master_key": text_of(key)})
    put_v2(bao, name, {"acra_master_key": text_of(key), "v": "2"})
    bao.admin().secrets.kv.v2.destroy_secret_versions(path=name, versions=[1], mount_point="secret")
    provider = make(bao, secrets_path=f"secret/{name}", secret_version=1, kv_version="2")
    error = fail(provider, MasterKeyNotFoundError)
    assert "version 1" in str(error)
    assert "destroyed" in str(error)


def test_missing_field(bao: Any, key: MasterKey) -> None:
    name = unique()
    put_v2(bao, name, {"other": text_of(key)})
    error = fail(make(bao, secrets_path=f"secret/{name}"), MasterKeyNotFoundError)
    assert "no field 'acra_master_key'" in str(error)
    assert "'other'" in str(error)  # field names, never values
    assert_no_secret(error, bao.token, text_of(key))


@pytest.mark.parametrize("value", [42, {"nested": "x"}, None, ["a"]])
def test_field_not_a_string(bao: Any, value: object) -> None:
    name = unique()
    put_v2(bao, name, {"acra_master_key": value})
    error = fail(make(bao, secrets_path=f"secret/{name}"), MasterKeyNotFoundError)
    assert "field 'acra_master_key'" in str(error)
    assert "not a string" in str(error)


def test_empty_field(bao: Any) -> None:
    name = unique()
    put_v2(bao, name, {"acra_master_key": "  "})
    error = fail(make(bao, secrets_path=f"secret/{name}"), MasterKeyNotFoundError)
    assert "field 'acra_master_key'" in str(error)


def test_short_key(bao: Any) -> None:
    name = unique()
    short = base64.b64encode(secrets.token_bytes(16)).decode()
    put_v2(bao, name, {"acra_master_key": short})
    error = fail(make(bao, secrets_path=f"secret/{name}"), InvalidMasterKeyError)
    assert "16 bytes" in str(error)
    assert f"secret/{name}" in str(error)
    assert_no_secret(error, short, bao.token)


def test_bad_base64(bao: Any) -> None:
    name = unique()
    bad = base64.b64encode(secrets.token_bytes(32)).decode()[:20] + "*" + "A" * 23
    put_v2(bao, name, {"acra_master_key": bad})
    error = fail(make(bao, secrets_path=f"secret/{name}"), InvalidMasterKeyError)
    assert "position 21" in str(error)
    assert_no_secret(error, bad[:20], bao.token)


def test_v2_pair_with_equal_keys(bao: Any) -> None:
    name = unique()
    same = base64.b64encode(secrets.token_bytes(32)).decode()
    pair = base64.b64encode(f'{{"encryption":"{same}","signature":"{same}"}}'.encode()).decode()
    put_v2(bao, name, {"acra_master_key": pair})
    error = fail(make(bao, secrets_path=f"secret/{name}"), InvalidMasterKeyError)
    assert "equal" in str(error)
    assert_no_secret(error, same, pair)


def test_mount_without_a_secret(bao: Any) -> None:
    error = fail(make(bao, secrets_path="secret/"), ConfigError)
    assert "secret/" in str(error)
    assert "<mount>/<secret>" in str(error)


def test_not_a_kv_engine(bao: Any) -> None:
    error = fail(make(bao, secrets_path="cubbyhole/x"), ConfigError)
    assert "'cubbyhole'" in str(error)


def test_errors_through_the_library_api(
    bao: Any, stored: str, limited_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_ADDR", bao.address)
    monkeypatch.setenv("VAULT_TOKEN", limited_token)
    with pytest.raises(AuthenticationError) as denied:
        load_master_key(provider="vault", provider_options={"secrets_path": stored})
    assert_no_secret(denied.value, limited_token)
    monkeypatch.setenv("VAULT_TOKEN", bao.token)
    missing = f"secret/{unique()}"
    with pytest.raises(MasterKeyNotFoundError, match=missing) as absent:
        load_master_key(provider="vault_master_key", provider_options={"secrets_path": missing})
    assert_no_secret(absent.value, bao.token)


# -- the server is unavailable -------------------------------------------------------------------


def test_server_down_fails_within_the_deadline(
    start_own_bao: Callable[..., Any], key: MasterKey
) -> None:
    server = start_own_bao()
    address, token = server.address, server.token
    server.stop()  # the port now refuses connections
    provider = VaultProvider(
        {"address": address, "token": token, "secrets_path": "secret/x", "retries": 3}
    )
    started = time.monotonic()
    error = fail(provider, ProviderUnavailableError)
    elapsed = time.monotonic() - started
    message = str(error)
    assert "Connection refused" in message
    assert "4 attempts" in message
    assert address in message
    assert elapsed < 5
    assert_no_secret(error, token)


def test_deadline_includes_the_backoff(bao: Any) -> None:
    provider = VaultProvider(
        {
            "address": refused_address(),
            "token": bao.token,
            "secrets_path": "secret/x",
            "retries": 20,
            "timeout": 0.6,
        }
    )
    started = time.monotonic()
    error = fail(provider, ProviderUnavailableError)
    elapsed = time.monotonic() - started
    assert "0.6 s timeout" in str(error)
    assert elapsed < 0.6 + 0.5  # the deadline, plus slack for a busy machine
    assert_no_secret(error, bao.token)


def test_sealed_server(start_own_bao: Callable[..., Any], key: MasterKey) -> None:
    server = start_own_bao()
    admin = server.admin()
    admin.secrets.kv.v2.create_or_update_secret(
        path="acra", secret={"acra_master_key": text_of(key)}, mount_point="secret"
    )
    options = {"address": server.address, "token": server.token, "secrets_path": "secret/acra"}
    with load_one(VaultProvider(options)) as loaded:
        assert loaded == key
    admin.sys.seal()
    provider = VaultProvider({**options, "retries": 1})
    count = RequestCount(provider)
    error = fail(provider, ProviderUnavailableError)
    assert "is sealed" in str(error)
    assert "2 attempts" in str(error)
    assert count.all == 2  # the first request, the token's lookup, met the sealed server
    assert_no_secret(error, server.token, text_of(key))


def load_one(provider: VaultProvider) -> MasterKey:
    try:
        return provider.load()
    finally:
        provider.close()


def refused_address() -> str:
    """An address on a loopback port where nothing listens (connections are refused)."""
    return f"http://{LOOPBACK}:{free_port()}"


def test_no_error_shows_the_token_or_the_key(bao: Any, key: MasterKey, stored: str) -> None:
    """Every failure above, once more, scanned for any form of the key and the token."""
    cases: list[dict[str, Any]] = [
        {"secrets_path": f"secret/{unique()}"},
        {"secrets_path": stored, "field": "absent"},
        {"secrets_path": stored, "keystore_version": "v2"},
        {"secrets_path": stored, "token": "bogus-token-123456"},
        {"secrets_path": stored, "address": "http://127.0.0.1:1", "retries": 0},
    ]
    for options in cases:
        provider = make(bao, **options)
        try:
            with pytest.raises(KeyloaderError) as caught:
                provider.load()
        finally:
            provider.close()
        for item in chain(caught.value):
            assert_no_key_material(str(item), key, "error message")
        assert_no_secret(caught.value, bao.token, options.get("token", bao.token))


def test_rate_limited_reads_are_retried(bao: Any, key: MasterKey) -> None:
    """A rate-limit quota makes the server answer 429: retried, then reported as unavailable."""
    mount = f"limited-{uuid.uuid4().hex[:8]}"
    admin = bao.admin()
    admin.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    admin.secrets.kv.v2.create_or_update_secret(
        path="acra", secret={"acra_master_key": text_of(key)}, mount_point=mount
    )
    admin.write_data(
        f"sys/quotas/rate-limit/{mount}", data={"path": f"{mount}/", "rate": 1, "interval": "1h"}
    )
    try:
        provider = make(bao, secrets_path=f"{mount}/acra", kv_version="2", retries=3)
        count = RequestCount(provider)
        try:
            with provider.load() as loaded:  # the one request the quota allows
                assert loaded == key
            with pytest.raises(ProviderUnavailableError, match="HTTP 429") as caught:
                provider.load()
        finally:
            provider.close()
        assert count.count == 1 + 4
        assert "4 attempts" in str(caught.value)
        assert_no_secret(caught.value, bao.token, text_of(key))
    finally:
        admin.adapter.delete(f"/v1/sys/quotas/rate-limit/{mount}")


def test_the_original_exception_is_not_chained(bao: Any, stored: str, limited_token: str) -> None:
    """``__cause__`` is a scrubbed copy: no request (its headers hold the token), no context."""
    provider = make(bao, token=limited_token, secrets_path=stored, kv_version="2")
    error = fail(provider, AuthenticationError)
    assert error.__context__ is None
    cause = error.__cause__
    assert cause is not None
    assert type(cause).__name__ == "Forbidden"
    assert cause.__context__ is None
    assert cause.__cause__ is None
    assert cause.__traceback__ is None
    assert getattr(cause, "json", None) is None
    down = fail(make(bao, address=refused_address(), retries=0), ProviderUnavailableError)
    assert isinstance(down.__cause__, requests.exceptions.ConnectionError)
    assert down.__cause__.request is None
    assert down.__context__ is None


def test_redaction_leaves_short_secrets_and_its_own_placeholder_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A dev token ``root`` or a one-letter one is no secret a filter can hide: messages keep
    their words, and the placeholder is never redacted again; a real token is."""
    from keyloader_vault.failures import redact

    text = "secret/root/acra at http://vault:8200 refused hvs.CAESIlongtoken123 (token t)"
    with caplog.at_level(logging.DEBUG, logger="keyloader_vault"):
        shown = redact(text, ("root", "t", "hvs.CAESIlongtoken123", "CAESIlongtoken1"))
    assert shown == "secret/root/acra at http://vault:8200 refused <redacted> (token t)"
    assert "shorter than 8 characters" in caplog.text
    assert redact("<redacted> and redacted", ("redacted",)) == "<<redacted>> and <redacted>"
