"""A keystore v2 store half-way through a master-key rotation: a service under the new pair,
with the old one as ``previous`` (or replaced by a reload), reads, verifies, writes and
rewraps every ring, whichever pair signed it."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

import keyloader
from keyloader.cli.app import app
from keyloader.errors import RingFormatError
from keyloader.keyrings import format as rings_format
from keyloader.keyrings.directory import RingDirectory
from keyloader.keyrings.engine import RingKeyManager
from keyloader.keyrings.rewrap import rewrap_rings
from keyloader.masterkey import MasterKey, generate_master_key, parse_master_key

from ..acrav2 import copy_store, manifest, master_pair

API = manifest()["v2"]["api"]
OLD_TEXT = manifest()["master_keys"]["v2"]["ACRA_MASTER_KEY"]
HALF = ["audit-log", "client/client1/storage-sym"]
"""The rings the interrupted rewrap below moved to the new pair; the others stay old."""


def _old() -> MasterKey:
    return MasterKey(*master_pair())


def _half_rewrapped(root: Path, new_text: str) -> None:
    """``root`` with only :data:`HALF` rewrapped to ``new_text``'s pair, the way a rewrap
    killed after those rings leaves it (each ring is one atomic write)."""
    other = copy_store("main", root.parent / "whole")
    with (
        RingKeyManager(RingDirectory(other), _old(), cache_size=0) as keys,
        parse_master_key(new_text) as new,
    ):
        rewrap_rings(keys, new)
    for path in HALF:
        (root / f"{path}.keyring").write_bytes((other / f"{path}.keyring").read_bytes())


def _signed_by(root: Path, path: str, key: MasterKey) -> bool:
    assert key.signature is not None
    try:
        rings_format.open_ring((root / f"{path}.keyring").read_bytes(), path, key.signature)
    except RingFormatError:
        return False
    return True


@pytest.fixture
def new_text() -> str:
    with generate_master_key("v2") as key, key.to_text() as text:
        return text.bytes().decode()


def test_the_previous_pair_opens_the_rings_not_yet_rewrapped(tmp_path: Path, new_text: str) -> None:
    root = copy_store("main", tmp_path / "keystore")
    _half_rewrapped(root, new_text)
    with RingKeyManager(RingDirectory(root), parse_master_key(new_text), cache_size=0) as alone:
        with alone.read("client/client1/symmetric", 2):  # client/client1/storage-sym: new
            pass
        with pytest.raises(RingFormatError, match="signature"):
            alone.read("client/client1/storage")  # client/client1/storage: still old
    with RingKeyManager(
        RingDirectory(root), parse_master_key(new_text), previous=_old(), cache_size=0
    ) as keys:
        with keys.read("client/client1/symmetric", 2) as key:  # a new-pair ring
            assert key.bytes() == base64.b64decode(API["client1"]["symmetric_all_newest_first"][1])
        with keys.read("client/client1/storage") as key:  # an old-pair ring
            assert len(key.bytes()) > 0
        results = keys.verify()
        assert len(results) >= 10
        assert all(result.ok for result in results), [r.error for r in results if not r.ok]
        assert all(info.decrypts for info in keys.list(rotated=True, check=True) if info.key_id)


def test_a_write_to_an_old_ring_moves_it_to_the_current_pair_whole(
    tmp_path: Path, new_text: str
) -> None:
    root = copy_store("main", tmp_path / "keystore")
    _half_rewrapped(root, new_text)
    path = "client/client1/hmac-sym"
    assert _signed_by(root, path, _old())
    with RingKeyManager(
        RingDirectory(root), parse_master_key(new_text), previous=_old(), cache_size=0
    ) as keys:
        with keys.read("client/client1/searchable") as before:
            old_value = before.bytes()
        keys.rotate("client/client1/searchable")
        with keys.read("client/client1/searchable", 2) as rotated:
            assert rotated.bytes() == old_value
    with parse_master_key(new_text) as new:
        assert _signed_by(root, path, new)
        with RingKeyManager(RingDirectory(root), new, cache_size=0) as alone:  # no previous
            with alone.read("client/client1/searchable", 2) as rotated:
                assert rotated.bytes() == old_value


def test_a_rewrap_takes_rings_under_the_previous_pair_too(tmp_path: Path, new_text: str) -> None:
    root = copy_store("main", tmp_path / "keystore")
    _half_rewrapped(root, new_text)
    with generate_master_key("v2") as third:
        with RingKeyManager(
            RingDirectory(root), parse_master_key(new_text), previous=_old(), cache_size=0
        ) as keys:
            report = rewrap_rings(keys, third)
        assert report.complete, report
        assert report.rewrapped == len(RingDirectory(root).list())
        assert all(_signed_by(root, path, third) for path in RingDirectory(root).list())


def test_a_reload_keeps_the_replaced_pair_for_rings_not_yet_rewrapped(
    tmp_path: Path, new_text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = copy_store("main", tmp_path / "keystore")
    monkeypatch.setenv("ACRA_MASTER_KEY", OLD_TEXT)
    with keyloader.open_keystore(keys_dir=root, cache_size=0) as keys:
        with keys.read("audit-log") as key:
            audit = key.bytes()
        _half_rewrapped(root, new_text)
        monkeypatch.setenv("ACRA_MASTER_KEY", new_text)
        assert keys.reload_master_key() is True
        with keys.read("audit-log") as key:  # rewrapped: the new pair
            assert key.bytes() == audit
        with keys.read("client/client1/storage"):  # not yet: the pair the reload replaced
            pass


def test_the_cli_reads_a_half_rewrapped_store_with_previous_provider(
    tmp_path: Path, new_text: str
) -> None:
    root = copy_store("main", tmp_path / "keystore")
    _half_rewrapped(root, new_text)
    env = {"ACRA_MASTER_KEY": new_text, "OLD_ACRA_MASTER_KEY": OLD_TEXT}
    base = ["--keys-dir", str(root)]
    previous = ["--previous-provider", "env", "--previous-option", "variable=OLD_ACRA_MASTER_KEY"]
    result = CliRunner().invoke(app, [*base, "keys", "verify"], env=env)
    assert result.exit_code == 1
    result = CliRunner().invoke(app, [*base, *previous, "keys", "verify"], env=env)
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert OLD_TEXT not in result.stdout + result.stderr
    assert os.environ.get("OLD_ACRA_MASTER_KEY") is None
