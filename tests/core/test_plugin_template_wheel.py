"""examples/plugin-template as its users get it: wheels in a fresh venv, found by entry point.

The core and the template are built as wheels once, installed into a new virtual
environment (with the core's dependencies from the configured index, nothing of
the workspace), and the ``keyloader`` console script of that venv runs the
template's provider and command. A test also checks that the workspace venv
holds the current template sources (``make install`` reinstalls them).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import distribution
from pathlib import Path

import pytest

from keyloader.masterkey import MasterKey, generate_master_key

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "examples" / "plugin-template"
HOOKS = [
    "keyloader_audit_actions",
    "keyloader_audit_event",
    "keyloader_cli_commands",
    "keyloader_master_key_providers",
]
# pip reads its index configuration from HOME; the autouse fixture replaces HOME per test
_ENV_AT_IMPORT = dict(os.environ)


@dataclass(frozen=True)
class Venv:
    """A fresh virtual environment with only the core and the template installed."""

    root: Path
    work: Path
    home: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def run(
        self, program: str, *args: str, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {"PATH": _ENV_AT_IMPORT.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home)}
        env |= {"COLUMNS": "200", "LC_ALL": "C.UTF-8", **(extra_env or {})}
        return subprocess.run(
            [str(self.root / "bin" / program), *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.work,
            timeout=60,
            check=False,
        )


def _check(command: list[str], env: dict[str, str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=180)
    assert result.returncode == 0, f"{command[:6]} failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    base = tmp_path_factory.mktemp("template-wheel")
    wheels = base / "wheels"
    pip_env = {k: v for k, v in _ENV_AT_IMPORT.items() if not k.startswith("PYTHON")}
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    build = ["wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir", str(wheels)]
    _check([*pip, *build, str(ROOT / "core"), str(TEMPLATE)], pip_env)
    built = sorted(path.name for path in wheels.glob("*.whl"))
    assert [name.split("-")[0] for name in built] == ["keyloader", "keyloader_command"], built
    _check([sys.executable, "-m", "venv", "--without-pip", str(base / "venv")], pip_env)
    target = ["--python", str(base / "venv" / "bin" / "python")]
    install = ["install", "--quiet", "--find-links", str(wheels)]
    _check([*pip, *target, *install, *(str(wheels / name) for name in built)], pip_env)
    (base / "work").mkdir()
    (base / "home").mkdir()
    return Venv(base / "venv", base / "work", base / "home")


@pytest.fixture
def key() -> Iterator[MasterKey]:
    with generate_master_key() as generated:
        yield generated


def printing(venv: Venv, key: MasterKey) -> str:
    """``argv=[python, -c, print(<key text>)]``, the ``-o`` value for provider ``command``."""
    with key.to_text() as text:
        code = f"print({text.bytes().decode()!r})"
    return "argv=" + json.dumps([str(venv.python), "-c", code])


# -- the fresh venv ---------------------------------------------------------------------------


@pytest.mark.slow
def test_the_venv_holds_the_core_and_the_template_only(venv: Venv) -> None:
    probe = (
        "import json, importlib.metadata as m, keyloader, keyloader_command\n"
        "names = sorted(d.metadata['Name'].lower() for d in m.distributions())\n"
        "print(json.dumps([names, keyloader.__file__, keyloader_command.__file__]))\n"
    )
    result = venv.run("python", "-c", probe)
    assert result.returncode == 0, result.stderr
    names, core_file, template_file = json.loads(result.stdout)
    assert {"keyloader", "keyloader-command"} <= set(names)
    assert not [
        name for name in names if name.startswith("keyloader-") and name != "keyloader-command"
    ]
    for path in (core_file, template_file):
        assert Path(path).is_relative_to(venv.root), f"{path} is not installed in the venv"


@pytest.mark.slow
def test_master_key_check_runs_the_command_found_by_entry_point(venv: Venv, key: MasterKey) -> None:
    result = venv.run(
        "keyloader", "master-key", "check", "--provider", "command", "-o", printing(venv, key)
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        "provider\tversion\tlength\tfingerprint",
        f"command\tv1\t32\t{key.fingerprint}",
    ]


@pytest.mark.slow
def test_the_plugin_command_runs(venv: Venv, key: MasterKey) -> None:
    result = venv.run("keyloader", "command-check", "-o", printing(venv, key), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"fingerprint": key.fingerprint}
    failing = venv.run("keyloader", "command-check", "-o", 'argv=["false"]')
    assert failing.returncode == 1
    assert failing.stdout == ""
    assert failing.stderr.startswith("error: command 'false' (option 'argv' of provider 'command')")


@pytest.mark.slow
def test_keyloader_plugins_shows_the_template(venv: Venv) -> None:
    result = venv.run("keyloader", "plugins", "--json")
    assert result.returncode == 0, result.stderr
    plugins = {row["name"]: row for row in json.loads(result.stdout)["plugins"]}
    assert sorted(plugins) == ["builtin", "command"]
    assert plugins["command"] == {
        "name": "command",
        "entry_point": "command",
        "distribution": "keyloader-command",
        "version": "0.1.0",
        "hooks": HOOKS,
        "providers": ["command"],
        "stores": [],
        "status": "ok",
        "error": None,
    }


@pytest.mark.slow
def test_a_broken_template_is_reported_with_its_error(venv: Venv, tmp_path: Path) -> None:
    """A package that shadows the installed one and fails on import: the entry point breaks."""
    shadow = tmp_path / "shadow" / "keyloader_command"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise RuntimeError('broken on purpose')\n")
    (shadow / "plugin.py").write_text("")
    broken = {"PYTHONPATH": str(shadow.parent)}
    result = venv.run("keyloader", "plugins", "--json", extra_env=broken)
    assert result.returncode == 0, result.stderr
    plugins = {row["name"]: row for row in json.loads(result.stdout)["plugins"]}
    assert plugins["builtin"]["status"] == "ok"
    assert plugins["command"] == {
        "name": "command",
        "entry_point": "command",
        "distribution": "keyloader-command",
        "version": "0.1.0",
        "hooks": [],
        "providers": [],
        "stores": [],
        "status": "error",
        "error": "RuntimeError: broken on purpose",
    }
    check = venv.run("keyloader", "master-key", "check", "--provider", "command", extra_env=broken)
    assert check.returncode == 1
    assert check.stdout == ""
    assert check.stderr.startswith("error: no master-key provider named 'command' is registered")
    assert "plugin 'command' (distribution keyloader-command 0.1.0): RuntimeError: broken" in (
        check.stderr
    )


# -- the workspace venv -----------------------------------------------------------------------


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_workspace_has_the_current_template_installed() -> None:
    """`make install` installs the template non-editable; an edit needs a reinstall."""
    installed = distribution("keyloader-command")
    origin = json.loads(installed.read_text("direct_url.json") or "{}")
    assert origin.get("dir_info", {}).get("editable") is not True, "install it non-editable"
    sources = TEMPLATE / "src" / "keyloader_command"
    files = {
        str(f): f for f in installed.files or () if f.parts[0] == "keyloader_command" and f.suffix
    }
    for source in sorted(p for p in sources.iterdir() if p.is_file()):
        name = f"keyloader_command/{source.name}"
        assert name in files, f"{name} is not installed: run `make install`"
        copy = Path(str(installed.locate_file(files[name])))
        assert _digest(copy) == _digest(source), f"{name} is stale: run `make install`"
