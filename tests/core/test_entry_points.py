"""The entry-point finder agrees with ``importlib.metadata.entry_points``, without importing it."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyloader._entry_points import (
    FoundEntryPoint,
    find_entry_points,
    normalize_name,
    parse_entry_points,
    parse_value,
)

GROUP = "kltest_group"


def dist_info(root: Path, dirname: str, entry_points: str, *, name: str, version: str) -> Path:
    """Write a ``*.dist-info`` directory with METADATA and entry_points.txt under ``root``."""
    path = root / dirname
    path.mkdir(parents=True)
    (path / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (path / "entry_points.txt").write_text(entry_points)
    return path


@pytest.fixture
def sys_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """A ``sys.path`` the test may prepend to; restored afterwards."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    importlib.invalidate_caches()
    yield sys.path
    importlib.invalidate_caches()


def pairs(found: list[FoundEntryPoint]) -> list[tuple[str, str]]:
    return [(entry_point.name, entry_point.value) for entry_point in found]


def stdlib_pairs(group: str) -> list[tuple[str, str]]:
    importlib.invalidate_caches()
    return [(ep.name, ep.value) for ep in importlib.metadata.entry_points(group=group)]


@pytest.mark.parametrize("group", ["keyloader", "console_scripts", "pytest11", "no_such_group"])
def test_the_installed_workspace_matches_importlib_metadata(group: str) -> None:
    assert pairs(find_entry_points(group)) == stdlib_pairs(group)


def test_the_installed_plugins_name_their_distribution() -> None:
    expected = {
        ep.name: (ep.dist.name, ep.dist.version)
        for ep in importlib.metadata.entry_points(group="keyloader")
        if ep.dist is not None
    }
    found = {ep.name: ep.distribution() for ep in find_entry_points("keyloader")}
    assert found == expected
    assert found["env"] == ("keyloader-env", importlib.metadata.version("keyloader-env"))


def test_first_copy_of_a_distribution_on_sys_path_wins(tmp_path: Path, sys_path: list[str]) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    dist_info(
        first,
        "Kl.Test_Dist-2.0.dist-info",
        f"[{GROUP}]\nnew = m:new\n",
        name="kl-test-dist",
        version="2.0",
    )
    dist_info(
        second,
        "kl_test_dist-1.0.dist-info",
        f"[{GROUP}]\nold = m:old\n",
        name="kl_test_dist",
        version="1.0",
    )
    dist_info(second, "other-1.0.dist-info", f"[{GROUP}]\nother = o\n", name="other", version="1.0")
    sys_path[:0] = [str(first), str(second)]

    found = find_entry_points(GROUP)

    assert pairs(found) == [("new", "m:new"), ("other", "o")]
    assert pairs(found) == stdlib_pairs(GROUP)
    assert found[0].distribution() == ("kl-test-dist", "2.0")


def test_sections_comments_and_extras(tmp_path: Path, sys_path: list[str]) -> None:
    text = (
        "# a comment\n\n[console_scripts]\nnot_mine = x:y\n\n"
        f"[{GROUP}]\n  spaced   =   pkg.mod : obj.attr  [extra1, extra2]\n# skipped = z\nbare=mod\n"
        "[later]\nalso_not_mine = q\n"
    )
    dist_info(tmp_path, "sections-1.0.dist-info", text, name="sections", version="1.0")
    sys_path.insert(0, str(tmp_path))

    found = find_entry_points(GROUP)

    assert pairs(found) == stdlib_pairs(GROUP)
    assert pairs(found) == [("spaced", "pkg.mod : obj.attr  [extra1, extra2]"), ("bare", "mod")]
    assert parse_value(found[0].value) == ("pkg.mod", ("obj", "attr"))


def test_egg_info_directories_count(tmp_path: Path, sys_path: list[str]) -> None:
    egg = tmp_path / "legacy.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: legacy\nVersion: 0.9\n")
    (egg / "entry_points.txt").write_text(f"[{GROUP}]\nlegacy = legacy_mod\n")
    sys_path.insert(0, str(tmp_path))

    found = find_entry_points(GROUP)

    assert pairs(found) == stdlib_pairs(GROUP) == [("legacy", "legacy_mod")]
    assert found[0].distribution() == ("legacy", "0.9")


def test_load_imports_the_module_and_follows_attributes(
    tmp_path: Path, sys_path: list[str]
) -> None:
    (tmp_path / "kltest_ep_target.py").write_text(
        "class Outer:\n    class Inner:\n        VALUE = 7\n"
    )
    dist_info(
        tmp_path,
        "target-1.0.dist-info",
        f"[{GROUP}]\nt = kltest_ep_target:Outer.Inner\n",
        name="target",
        version="1.0",
    )
    sys_path.insert(0, str(tmp_path))
    try:
        (found,) = find_entry_points(GROUP)
        loaded = found.load()
        assert loaded.VALUE == 7  # type: ignore[attr-defined]
    finally:
        sys.modules.pop("kltest_ep_target", None)


@pytest.mark.parametrize("value", ["", ":attr", "bad-module:attr", "mod:1attr", "mod:a..b"])
def test_malformed_values_raise_value_error(value: str) -> None:
    with pytest.raises(ValueError, match="malformed entry point value"):
        FoundEntryPoint("x", value).load()


def test_a_zip_on_sys_path_falls_back_to_importlib_metadata(
    tmp_path: Path, sys_path: list[str]
) -> None:
    archive = tmp_path / "zipped.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr(
            "zipped-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: zipped\nVersion: 1.0\n"
        )
        zipped.writestr("zipped-1.0.dist-info/entry_points.txt", f"[{GROUP}]\nz = zmod:thing\n")
    sys_path.insert(0, str(archive))

    found = find_entry_points(GROUP)

    assert pairs(found) == [("z", "zmod:thing")]
    assert found[0].distribution() == ("zipped", "1.0")


def test_a_custom_distribution_finder_falls_back_to_importlib_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hidden = tmp_path / "hidden"
    dist_info(
        hidden, "hidden-1.0.dist-info", f"[{GROUP}]\nh = hmod\n", name="hidden", version="1.0"
    )

    class Finder(importlib.metadata.DistributionFinder):
        def find_spec(self, *args: object) -> None:
            return None

        def find_distributions(
            self,
            context: importlib.metadata.DistributionFinder.Context | None = None,
        ) -> Iterator[importlib.metadata.Distribution]:
            if context is None or context.name in (None, "hidden"):
                yield importlib.metadata.PathDistribution(hidden / "hidden-1.0.dist-info")

    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, Finder()])

    assert ("h", "hmod") in pairs(find_entry_points(GROUP))


def test_missing_metadata_gives_no_name_and_no_crash(tmp_path: Path, sys_path: list[str]) -> None:
    path = tmp_path / "bare-1.0.dist-info"
    path.mkdir()
    (path / "entry_points.txt").write_text(f"[{GROUP}]\nb = bmod\n")
    sys_path.insert(0, str(tmp_path))

    (found,) = find_entry_points(GROUP)

    assert found.distribution() == (None, None)


def test_unreadable_entry_points_file_is_skipped(tmp_path: Path, sys_path: list[str]) -> None:
    dist_info(tmp_path, "binary-1.0.dist-info", "", name="binary", version="1.0")
    (tmp_path / "binary-1.0.dist-info" / "entry_points.txt").write_bytes(
        b"\xff\xfe[" + GROUP.encode()
    )
    sys_path[:0] = [str(tmp_path), str(tmp_path / "does-not-exist")]

    assert find_entry_points(GROUP) == []


@pytest.mark.parametrize(
    ("name", "normalized"),
    [("Foo", "foo"), ("foo-bar", "foo_bar"), ("Foo.__Bar--baz", "foo_bar_baz"), ("a_b", "a_b")],
)
def test_name_normalization_matches_importlib_metadata(name: str, normalized: str) -> None:
    from importlib.metadata import Prepared  # type: ignore[attr-defined]

    assert normalize_name(name) == normalized == Prepared.normalize(name)


def test_parse_entry_points_ignores_other_groups() -> None:
    assert parse_entry_points("[a]\nx = 1\n[b]\ny = 2\n", "b") == [("y", "2")]


def test_master_key_check_does_not_import_importlib_metadata() -> None:
    from keyloader.masterkey import generate_master_key

    with generate_master_key() as key, key.to_text() as secret_text:
        text = secret_text.bytes().decode()
    probe = (
        "import json, sys\n"
        "from keyloader.cli import main\n"
        "code = main(['master-key', 'check'])\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    env = {**os.environ, "ACRA_MASTER_KEY": text, "KEYLOADER_PROVIDER": "env"}
    process = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert process.returncode == 0, process.stderr
    modules = set(json.loads(process.stderr.splitlines()[-1]))
    assert "keyloader_env.plugin" in modules  # the plugins were found and loaded
    assert "importlib.metadata" not in modules
