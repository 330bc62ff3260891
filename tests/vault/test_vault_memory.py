"""A service loading its master key from Vault keeps neither the key's text nor the token.

A child service (tests/vault/vault_memchild.py) opens its key store with provider
``vault`` against a real OpenBao dev server, the token in a file (option ``token_file``),
runs 200 rounds of ``use()`` and of every data operation, then waits; it is sent a
signal it handles (its CPU registers land in a signal frame) and every readable mapping
of ``/proc/PID/mem`` is scanned (tests/memscan.py) for: the master key, its base64 text
(what the KV secret holds), the Vault token, and every intermediate key, message key and
data key (tests/residue.py). Counted in full and as a core dump would
hold it. With ``memfd_secret`` pages nothing kept in secret pages can be read, so any
copy found is one outside them: none is allowed.

After 200 rounds the allocator has reused most freed memory, which hides what a load
leaves behind; so each case also runs with the key loaded again from Vault as the very
last thing before the scan (``reload_master_key()``), over plain HTTP and over TLS.
Measured before the provider kept answers and the token in secret pages: 4 copies of the
base64 text and 2 or 3 of the token after such a load, all in what a core dump holds.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyloader.masterkey import MasterKey

from ..keytext import text_of
from ..memscan import ScanResult
from ..residue import residue_store, scan_service
from .conftest import APPROLE_POLICY, BaoServer

CHILD = Path(__file__).resolve().parent / "vault_memchild.py"
TEXT, TOKEN = "master key base64", "vault token"

pytestmark = [
    pytest.mark.skipif(
        not sys.platform.startswith("linux") or os.geteuid() != 0,
        reason="reads another process's memory through /proc/PID/mem (Linux, root)",
    ),
    pytest.mark.integration,
    pytest.mark.slow,
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, MasterKey]]:
    yield from residue_store(tmp_path_factory.mktemp("vault-residue") / ".acrakeys")


def _token(server: BaoServer, policy: str) -> str:
    """A fresh token (not the root token the fixtures use) that may read the secrets."""
    answer = server.admin().auth.token.create(policies=[policy], ttl="1h")
    value: str = answer["auth"]["client_token"]
    return value


def _put(server: BaoServer, master: MasterKey, kv_version: int) -> str:
    """The key's text in a fresh secret (KV v2 ``secret/``, or KV v1 ``kv1/``), and its path."""
    name = f"acra-{uuid.uuid4().hex[:12]}"
    data = {"acra_master_key": text_of(master), "note": "another field"}
    if kv_version == 2:
        server.admin().secrets.kv.v2.create_or_update_secret(
            path=name, secret=data, mount_point="secret"
        )
        return f"secret/{name}"
    server.admin().secrets.kv.v1.create_or_update_secret(
        path=name, secret=data, mount_point="kv1", method="PUT"
    )
    return f"kv1/{name}"


def _run(
    server: BaoServer,
    store: tuple[Path, MasterKey],
    tmp_path: Path,
    *,
    mode: str,
    kv_version: int = 2,
    policy: str = APPROLE_POLICY,
    **env: str,
) -> tuple[ScanResult, dict[str, bytes]]:
    """Start the child service, let it run its rounds, push its registers, scan it."""
    keys_dir, master = store
    secrets_path = _put(server, master, kv_version)
    token = _token(server, policy)
    token_file = tmp_path / "vault-token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    command = [sys.executable, str(CHILD), str(keys_dir), server.address, secrets_path]
    command += [str(token_file), mode]
    if server.ca_cert is not None:
        command.append(str(server.ca_cert))
    environment = {**os.environ, **env}  # the test's environment: no KEYLOADER_* or VAULT_*
    return scan_service(command, environment, keys_dir, master, {TOKEN: token.encode()})


def _leaks(found: ScanResult, needles: dict[str, bytes]) -> str:
    """Every needle found, with where: empty if none."""
    counts = {name: (found.count(name), found.core_count(name)) for name in needles}
    return "\n".join(
        f"{name} {count}: {found.where(name)}" for name, count in counts.items() if count != (0, 0)
    )


@pytest.mark.parametrize("mode", ["provider", "reload"], ids=["load-first", "load-last"])
@pytest.mark.parametrize("kv_version", [2, 1], ids=["kv2", "kv1"])
def test_a_vault_service_keeps_no_key_text_nor_token_outside_secret_pages(
    bao: BaoServer, store: tuple[Path, MasterKey], tmp_path: Path, kv_version: int, mode: str
) -> None:
    """KV v2 (one request) and KV v1 (the v2 guess, the mount detection, the read)."""
    found, needles = _run(bao, store, tmp_path, mode=mode, kv_version=kv_version)
    leaks = _leaks(found, needles)
    assert not leaks, leaks


def test_over_tls_too(bao_tls: BaoServer, store: tuple[Path, MasterKey], tmp_path: Path) -> None:
    """OpenSSL keeps each record's plaintext in its read buffer unless told to zero it, and
    TLS decryption leaves the answer in vector registers: neither holds the key here."""
    found, needles = _run(bao_tls, store, tmp_path, mode="reload", policy="root")
    leaks = _leaks(found, needles)
    assert not leaks, leaks


def test_with_locked_pages_the_text_and_the_token_are_wiped_not_only_hidden(
    bao: BaoServer, store: tuple[Path, MasterKey], tmp_path: Path
) -> None:
    """Without memfd_secret, secret pages are readable (locked, out of core dumps): the
    key's text is not in them either; the token is, once (the provider keeps it between
    loads, with what Vault said of its TTL), and every key or token that is, is in pages
    marked ``dd`` and ``lo``."""
    found, _ = _run(bao, store, tmp_path, mode="reload", KEYLOADER_SECRET_MEMORY="locked")
    assert found.count("master key") >= 1  # readable: not memfd_secret
    assert found.count(TEXT) == 0, found.where(TEXT)
    assert found.count(TOKEN) == 1, found.where(TOKEN)  # the kept one, nothing else
    outside = [hit for hit in found.hits if {"dd", "lo"} - hit.mapping.vmflags]
    assert not outside, "\n".join(
        f"{hit.needle} at {hit.address:#x} in {hit.mapping}" for hit in outside
    )


def test_the_scan_finds_the_key_text_and_the_token_of_plain_hvac(
    bao: BaoServer, store: tuple[Path, MasterKey], tmp_path: Path
) -> None:
    """The control: the same child, also reading the secret with plain hvac (an answer and
    a client it keeps) and with secret pages off: the same scan finds the key, its text
    and the token (so the tests above can fail)."""
    found, _ = _run(bao, store, tmp_path, mode="hvac", KEYLOADER_SECRET_MEMORY="ordinary")
    assert found.count("master key") >= 1
    assert found.count(TEXT) >= 1
    assert found.count(TOKEN) >= 1
