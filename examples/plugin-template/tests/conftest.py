"""Test set-up: a clean environment per test, and a command that prints a given text."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from keyloader.masterkey import MasterKey, generate_master_key

PrintCommand = Callable[[str], tuple[str, ...]]

_CLEARED_PREFIXES = ("KEYLOADER_", "ACRA_")


@pytest.fixture(autouse=True)
def clean_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """No inherited keyloader settings, a private HOME and working directory."""
    for name in list(os.environ):
        if name.startswith(_CLEARED_PREFIXES):
            monkeypatch.delenv(name)
    work = tmp_path_factory.mktemp("cwd")
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(work)
    return work


@pytest.fixture(params=["v1", "v2"])
def master_key(request: pytest.FixtureRequest) -> Iterator[MasterKey]:
    """A fresh master key of each keystore version."""
    with generate_master_key(request.param) as key:
        yield key


def key_text(key: MasterKey) -> str:
    """The base64 text form of ``key`` (what the command prints)."""
    with key.to_text() as text:
        return text.bytes().decode()


@pytest.fixture
def text_of() -> Callable[[MasterKey], str]:
    """``text_of(key)``: the key's base64 text form."""
    return key_text


def leaked_forms(key: MasterKey) -> list[str]:
    """The forms of ``key``'s material that must never show up: base64, hex, the text form."""
    import base64

    forms = [key_text(key)]
    for part in (key.encryption, key.signature):
        if part is not None:
            raw = part.bytes()
            forms += [base64.b64encode(raw).decode(), raw.hex(), raw.decode("latin-1")]
    return forms


@pytest.fixture
def assert_no_key() -> Callable[[str, MasterKey], None]:
    """``assert_no_key(text, key)``: fail if ``text`` holds ``key``'s material in any form."""

    def check(text: str, key: MasterKey) -> None:
        for form in leaked_forms(key):
            assert form[:24] not in text, "key material leaked"

    return check


@pytest.fixture
def print_command(tmp_path: Path) -> PrintCommand:
    """``print_command(text)``: an argv that prints ``text`` on stdout, read from a 0600 file.

    The text is not on the command line, where ``ps`` would show it.
    """
    counter = iter(range(1_000_000))

    def make(text: str) -> tuple[str, ...]:
        path = tmp_path / f"printed-{next(counter)}.txt"
        path.write_text(text)
        path.chmod(0o600)
        code = "import sys; sys.stdout.write(open(sys.argv[1]).read())"
        return (sys.executable, "-c", code, str(path))

    return make


@pytest.fixture
def key_command(print_command: PrintCommand) -> Callable[[MasterKey], tuple[str, ...]]:
    """``key_command(key)``: an argv that prints ``key``'s text form and a newline."""

    def make(key: MasterKey) -> tuple[str, ...]:
        return print_command(key_text(key) + "\n")

    return make
