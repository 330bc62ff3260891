"""Master-key rotation of an Acra keystore v2 directory (a copy of Acra's own): every ring
re-sealed and re-signed under a new pair, resumable, refusing what it cannot open."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keyloader.cli.app import app
from keyloader.errors import ConfigError, IntegrityError, RingFormatError
from keyloader.keyrings import format as rings_format
from keyloader.keyrings.directory import RingDirectory
from keyloader.keyrings.engine import RingKeyManager
from keyloader.keyrings.rewrap import rewrap_rings
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader.secret import SecretBytes

from ..acrav2 import copy_store, manifest, master_pair

API = manifest()["v2"]["api"]


def _opened(root: Path, key: MasterKey | None = None) -> RingKeyManager:
    if key is None:
        key = MasterKey(*master_pair())
    return RingKeyManager(RingDirectory(root), key, cache_size=0)


def test_every_ring_moves_to_the_new_pair_and_a_rerun_skips_them(tmp_path: Path) -> None:
    root = copy_store("main", tmp_path / "keystore")
    before = {path: (root / f"{path}.keyring").read_bytes() for path in RingDirectory(root).list()}
    with generate_master_key("v2") as new, _opened(root) as keys:
        dry = rewrap_rings(keys, new, dry_run=True)
        assert dry.rewrapped == len(before)
        assert all((root / f"{p}.keyring").read_bytes() == data for p, data in before.items())
        report = rewrap_rings(keys, new)
        assert report.complete
        assert report.rewrapped == report.verified == len(before)
        again = rewrap_rings(keys, new)  # what a run killed half-way is finished by
        assert (again.rewrapped, again.skipped) == (0, len(before))
        assert new.signature is not None
        new_pair = MasterKey(SecretBytes(new.encryption.buffer), SecretBytes(new.signature.buffer))
        with _opened(root, new_pair) as moved:
            with moved.read("client/client1/symmetric", 2) as key:
                rotated = API["client1"]["symmetric_all_newest_first"][1]
                assert key.bytes() == base64.b64decode(rotated)
            assert all(result.ok for result in moved.verify())
    _, old_signature = master_pair()
    with pytest.raises(RingFormatError, match="signature"):
        rings_format.open_ring(
            (root / "audit-log.keyring").read_bytes(), "audit-log", old_signature
        )


def test_refusals_write_nothing(tmp_path: Path) -> None:
    root = copy_store("main", tmp_path / "keystore")
    with _opened(root) as keys, generate_master_key("v2") as other, generate_master_key() as v1:
        with pytest.raises(ConfigError, match="v2 master key pair"):
            rewrap_rings(keys, v1)
        with pytest.raises(ConfigError, match="already"):
            rewrap_rings(keys, MasterKey(*master_pair()))
        stranger = (root / "audit-log.keyring").read_bytes()
        (root / "client" / "client1" / "hmac-sym.keyring").write_bytes(stranger)  # moved ring
        before = (root / "poison-record.keyring").read_bytes()
        with pytest.raises(IntegrityError, match="client/client1/hmac-sym"):
            rewrap_rings(keys, other)
        assert (root / "poison-record.keyring").read_bytes() == before
        report = rewrap_rings(keys, other, skip_undecryptable=True)
        assert report.undecryptable == ("client/client1/hmac-sym",)
        assert not report.complete


def test_the_cli_rewraps_a_v2_store(tmp_path: Path) -> None:
    root = copy_store("main", tmp_path / "keystore")
    with generate_master_key("v2") as new, new.to_text() as text:
        target = text.bytes().decode()
    result = CliRunner().invoke(
        app,
        ["--keys-dir", str(root), "keys", "rewrap", "--to-provider", "env", "--json"],
        env={
            "ACRA_MASTER_KEY": manifest()["master_keys"]["v2"]["ACRA_MASTER_KEY"],
            "DST_ACRA_MASTER_KEY": target,
        },
    )
    assert result.exit_code == 0, result.stderr
    result = CliRunner().invoke(
        app, ["--keys-dir", str(root), "keys", "verify"], env={"ACRA_MASTER_KEY": target}
    )
    assert result.exit_code == 0, result.stderr
