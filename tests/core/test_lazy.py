"""``keyloader.lazy.lazy_exports``: names imported on first access, then kept."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = "kltest_lazy_pkg"


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    root = tmp_path / PACKAGE
    root.mkdir()
    (root / "__init__.py").write_text(
        "from keyloader.lazy import lazy_exports\n"
        "EAGER = 1\n"
        "__getattr__, __dir__ = lazy_exports(__name__, "
        "{'Heavy': '.heavy', 'helper': '.heavy', 'Broken': '.heavy', 'Path': 'pathlib'})\n"
    )
    (root / "heavy.py").write_text(
        "LOADS = []\nLOADS.append(1)\nclass Heavy: pass\ndef helper(): return 42\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield PACKAGE
    for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
        del sys.modules[name]


def test_names_load_on_first_access_and_are_kept(package: str) -> None:
    module = importlib.import_module(package)
    assert f"{package}.heavy" not in sys.modules
    heavy = module.Heavy
    assert f"{package}.heavy" in sys.modules
    assert heavy is sys.modules[f"{package}.heavy"].Heavy
    assert vars(module)["Heavy"] is heavy  # kept: __getattr__ is not called again
    assert module.helper() == 42
    assert sys.modules[f"{package}.heavy"].LOADS == [1]  # imported once


def test_absolute_module_names_work(package: str) -> None:
    module = importlib.import_module(package)
    assert module.Path is Path


def test_unknown_and_missing_names_are_attribute_errors(package: str) -> None:
    module = importlib.import_module(package)
    with pytest.raises(AttributeError, match=rf"module '{package}' has no attribute 'Nope'"):
        _ = module.Nope
    with pytest.raises(AttributeError, match="Broken"):  # listed, but the module lacks it
        _ = module.Broken
    assert not hasattr(module, "Nope")


def test_dir_lists_lazy_and_loaded_names(package: str) -> None:
    module = importlib.import_module(package)
    names = dir(module)
    assert {"EAGER", "Heavy", "helper", "Path"} <= set(names)
    assert names == sorted(names)


@pytest.mark.parametrize(
    ("package_name", "lazy_name", "heavy_module"),
    [
        ("keyloader", "KeyManager", "keyloader.keystore"),
        ("keyloader.stores", "FilesystemKeyStore", "keyloader.stores.filesystem"),
        ("keyloader_redis", "RedisKeyStore", "keyloader_redis.store"),
        ("keyloader_aws", "load_credentials", "keyloader_aws.credentials"),
        ("keyloader_command", "CommandProvider", "keyloader_command.provider"),
    ],
)
def test_the_packages_defer_their_heavy_modules(
    package_name: str, lazy_name: str, heavy_module: str
) -> None:
    probe = (
        "import importlib, sys\n"
        f"package = importlib.import_module({package_name!r})\n"
        f"before = {heavy_module!r} in sys.modules\n"
        f"getattr(package, {lazy_name!r})\n"
        f"print(before, {heavy_module!r} in sys.modules)\n"
    )
    process = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert process.stdout.split() == ["False", "True"]
