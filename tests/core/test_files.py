"""keyloader.files: small option files read with checked, content-free errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from keyloader.errors import ConfigError
from keyloader.files import read_json_object, read_small_file

EXPECTED = "a JSON object with name and token"
SECRET = "s3cr3t-AKIAEXAMPLEDONOTSHOW"


def _what(path: Path) -> str:
    return f"test settings file {path}"


def _read(path: Path, max_size: int = 1024) -> bytes:
    return read_small_file(path, _what(path), max_size=max_size, expected=EXPECTED)


def _read_json(path: Path, max_size: int = 1024) -> list[tuple[str, object]]:
    return read_json_object(path, _what(path), max_size=max_size, expected=EXPECTED)


def _message(excinfo: pytest.ExceptionInfo[ConfigError]) -> str:
    return str(excinfo.value)


def test_small_file_content_is_returned(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"\x00\xffabc\n")
    assert _read(path) == b"\x00\xffabc\n"


def test_empty_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert _read(path) == b""


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "gone.json"
    with pytest.raises(ConfigError) as excinfo:
        _read(path)
    assert _message(excinfo) == (
        f"test settings file {path} does not exist: create it ({EXPECTED}), or fix the path"
    )


def test_directory_is_not_a_regular_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as excinfo:
        _read(tmp_path)
    assert _message(excinfo) == (
        f"test settings file {tmp_path} is not a regular file: give the path of the file"
    )


def test_directory_message_names_the_kind(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"is not a regular file: give the path of the PEM file$"):
        read_small_file(tmp_path, "x", max_size=10, expected=EXPECTED, kind="PEM file")
    with pytest.raises(ConfigError, match=r"give the path of the JSON file$"):
        _read_json(tmp_path)


def test_parent_is_a_file_is_reported_as_missing(tmp_path: Path) -> None:
    # ENOTDIR: the path cannot exist, so the fix is the same as for a missing file
    parent = tmp_path / "plain"
    parent.write_text("{}")
    path = parent / "creds.json"
    with pytest.raises(ConfigError) as excinfo:
        _read_json(path)
    assert _message(excinfo).startswith(f"test settings file {path} does not exist: create it")


@pytest.mark.skipif(not Path("/proc/self/mem").is_file(), reason="needs Linux /proc")
def test_read_failure_gives_the_reason() -> None:
    # a regular file whose read fails even for root (EIO at offset 0)
    path = Path("/proc/self/mem")
    with pytest.raises(ConfigError) as excinfo:
        _read(path)
    assert _message(excinfo) == f"cannot read test settings file {path}: Input/output error"


def test_larger_than_max_size_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"x" * 11)
    with pytest.raises(ConfigError) as excinfo:
        _read(path, max_size=10)
    assert _message(excinfo) == (
        f"test settings file {path} is larger than 10 bytes: it must be {EXPECTED}"
    )


def test_exactly_max_size_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "edge.json"
    content = '{"name": "' + "n" * 20 + '"}'
    path.write_text(content)
    size = len(content.encode())
    assert _read(path, max_size=size) == content.encode()
    assert _read_json(path, max_size=size) == [("name", "n" * 20)]
    with pytest.raises(ConfigError, match=f"larger than {size - 1} bytes"):
        _read_json(path, max_size=size - 1)


def test_fields_in_order_with_repeats_kept(tmp_path: Path) -> None:
    path = tmp_path / "repeat.json"
    path.write_text('{"b": 1, "a": "x", "b": [true, null], "A": {"k": 1, "k": 2}}')
    assert _read_json(path) == [("b", 1), ("a", "x"), ("b", [True, None]), ("A", {"k": 2})]


def test_nested_objects_are_dicts(tmp_path: Path) -> None:
    path = tmp_path / "nested.json"
    path.write_text('{"outer": {"inner": {"x": 1.5}}}')
    [(name, value)] = _read_json(path)
    assert name == "outer"
    assert isinstance(value, dict)
    assert value == {"inner": {"x": 1.5}}
    assert isinstance(value["inner"], dict)


def test_empty_object(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text(" {} \n")
    assert _read_json(path) == []


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"name": "caf\xe9"}')
    with pytest.raises(ConfigError) as excinfo:
        _read_json(path)
    assert (
        _message(excinfo) == f"test settings file {path} is not UTF-8 text: it must be {EXPECTED}"
    )


@pytest.mark.parametrize(
    "content",
    [
        f'{{"token": "{SECRET}"',  # unterminated object
        f"{{'token': '{SECRET}'}}",  # single quotes
        f'{{"token": {SECRET}}}',  # bare word
        f"token = {SECRET}",  # another format
        f'{{"token": "{SECRET}"}} {SECRET}',  # extra data
    ],
)
def test_invalid_json_never_shows_the_content(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as excinfo:
        _read_json(path)
    message = _message(excinfo)
    assert message.startswith(f"test settings file {path} is not valid JSON (")
    assert message.endswith(f"): it must be {EXPECTED}")
    assert " at line 1, column " in message
    assert SECRET not in message
    assert "s3cr3t" not in message
    assert excinfo.value.__cause__ is None
    assert excinfo.value.__suppress_context__


def test_invalid_json_gives_the_line(tmp_path: Path) -> None:
    path = tmp_path / "lines.json"
    path.write_text('{\n  "a": 1,\n  "b": oops\n}')
    with pytest.raises(ConfigError, match=r"\(Expecting value at line 3, column 8\)"):
        _read_json(path)


def test_empty_file_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text("")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        _read_json(path)


@pytest.mark.parametrize("content", [f'["{SECRET}"]', f'"{SECRET}"', "42", "null", "true"])
def test_not_an_object(tmp_path: Path, content: str) -> None:
    path = tmp_path / "other.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as excinfo:
        _read_json(path)
    assert _message(excinfo) == (
        f"test settings file {path} does not hold a JSON object: it must be {EXPECTED}"
    )


def test_json_object_file_checks_come_first(tmp_path: Path) -> None:
    path = tmp_path / "missing.json"
    with pytest.raises(ConfigError, match="does not exist"):
        _read_json(path)
    big = tmp_path / "big.json"
    big.write_text('{"a": "' + "x" * 100 + '"}')
    with pytest.raises(ConfigError, match="is larger than 50 bytes"):
        _read_json(big, max_size=50)


def test_config_error_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        _read(tmp_path / "nope")


def test_importing_the_module_does_not_import_json() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import keyloader.files, sys; print('json' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert out.strip() == "False"
