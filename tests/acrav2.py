"""Acra's own keystore v2 files (tests/acra_fixtures, written by Acra's Go code): paths,
the manifest that says what each holds, and the master key pair that signed them."""

from __future__ import annotations

import base64
import json
from functools import cache
from pathlib import Path
from typing import Any

from keyloader.secret import SecretBytes

FIXTURES = Path(__file__).parent / "acra_fixtures"
STORES = {"main": FIXTURES / "v2" / "keystore", "edge": FIXTURES / "edge" / "v2" / "keystore"}


@cache
def manifest(which: str = "main") -> dict[str, Any]:
    path = FIXTURES / "manifest.json" if which == "main" else FIXTURES / "edge" / "manifest.json"
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def master_pair(which: str = "main") -> tuple[SecretBytes, SecretBytes]:
    """The v2 master key pair (encryption, signature) that wrote the store ``which``."""
    keys = manifest(which)["master_keys"]["v2"]
    return (
        SecretBytes(base64.b64decode(keys["encryption"])),
        SecretBytes(base64.b64decode(keys["signature"])),
    )


def rings(which: str = "main") -> list[dict[str, Any]]:
    """Every ring of the store ``which``, as the manifest describes it."""
    described: list[dict[str, Any]] = manifest(which)["v2"]["key_rings"]
    return described


def copy_store(which: str, target: Path) -> Path:
    """A copy of the fixture store ``which`` at ``target`` with Acra's file modes (git
    keeps none): 0700 directories, the modes the manifest records for files."""
    import shutil

    shutil.copytree(STORES[which], target)
    for directory in [target, *(path for path in target.rglob("*") if path.is_dir())]:
        directory.chmod(0o700)
    for entry in manifest(which)["v2"]["files"]:
        (target / entry["path"]).chmod(int(entry["mode"], 8))
    return target


def copy_v1_store(target: Path) -> Path:
    """A copy of Acra's own keystore v1 fixture with Acra's modes (0700 directories)."""
    import shutil

    shutil.copytree(FIXTURES / "v1" / "keystore", target)
    for directory in [target, *(path for path in target.rglob("*") if path.is_dir())]:
        directory.chmod(0o700)
    for entry in manifest()["v1"]["files"]:
        (target / entry["path"]).chmod(int(entry["mode"], 8))
    return target
