"""Option ``scrub`` of provider ``env``: the variable's text leaves no copy in the process.

The child-process tests load the master key in a fresh Python started with
``ACRA_MASTER_KEY`` in its environment, then read the child's ``/proc/PID/environ``
and scan every readable mapping of its memory (tests/memscan.py) for the key's base64
text. With ``scrub`` the text is found nowhere; without it (the control) it is found,
so the scan can fail. The raw key bytes are the loaded ``MasterKey``'s business
(wherever its buffers live): they are counted, not asserted on.
"""

from __future__ import annotations

import base64
import ctypes
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from keyloader.api import load_master_key
from keyloader.config import load_settings
from keyloader.errors import MasterKeyNotFoundError
from keyloader.masterkey import generate_master_key
from keyloader.plugins import make_plugin_manager
from keyloader.providers import provider_option_env_names
from keyloader_env import EnvProvider
from keyloader_env.scrub import ScrubReport, scrub_variable, was_scrubbed

from ..keytext import text_of
from ..memscan import scan

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc and libc's environ")
cpython_only = pytest.mark.skipif(
    sys.implementation.name != "cpython", reason="overwrites CPython objects in place"
)


def provider(**options: Any) -> EnvProvider:
    return EnvProvider(
        {"variable": "TEST_SCRUB_KEY", "file": None, "keystore_version": "auto", **options}
    )


def c_getenv(name: str) -> int | None:
    """The address libc's ``getenv`` returns: the value's (no copy of it is made)."""
    libc = ctypes.CDLL(None)
    libc.getenv.restype = ctypes.c_void_p
    libc.getenv.argtypes = (ctypes.c_char_p,)
    address: int | None = libc.getenv(os.fsencode(name))
    return address


# -- the option -------------------------------------------------------------------------------


def test_scrub_is_a_bool_option_off_by_default_named_keyloader_env_scrub() -> None:
    options = {option.name: option for option in EnvProvider.option_schema()}
    scrub = options["scrub"]
    assert scrub.type == "bool"
    assert scrub.default is False
    assert not scrub.secret
    assert provider_option_env_names("env", scrub) == ("KEYLOADER_ENV_SCRUB",)
    assert EnvProvider({}).scrub is False
    assert EnvProvider({"scrub": True}).scrub is True


@pytest.mark.parametrize(
    ("text", "expected"), [("1", True), ("yes", True), ("0", False), ("", False)]
)
def test_scrub_resolves_from_the_environment(tmp_path: Path, text: str, expected: bool) -> None:
    settings = load_settings(env={"KEYLOADER_ENV_SCRUB": text}, cwd=tmp_path)
    resolved = settings.resolve_provider_options("env", EnvProvider.option_schema())
    assert resolved.values["scrub"] is expected
    assert settings.resolve_provider_options("env_master_key", EnvProvider.option_schema())


def test_config_show_lists_the_scrub_option(tmp_path: Path) -> None:
    command = [str(Path(sys.executable).parent / "keyloader"), "--json", "config", "show"]
    env = {**os.environ, "KEYLOADER_ENV_SCRUB": "1", "KEYLOADER_PLUGINS": "env"}
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["config"]
    [row] = [r for r in rows if r["scope"] == "provider env" and r["name"] == "scrub"]
    assert row["value"] is True
    assert row["source"] == "KEYLOADER_ENV_SCRUB"
    result = subprocess.run(
        [*command[:1], "providers", "show", "env"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "KEYLOADER_ENV_SCRUB" in result.stdout


def test_settings_do_not_copy_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``load_settings`` reads ``KEYLOADER_*`` and named variables only: never ACRA_MASTER_KEY."""
    read: list[str] = []

    class Spy(dict[str, str]):
        def __getitem__(self, name: str) -> str:
            read.append(name)
            return super().__getitem__(name)

    with generate_master_key() as key:
        env = Spy({"ACRA_MASTER_KEY": text_of(key), "KEYLOADER_ENV_SCRUB": "1", "VAULT_ADDR": "x"})
        settings = load_settings(env=env, cwd=tmp_path)
        settings.resolve_provider_options("env", EnvProvider.option_schema())
        assert read == ["KEYLOADER_ENV_SCRUB"]
        assert "ACRA_MASTER_KEY" not in repr(settings._env)  # names only, and not that one


# -- scrubbing a variable in this process ---------------------------------------------------------


@linux_only
@cpython_only
def test_scrub_variable_overwrites_every_copy_it_can_reach(monkeypatch: pytest.MonkeyPatch) -> None:
    name = "TEST_SCRUB_REACH"
    monkeypatch.setenv(name, "a-secret-value-of-some-length-0123456789")
    stored = os.environb[os.fsencode(name)]
    value_address = c_getenv(name)  # getenv points at the value, after "NAME="
    assert value_address is not None
    address = value_address - len(name) - 1
    size = len(stored)
    del stored
    report = scrub_variable(name)
    assert report == ScrubReport(c_strings=1, python_objects=1, shared=0, removed=True)
    assert report.complete
    assert ctypes.string_at(address, len(name) + 1) == os.fsencode(name) + b"="
    assert ctypes.string_at(address + len(name) + 1, size) == bytes(size)  # libc's string
    assert c_getenv(name) is None
    assert name not in list(os.environ)
    assert os.fsencode(name) not in os.environb
    assert was_scrubbed(name)


@linux_only
@cpython_only
def test_a_value_referenced_elsewhere_is_left_and_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    name = "TEST_SCRUB_SHARED"
    monkeypatch.setenv(name, "someone-else-holds-this-value-0123456789")
    held = os.environb[os.fsencode(name)]
    report = scrub_variable(name)
    assert report == ScrubReport(c_strings=1, python_objects=0, shared=1, removed=True)
    assert not report.complete
    assert held == b"someone-else-holds-this-value-0123456789"  # not changed under its holder
    assert os.fsencode(name) not in os.environb


def test_scrubbing_an_unset_variable_finds_nothing() -> None:
    report = scrub_variable("TEST_SCRUB_NEVER_SET")
    assert report == ScrubReport(0, 0, 0, removed=False)
    assert not was_scrubbed("TEST_SCRUB_NEVER_SET")
    with pytest.raises(ValueError):
        scrub_variable("A=B")


# -- the provider ---------------------------------------------------------------------------------


@linux_only
@cpython_only
def test_provider_scrubs_after_loading_and_a_second_load_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = "TEST_SCRUB_PROVIDER"
    with generate_master_key() as key:
        monkeypatch.setenv(name, text_of(key))
        env = provider(variable=name, scrub=True)
        with env.load() as loaded:
            assert loaded == key
        assert os.fsencode(name) not in os.environb
        assert c_getenv(name) is None
        with pytest.raises(MasterKeyNotFoundError) as caught:
            env.load()
    message = str(caught.value)
    assert f"environment variable {name} was scrubbed" in message
    assert "'file'" in message
    assert "turn 'scrub' off" in message
    assert "KEYLOADER_ENV_SCRUB" in message


def test_second_load_through_the_api_fails_with_scrub(monkeypatch: pytest.MonkeyPatch) -> None:
    name = "TEST_SCRUB_API"
    pm = make_plugin_manager(autoload=True, allow=["env"], env={})
    with generate_master_key() as key:
        monkeypatch.setenv(name, text_of(key))
        options = {"variable": name, "scrub": True}
        with load_master_key(plugin_manager=pm, provider_options=options) as loaded:
            assert loaded == key
        with pytest.raises(MasterKeyNotFoundError, match="was scrubbed"):
            load_master_key(plugin_manager=pm, provider_options=options)
        # the variable set again (by the application) is loaded, and scrubbed, again
        monkeypatch.setenv(name, text_of(key))
        with load_master_key(plugin_manager=pm, provider_options=options) as loaded:
            assert loaded == key
        assert os.fsencode(name) not in os.environb


def test_scrub_off_leaves_the_variable_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    name = "TEST_SCRUB_OFF"
    with generate_master_key() as key:
        text = text_of(key)
        monkeypatch.setenv(name, text)
        env = provider(variable=name)
        for _ in range(2):
            with env.load() as loaded:
                assert loaded == key
        assert os.environ[name] == text
        assert not was_scrubbed(name)


def test_a_key_file_is_not_scrubbed_from_anywhere(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from keyloader.masterkey import write_master_key_file

    with generate_master_key() as key:
        monkeypatch.setenv("TEST_SCRUB_FILE", text_of(key))
        path = write_master_key_file(key, tmp_path / "master.key")
        env = provider(variable="TEST_SCRUB_FILE", file=path, scrub=True)
        for _ in range(2):
            with env.load() as loaded:
                assert loaded == key
        assert os.environ["TEST_SCRUB_FILE"] == text_of(key)


def test_an_invalid_key_is_not_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SCRUB_BAD", "not base64 at all!")
    with pytest.raises(Exception, match="TEST_SCRUB_BAD"):
        provider(variable="TEST_SCRUB_BAD", scrub=True).load()
    assert os.environ["TEST_SCRUB_BAD"] == "not base64 at all!"


# -- a child process: /proc/PID/environ and the whole memory ---------------------------------------

# The child loads the key the way a service does (settings from the environment, the
# entry-point plugin), keeps its settings, and reports what it sees without ever reading
# the variable's value:
# `name in os.environ` would decode it into a new str, so only names and addresses are used.
CHILD = r"""
import ctypes, json, os, posix, sys
from keyloader.api import load_master_key, resolve
settings = resolve()  # kept, as an application may: it must hold no copy of the variable
key = load_master_key(settings)
libc = ctypes.CDLL(None)
libc.getenv.restype = ctypes.c_void_p
libc.getenv.argtypes = (ctypes.c_char_p,)
report = {
    "fingerprint": key.fingerprint,
    "os_environ": "ACRA_MASTER_KEY" in list(os.environ),
    "posix_environ": b"ACRA_MASTER_KEY" in posix.environ,
    "getenv": libc.getenv(b"ACRA_MASTER_KEY") is not None,
}
print(json.dumps(report), flush=True)
print("ready", flush=True)
sys.stdin.readline()
"""


@dataclass
class Child:
    pid: int
    report: dict[str, Any]


@contextmanager
def child_loading(text: str, tmp_path: Path, **extra: str) -> Iterator[Child]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("KEYLOADER_", "ACRA_"))
    }
    env.update({"ACRA_MASTER_KEY": text, "KEYLOADER_PLUGINS": "env", **extra})
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline()
        assert proc.stdout.readline() == "ready\n", line
        yield Child(proc.pid, json.loads(line))
    finally:
        proc.kill()
        proc.wait(timeout=10)


@dataclass
class Found:
    """What the parent saw of a child that loaded the key."""

    environ_text: bool  # /proc/PID/environ holds the base64 text
    environ_name: bool  # /proc/PID/environ holds "ACRA_MASTER_KEY="
    text: int  # copies of the base64 text in the child's readable memory
    raw: int  # copies of the raw key bytes
    report: dict[str, Any]  # what the child saw of its own environment
    where: str
    unreadable: int  # mappings the scan could not read (memfd_secret pages hold the key)


def key_text(version: str) -> tuple[bytes, bytes]:
    """A random key's raw (encryption) bytes and its base64 text form, v1 or v2."""
    raw = os.urandom(32)
    if version == "v1":
        return raw, base64.b64encode(raw)
    fields = {"encryption": raw, "signature": os.urandom(32)}
    pair = json.dumps({k: base64.b64encode(v).decode() for k, v in fields.items()})
    return raw, base64.b64encode(pair.encode())


def load_in_child(tmp_path: Path, version: str = "v1", **extra: str) -> Found:
    raw, text = key_text(version)
    with child_loading(text.decode(), tmp_path, **extra) as child:
        environ = Path(f"/proc/{child.pid}/environ").read_bytes()
        result = scan(child.pid, {"text": text, "raw": raw})
    found = Found(
        environ_text=text in environ,
        environ_name=b"ACRA_MASTER_KEY=" in environ,
        text=result.count("text"),
        raw=result.count("raw"),
        report=child.report,
        where=result.where("text"),
        unreadable=len(result.unreadable),
    )
    scrub = extra.get("KEYLOADER_ENV_SCRUB", "off")
    print(
        f"{version} scrub={scrub}: base64 text {found.text} copies, raw key {found.raw} "
        f"({found.unreadable} unreadable mappings)\n{found.where}"
    )
    return found


needs_proc_mem = pytest.mark.skipif(
    sys.platform != "linux" or os.geteuid() != 0, reason="reads /proc/PID/mem of a child (root)"
)


@needs_proc_mem
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_scrubbed_child_holds_no_copy_of_the_base64_text(tmp_path: Path, version: str) -> None:
    found = load_in_child(tmp_path, version, KEYLOADER_ENV_SCRUB="1")
    assert found.environ_text is False  # /proc/PID/environ
    assert found.environ_name is True  # the name stays there, followed by zeros
    assert found.report["os_environ"] is False
    assert found.report["posix_environ"] is False
    assert found.report["getenv"] is False
    assert found.text == 0, f"copies of the base64 text left in the child:\n{found.where}"


@needs_proc_mem
def test_control_without_scrub_the_text_is_found(tmp_path: Path) -> None:
    """Scrub is off by default: the variable stays everywhere, and the scan does find it."""
    found = load_in_child(tmp_path)
    assert found.environ_text is True
    assert found.report["os_environ"] is True
    assert found.report["posix_environ"] is True
    assert found.report["getenv"] is True
    assert found.text >= 2  # the original block and posix.environ's bytes, at least
