"""Releases plugin authors can rely on: every distribution's version has its CHANGELOG.md
section, the core's version has one source, plugins pin the core's minor series, and a
deprecation warns before it removes (and can be made an error in a plugin's tests)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import pytest

import keyloader
from keyloader.deprecation import warn_deprecated
from keyloader.errors import KeyloaderDeprecationWarning
from keyloader.testing import deprecations_as_errors

ROOT = Path(__file__).resolve().parents[2]
CHANGELOG = (ROOT / "CHANGELOG.md").read_text()
PLUGINS = sorted((ROOT / "plugins").glob("*/pyproject.toml"))


def distributions() -> dict[str, str]:
    """Every distribution of this repository and its version."""
    found = {"keyloader": keyloader.__version__}
    for path in PLUGINS:
        project = tomllib.loads(path.read_text())["project"]
        found[project["name"]] = project["version"]
    return found


def release_section(version: str) -> str:
    match = re.search(
        rf"^## \[{re.escape(version)}\][^\n]*\n(.*?)(?=^## \[|\Z)", CHANGELOG, re.M | re.S
    )
    assert match, f"CHANGELOG.md has no section ## [{version}]"
    return match.group(1)


@pytest.mark.parametrize(("name", "version"), sorted(distributions().items()))
def test_every_distributions_version_has_its_changelog_section(name: str, version: str) -> None:
    section = release_section(version)
    headings = re.findall(r"^### (.+)$", section, re.M)
    named = {part.strip() for heading in headings for part in heading.split(",")}
    assert name in named, f"CHANGELOG.md ## [{version}] has no ### heading for {name}"


def test_the_core_version_has_one_source() -> None:
    core = tomllib.loads((ROOT / "core" / "pyproject.toml").read_text())
    assert "version" not in core["project"]
    assert "version" in core["project"]["dynamic"]
    source = ROOT / "core" / core["tool"]["hatch"]["version"]["path"]
    assert f'__version__ = "{keyloader.__version__}"' in source.read_text()
    shown = subprocess.run(
        [sys.executable, "-m", "keyloader.cli", "--version"], capture_output=True, text=True
    )
    assert shown.stdout.strip() == f"keyloader {keyloader.__version__}"


def test_plugins_pin_the_cores_minor_series() -> None:
    major, minor, _ = (int(part) for part in keyloader.__version__.split("."))
    pin = f"keyloader>={major}.{minor},<{major}.{minor + 1}"
    template = ROOT / "examples" / "plugin-template" / "pyproject.toml"
    for path in [*PLUGINS, template]:
        dependencies = tomllib.loads(path.read_text())["project"]["dependencies"]
        assert pin in dependencies, f"{path}: depend on {pin}"
    assert f"`{pin}`" in (ROOT / "docs" / "plugins.md").read_text()


def deprecated_helper() -> str:
    warn_deprecated("deprecated_helper()", instead="new_helper()", removed_in="0.4")
    return "still works"


def test_a_deprecation_warns_at_the_callers_line_and_can_be_an_error() -> None:
    with pytest.warns(KeyloaderDeprecationWarning, match=r"removed in keyloader 0\.4") as caught:
        assert deprecated_helper() == "still works"
    assert caught[0].filename == __file__  # the caller's line, not the helper's
    assert issubclass(KeyloaderDeprecationWarning, DeprecationWarning)
    with deprecations_as_errors(), pytest.raises(KeyloaderDeprecationWarning, match="new_helper"):
        deprecated_helper()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert deprecated_helper() == "still works"  # outside the block: a warning again
