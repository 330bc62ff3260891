"""An Acra keystore v2 store opened with its master key pair from a real OpenBao: the pair
is Acra's secret field, as Acra's ``vault_master_key`` strategy reads it."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import Any

import keyloader

from ..acrav2 import copy_store, manifest


def test_a_v2_store_opens_with_its_pair_from_vault(bao: Any, tmp_path: Path) -> None:
    path = f"acra-{uuid.uuid4().hex[:12]}"
    pair_text = manifest()["master_keys"]["v2"]["ACRA_MASTER_KEY"]
    bao.admin().secrets.kv.v2.create_or_update_secret(
        path=path, secret={"acra_master_key": pair_text}, mount_point="secret"
    )
    root = copy_store("main", tmp_path / "keystore")
    options = {"address": bao.address, "token": bao.token, "secrets_path": f"secret/{path}"}
    with keyloader.open_keystore(keys_dir=root, provider="vault", provider_options=options) as keys:
        assert keys.keystore_version == "v2"
        expected = manifest()["v2"]["api"]["client1"]["symmetric_current"]
        with keys.read("client/client1/symmetric") as key:
            assert key.bytes() == base64.b64decode(expected)
        row = keys.decrypt(
            "client/client1/symmetric", keys.encrypt("client/client1/symmetric", b"r")
        )
        assert row == b"r"
