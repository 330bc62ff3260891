"""What hvac and requests get to see of a load, against a real OpenBao server.

The provider reads each answer into secret pages and hands hvac a copy without the key's
text (docs/vault.md, Memory); the token goes into each request's header as a fresh
``bytes`` and out of it once the request is sent. These tests look at what the libraries
hold, and at the answers the tokenizer must get right: large (chunked), escaped, odd.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from keyloader.errors import ConfigError, InvalidMasterKeyError
from keyloader.masterkey import MasterKey
from keyloader_vault import VaultProvider

from ..keytext import text_of
from .conftest import BaoServer


def unique() -> str:
    return f"acra-{uuid.uuid4().hex[:12]}"


def put(bao: BaoServer, data: dict[str, Any], kv_version: int = 2) -> str:
    name = unique()
    if kv_version == 2:
        bao.admin().secrets.kv.v2.create_or_update_secret(path=name, secret=data)
        return f"secret/{name}"
    bao.admin().secrets.kv.v1.create_or_update_secret(
        path=name, secret=data, mount_point="kv1", method="PUT"
    )
    return f"kv1/{name}"


class Seen:
    """What requests and hvac were given: each answer's content as hvac parses it, and
    each sent request's headers once the request was sent."""

    def __init__(self, provider: VaultProvider, monkeypatch: pytest.MonkeyPatch) -> None:
        self.contents: list[bytes] = []
        self.headers: list[dict[str, Any]] = []
        self.chunked: list[bool] = []
        provider.http_session().hooks["response"].append(self._hook)
        original = requests.Response.json

        def json_of(response: requests.Response, **kwargs: Any) -> Any:
            self.contents.append(response.content)
            return original(response, **kwargs)

        monkeypatch.setattr(requests.Response, "json", json_of)

    def _hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.headers.append(dict(response.request.headers))
        self.chunked.append(response.headers.get("Transfer-Encoding") == "chunked")


@pytest.mark.parametrize("kv_version", [2, 1])
def test_hvac_never_parses_the_key_text_nor_sees_the_token(
    bao: BaoServer, key: MasterKey, kv_version: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = text_of(key)
    path = put(bao, {"acra_master_key": text, "note": "kept"}, kv_version)
    provider = VaultProvider({"address": bao.address, "token": bao.token, "secrets_path": path})
    seen = Seen(provider, monkeypatch)
    try:
        with provider.load() as loaded:
            assert loaded == key
        transport = provider._transport
        assert transport is not None
        assert transport.adapter.token == ""  # hvac's own: never set
        assert transport.state.token is None  # wiped at the end of the load
    finally:
        provider.close()
    assert seen.contents, "hvac parsed no answer"
    assert all(text.encode() not in content for content in seen.contents)
    assert any(b'"acra_master_key":"' + b"*" * len(text) + b'"' in c for c in seen.contents)
    assert any(b'"note":"kept"' in content for content in seen.contents)
    assert seen.headers
    assert all("X-Vault-Token" not in headers for headers in seen.headers)


def test_an_approle_login_token_is_taken_out_of_the_login_answer(
    bao: BaoServer, key: MasterKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = bao.admin()
    role_id = admin.auth.approle.read_role_id("keyloader")["data"]["role_id"]
    secret_id = admin.auth.approle.generate_secret_id("keyloader")["data"]["secret_id"]
    secret_file = tmp_path / "secret-id"
    secret_file.write_text(secret_id)
    path = put(bao, {"acra_master_key": text_of(key)})
    options = {"role_id": role_id, "secret_id_file": secret_file}
    provider = VaultProvider({"address": bao.address, "secrets_path": path, **options})
    seen = Seen(provider, monkeypatch)
    try:
        with provider.load() as loaded:  # read with the token the login answered
            assert loaded == key
    finally:
        provider.close()
    login = json.loads(seen.contents[0])["auth"]
    assert set(login["client_token"]) == {"*"}  # hvac got the answer without the token
    assert login["policies"]  # and everything else
    assert "X-Vault-Token" not in seen.headers[0]  # the login itself sends none


def test_a_large_chunked_answer(
    bao: BaoServer, key: MasterKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past a few kilobytes the server sends its answer chunked: read into a growing
    buffer in secret pages, the other fields kept as they were."""
    filler = {f"field{index}": "x" * 1000 for index in range(40)}
    path = put(bao, {**filler, "acra_master_key": text_of(key)})
    provider = VaultProvider({"address": bao.address, "token": bao.token, "secrets_path": path})
    seen = Seen(provider, monkeypatch)
    try:
        with provider.load() as loaded:
            assert loaded == key
    finally:
        provider.close()
    assert seen.chunked == [False, True]  # the token's lookup on first use, then the read
    assert json.loads(seen.contents[-1])["data"]["data"]["field39"] == "x" * 1000


def test_an_escaped_value_is_read_as_json_reads_it(bao: BaoServer) -> None:
    """The server escapes < as \\u003c: the value is unescaped (in secret pages), and the
    error gives the position of the character as before."""
    path = put(bao, {"acra_master_key": "QUJD<REVG"})
    provider = VaultProvider({"address": bao.address, "token": bao.token, "secrets_path": path})
    try:
        with pytest.raises(InvalidMasterKeyError, match="position 5") as caught:
            provider.load()
    finally:
        provider.close()
    assert "QUJD" not in str(caught.value)


def test_a_non_ascii_value_is_refused_at_its_character_position(bao: BaoServer) -> None:
    path = put(bao, {"acra_master_key": "QUJDé€REVG"})
    provider = VaultProvider({"address": bao.address, "token": bao.token, "secrets_path": path})
    try:
        with pytest.raises(InvalidMasterKeyError, match="position 5"):
            provider.load()
    finally:
        provider.close()


@pytest.mark.parametrize(
    "content",
    ["{token}", "{token}\n", "\r\n\t {token} \n", "\x1c{token}\x1f", "\u00a0{token}\u2028"],
    ids=["bare", "newline", "whitespace", "ascii-separators", "unicode-space"],
)
def test_token_files_are_trimmed_as_text_is(
    bao: BaoServer, key: MasterKey, tmp_path: Path, content: str
) -> None:
    """Read into secret pages and trimmed there: what ``str.strip`` removes, ASCII or not."""
    path = put(bao, {"acra_master_key": text_of(key)})
    token_file = tmp_path / "token"
    token_file.write_text(content.format(token=bao.token), encoding="utf-8")
    provider = VaultProvider(
        {"address": bao.address, "secrets_path": path, "token_file": token_file}
    )
    try:
        with provider.load() as loaded:
            assert loaded == key
    finally:
        provider.close()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"qz xw", "position 3"),
        (b"\n  qzx\x7fw\n", "position 4"),
        (b"qzx\xc3\xa9", "position 4"),
        (b"qzx\xff", "not UTF-8 text"),
        (b" \r\n\x0b ", "is empty"),
    ],
    ids=["space", "control", "non-ascii", "not-utf8", "blank"],
)
def test_bad_token_files(tmp_path: Path, content: bytes, message: str) -> None:
    token_file = tmp_path / "token"
    token_file.write_bytes(content)
    provider = VaultProvider(
        {"address": "http://127.0.0.1:9", "secrets_path": "secret/x", "token_file": token_file}
    )
    try:
        with pytest.raises(ConfigError, match=message) as caught:
            provider.load()
    finally:
        provider.close()
    assert "qz" not in str(caught.value)
