"""Shared test set-up: a clean environment for every test (docs/architecture.md, Invariants)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("keyloader", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("keyloader")

_CLEARED_PREFIXES = ("VAULT_", "BAO_", "ACRA_", "KEYLOADER_", "SRC_ACRA_", "DST_ACRA_")


@pytest.fixture(autouse=True)
def clean_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """No inherited key settings, a private HOME and working directory, wide terminals."""
    for name in list(os.environ):
        if name.startswith(_CLEARED_PREFIXES):
            monkeypatch.delenv(name)
    home = tmp_path_factory.mktemp("home")
    work = tmp_path_factory.mktemp("cwd")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(work)
    return work
