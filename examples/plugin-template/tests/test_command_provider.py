"""Provider ``command``: the conformance suite, its options, and how it runs the command."""

from __future__ import annotations

import base64
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import keyloader
from keyloader.errors import (
    ConfigError,
    InvalidMasterKeyError,
    MasterKeyNotFoundError,
    ProviderUnavailableError,
)
from keyloader.masterkey import MasterKey, generate_master_key
from keyloader.providers import MasterKeyProvider
from keyloader.testing import MasterKeyProviderContract
from keyloader_command import CommandFailedError, CommandProvider, CommandTimeoutError
from keyloader_command.provider import ARGV_OPTION, TIMEOUT_OPTION
from keyloader_command.runner import MAX_OUTPUT, run_command

PY = sys.executable
KeyCommand = Callable[[MasterKey], tuple[str, ...]]
PrintCommand = Callable[[str], tuple[str, ...]]
NoKey = Callable[[str, MasterKey], None]
LABEL = "command 'test' (option 'argv' of provider 'command')"


def provider(argv: Any, **options: Any) -> CommandProvider:
    """A provider as the core builds it: every option present."""
    return CommandProvider({"argv": argv, "timeout": 10.0, "keystore_version": "auto", **options})


def python(code: str, *args: str) -> tuple[str, ...]:
    return (PY, "-c", code, *args)


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


# -- the conformance suite ------------------------------------------------------------------


class TestCommandProvider(MasterKeyProviderContract):
    @pytest.fixture
    def provider_class(self) -> type[MasterKeyProvider]:
        return CommandProvider

    @pytest.fixture
    def expected_key(self, master_key: MasterKey) -> MasterKey:
        return master_key

    @pytest.fixture
    def make_provider(
        self, expected_key: MasterKey, key_command: KeyCommand
    ) -> Callable[..., MasterKeyProvider]:
        argv = key_command(expected_key)

        def make(**options: Any) -> MasterKeyProvider:
            return provider(argv, **options)

        return make

    @pytest.fixture
    def broken_provider(
        self, expected_key: MasterKey, text_of: Callable[[MasterKey], str], tmp_path: Path
    ) -> MasterKeyProvider:
        """Prints the key on stdout and stderr, then fails: neither may reach the message."""
        path = tmp_path / "key.txt"
        path.write_text(text_of(expected_key))
        code = "import sys; t = open(sys.argv[1]).read(); print(t); print(t, file=sys.stderr); 3/0"
        return provider(python(code, str(path)))


# -- the class and its options ----------------------------------------------------------------


def test_schema() -> None:
    assert CommandProvider.name == "command"
    assert not CommandProvider.enterprise
    assert not CommandProvider.can_store
    options = {option.name: option for option in CommandProvider.option_schema()}
    assert list(options) == ["argv", "timeout", "keystore_version"]
    assert options["argv"].required
    assert not options["argv"].secret
    assert options["timeout"].default == 30.0
    assert options["timeout"].type == "float"
    # KEYLOADER_COMMAND_AUDIT_LOG (the audit hook) must never be read as a provider option
    assert "audit_log" not in options


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('["my-tool"]', ("my-tool",)),
        ('["my-tool", "decrypt", "--key-id", "a b"]', ("my-tool", "decrypt", "--key-id", "a b")),
        (' ["tool", ""] \n', ("tool", "")),
        (["tool", "$(x)", "*"], ("tool", "$(x)", "*")),
        (("tool", "-v"), ("tool", "-v")),
    ],
)
def test_argv_accepts_lists_and_json_arrays(value: object, expected: tuple[str, ...]) -> None:
    assert ARGV_OPTION.convert(value, origin="option 'argv'") == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("my-tool --decrypt", "is not a JSON array of strings"),
        ('"my-tool"', "is not a JSON array of strings"),
        ('{"argv": ["x"]}', "is not a JSON array of strings"),
        ("[", "is not a JSON array of strings"),
        ("", "is not a JSON array of strings"),
        ("[]", "the command is empty"),
        ([], "the command is empty"),
        ('["tool", 1]', "item 2 of the command is int, not a string"),
        (["tool", None], "item 2 of the command is NoneType"),
        (["  "], "is blank"),
        (["to\0ol"], "item 1 of the command contains a NUL"),
        (42, "a int is not a command"),
    ],
)
def test_argv_refuses_what_is_not_a_list_of_strings(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=r"^option 'argv': ") as caught:
        ARGV_OPTION.convert(value, origin="option 'argv'")
    assert message in str(caught.value)


def test_a_refused_command_line_says_there_is_no_shell() -> None:
    with pytest.raises(ConfigError, match="without a shell") as caught:
        ARGV_OPTION.convert("my-tool | base64", origin="option 'argv'")
    assert "'my-tool | base64'" in str(caught.value)


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon", True])
def test_timeout_must_be_positive_seconds(value: object) -> None:
    with pytest.raises(ConfigError, match="option 'timeout'"):
        TIMEOUT_OPTION.convert(value, origin="option 'timeout'")
    assert TIMEOUT_OPTION.convert("2.5", origin="option 'timeout'") == 2.5


# -- where the options come from ----------------------------------------------------------------


def test_options_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYLOADER_COMMAND_ARGV", '["my-tool", "decrypt"]')
    monkeypatch.setenv("KEYLOADER_COMMAND_TIMEOUT", "4")
    settings = keyloader.resolve(provider="command")
    options = settings.provider_options("command", CommandProvider.option_schema())
    assert options["argv"] == ("my-tool", "decrypt")
    assert options["timeout"] == 4.0
    monkeypatch.setenv("KEYLOADER_COMMAND_ARGV", "my-tool decrypt")
    settings = keyloader.resolve(provider="command")
    with pytest.raises(ConfigError, match=r"\(from KEYLOADER_COMMAND_ARGV\)"):
        settings.provider_options("command", CommandProvider.option_schema())


def test_options_from_the_config_file_as_array_or_string(clean_environment: Path) -> None:
    config = clean_environment / "keyloader.toml"
    schema = CommandProvider.option_schema()
    config.write_text('[providers.command]\nargv = ["my-tool", "a b"]\ntimeout = 3\n')
    options = keyloader.resolve(provider="command").provider_options("command", schema)
    assert (options["argv"], options["timeout"]) == (("my-tool", "a b"), 3.0)
    config.write_text('[providers.command]\nargv = \'["my-tool", "a b"]\'\n')
    options = keyloader.resolve(provider="command").provider_options("command", schema)
    assert options["argv"] == ("my-tool", "a b")
    config.write_text('[providers.command]\nargv = ["my-tool", 3]\n')
    with pytest.raises(ConfigError, match=r"\[providers.command\]\): item 2 "):
        keyloader.resolve(provider="command").provider_options("command", schema)


def test_loads_through_the_installed_plugin(
    master_key: MasterKey, key_command: KeyCommand, clean_environment: Path
) -> None:
    argv = ", ".join(f'"{item}"' for item in key_command(master_key))
    (clean_environment / "keyloader.toml").write_text(
        f'provider = "command"\n[providers.command]\nargv = [{argv}]\n'
    )
    with keyloader.load_master_key() as loaded:
        assert loaded == master_key


def test_argv_is_required() -> None:
    with pytest.raises(ConfigError, match="provider 'command' needs option 'argv'"):
        keyloader.load_master_key(provider="command")
    with pytest.raises(ConfigError, match="needs option 'argv'"):
        CommandProvider({}).load()


def test_direct_construction_accepts_json_text(
    master_key: MasterKey, key_command: KeyCommand
) -> None:
    import json

    built = CommandProvider({"argv": json.dumps(key_command(master_key))})
    with built.load() as loaded:
        assert loaded == master_key
    with pytest.raises(ConfigError, match="option 'argv' of provider 'command'"):
        CommandProvider({"argv": "not json"}).load()


def test_repr_shows_the_program_only(key_command: KeyCommand) -> None:
    with generate_master_key() as key:
        argv = key_command(key)
    assert repr(provider(argv)) == f"<CommandProvider 'command' program={PY!r}>"
    assert argv[-1] not in repr(provider(argv))


# -- running the command ----------------------------------------------------------------------


def test_no_shell_arguments_arrive_as_they_are(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    args = (f"$(touch {marker})", "a b", "*", "'q'", ";", "&&", "|")
    code = "import sys; sys.stdout.write(repr(sys.argv[1:]))"
    output = run_command(python(code, *args), timeout=10, label=LABEL)
    assert output.decode() == repr(list(args))
    assert not marker.exists()


def test_a_command_line_in_one_string_is_not_split() -> None:
    with pytest.raises(ConfigError, match="was not found") as caught:
        provider(["echo hello"]).load()
    assert "without a shell" in str(caught.value)


def test_missing_program(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'no-such-kms-tool-x' .* was not found"):
        provider(["no-such-kms-tool-x"]).load()
    with pytest.raises(ConfigError, match="was not found"):
        provider([str(tmp_path / "missing")]).load()


def test_program_that_cannot_be_executed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be started: Permission denied"):
        provider([str(tmp_path)]).load()  # a directory


def test_non_zero_exit_names_the_status_and_passes_stderr_through(
    master_key: MasterKey,
    text_of: Callable[[MasterKey], str],
    capsys: pytest.CaptureFixture[str],
    assert_no_key: NoKey,
    tmp_path: Path,
) -> None:
    path = tmp_path / "key.txt"
    path.write_text(text_of(master_key))
    code = (
        "import sys; t = open(sys.argv[1]).read(); print(t); "
        "print('kms says: access denied', file=sys.stderr); sys.exit(3)"
    )
    with pytest.raises(CommandFailedError) as caught:
        provider(python(code, str(path))).load()
    error = caught.value
    assert isinstance(error, ProviderUnavailableError)
    assert error.returncode == 3
    message = str(error)
    assert message.startswith(f"command {PY!r} (option 'argv' of provider 'command') failed")
    assert "exit status 3" in message
    assert "access denied" not in message
    assert_no_key(message, master_key)
    captured = capsys.readouterr()
    assert "kms says: access denied\n" in captured.err
    assert captured.out == ""


def test_killed_by_a_signal() -> None:
    code = "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"
    with pytest.raises(CommandFailedError, match="was killed by SIGTERM") as caught:
        provider(python(code)).load()
    assert caught.value.returncode == -signal.SIGTERM


def test_stderr_that_is_not_utf8_is_passed_through(capsys: pytest.CaptureFixture[str]) -> None:
    code = "import sys; sys.stderr.buffer.write(b'\\xffwarning\\n'); sys.exit(1)"
    with pytest.raises(CommandFailedError):
        provider(python(code)).load()
    assert capsys.readouterr().err.endswith("\ufffdwarning\n")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_timeout_kills_the_command_and_its_children(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "open(sys.argv[1], 'w').write(f'{__import__(\"os\").getpid()} {child.pid}')\n"
        "time.sleep(60)\n"
    )
    started = time.monotonic()
    with pytest.raises(CommandTimeoutError, match=r"did not finish within 2\.5 seconds") as caught:
        provider(python(code, str(pids)), timeout=2.5).load()
    assert time.monotonic() - started < 10
    assert isinstance(caught.value, ProviderUnavailableError)
    assert "option 'timeout'" in str(caught.value)
    parent, child = map(int, pids.read_text().split())
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(parent)
    assert not alive(child)


def test_timeout_after_stdout_is_closed() -> None:
    code = "import os, time; os.close(1); os.close(2); time.sleep(60)"
    with pytest.raises(CommandTimeoutError):
        provider(python(code), timeout=0.5).load()


def test_stdin_is_empty(master_key: MasterKey, key_command: KeyCommand) -> None:
    path = key_command(master_key)[-1]
    reading = python("import sys; sys.stdin.read(); print(open(sys.argv[1]).read())", path)
    with provider(reading, timeout=5).load() as loaded:
        assert loaded == master_key


def test_the_environment_reaches_the_command(
    master_key: MasterKey, text_of: Callable[[MasterKey], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_KMS_PLAINTEXT", text_of(master_key))
    code = "import os; print(os.environ['MY_KMS_PLAINTEXT'])"
    with provider(python(code)).load() as loaded:
        assert loaded == master_key


# -- what the command prints ------------------------------------------------------------------


@pytest.mark.parametrize("printed", ["", "\n", " \r\n\t"])
def test_nothing_printed(printed: str, print_command: PrintCommand) -> None:
    with pytest.raises(MasterKeyNotFoundError, match="printed nothing on stdout"):
        provider(print_command(printed)).load()


def test_bad_base64_gives_the_position_only(
    print_command: PrintCommand, assert_no_key: NoKey
) -> None:
    with generate_master_key() as key, key.to_text() as text:
        printed = text.bytes().decode()
        bad = printed[:12] + "*" + printed[13:]
        with pytest.raises(InvalidMasterKeyError) as caught:
            provider(print_command(bad)).load()
        message = str(caught.value)
        assert message.startswith("the output of command")
        assert "position 13 " in message
        assert "*" not in message
        assert_no_key(message, key)
        assert caught.value.__cause__ is None
        assert caught.value.__context__ is None


def test_too_short(print_command: PrintCommand) -> None:
    short = base64.b64encode(os.urandom(20)).decode()
    with pytest.raises(InvalidMasterKeyError, match="20 bytes"):
        provider(print_command(short)).load()


def test_wrapped_base64_loads(print_command: PrintCommand) -> None:
    raw = os.urandom(96)
    with provider(print_command(base64.encodebytes(raw).decode())).load() as loaded:
        assert loaded.encryption == raw


@pytest.mark.parametrize(
    "code",
    [
        f"import sys; sys.stdout.write('A' * {MAX_OUTPUT + 1})",
        "import sys\nwhile True: sys.stdout.write('A' * 65536)",
    ],
    ids=["one-byte-too-many", "endless"],
)
def test_output_larger_than_a_key_is_refused(code: str) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidMasterKeyError, match=f"larger than {MAX_OUTPUT} bytes"):
        provider(python(code), timeout=20).load()
    assert time.monotonic() - started < 10


def test_output_of_exactly_the_limit_is_read_whole() -> None:
    code = f"import sys; sys.stdout.write('A' * {MAX_OUTPUT})"
    output = run_command(python(code), timeout=10, label=LABEL)
    assert isinstance(output, bytearray)
    assert output == b"A" * MAX_OUTPUT
