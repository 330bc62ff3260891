"""keyloader-env: the ``env`` provider (a variable or a key file), its hook and entry point."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

import keyloader_env
from keyloader.api import load_master_key
from keyloader.errors import (
    ConfigError,
    InsecurePermissionsError,
    InvalidMasterKeyError,
    MasterKeyError,
    MasterKeyNotFoundError,
)
from keyloader.masterkey import MasterKey, generate_master_key, write_master_key_file
from keyloader.plugins import make_plugin_manager
from keyloader.providers import MasterKeyProvider
from keyloader.testing import MasterKeyProviderContract
from keyloader_env import EnvProvider
from keyloader_env.plugin import MAX_FILE_SIZE, keyloader_master_key_providers

from ..keytext import text_of

Factory = Callable[..., MasterKeyProvider]
VARIABLE = "TEST_ENV_MASTER_KEY"


def provider(**options: Any) -> EnvProvider:
    """An EnvProvider as the core builds it: every option present."""
    return EnvProvider({"variable": VARIABLE, "file": None, "keystore_version": "auto", **options})


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def key_file(directory: Path, content: bytes, mode: int = 0o600, name: str = "master.key") -> Path:
    path = directory / name
    path.write_bytes(content)
    path.chmod(mode)
    return path


def assert_no_leak(message: str, *secrets: bytes) -> None:
    for secret in secrets:
        for form in (b64(secret), secret.hex(), secret.decode("latin-1")):
            assert form not in message


# -- the conformance suite ------------------------------------------------------------------


@pytest.fixture(params=["v1", "v2"])
def generated(request: pytest.FixtureRequest) -> Iterator[MasterKey]:
    with generate_master_key(request.param) as key:
        yield key


class TestEnvProviderFromVariable(MasterKeyProviderContract):
    @pytest.fixture
    def provider_class(self) -> type[MasterKeyProvider]:
        return EnvProvider

    @pytest.fixture
    def expected_key(self, generated: MasterKey) -> MasterKey:
        return generated

    @pytest.fixture
    def make_provider(self, expected_key: MasterKey, monkeypatch: pytest.MonkeyPatch) -> Factory:
        monkeypatch.setenv(VARIABLE, text_of(expected_key))
        return provider

    @pytest.fixture
    def broken_provider(self, expected_key: MasterKey, monkeypatch: pytest.MonkeyPatch) -> Any:
        monkeypatch.setenv("BROKEN_KEY", text_of(expected_key)[:-2] + "$=")
        return provider(variable="BROKEN_KEY")


class TestEnvProviderFromFile(MasterKeyProviderContract):
    @pytest.fixture
    def provider_class(self) -> type[MasterKeyProvider]:
        return EnvProvider

    @pytest.fixture
    def expected_key(self, generated: MasterKey) -> MasterKey:
        return generated

    @pytest.fixture
    def make_provider(self, expected_key: MasterKey, tmp_path: Path) -> Factory:
        path = write_master_key_file(expected_key, tmp_path / "master.key")

        def make(**options: Any) -> MasterKeyProvider:
            return provider(file=path, **options)

        return make

    @pytest.fixture
    def broken_provider(self, expected_key: MasterKey, tmp_path: Path) -> Any:
        path = write_master_key_file(expected_key, tmp_path / "open.key")
        path.chmod(0o644)
        return provider(file=path)


# -- the class and the plugin ---------------------------------------------------------------


def test_class_attributes() -> None:
    assert EnvProvider.name == "env"
    assert EnvProvider.aliases == ("env_master_key",)
    assert not EnvProvider.enterprise
    options = {option.name: option for option in EnvProvider.option_schema()}
    assert list(options) == ["variable", "file", "scrub", "keystore_version"]
    assert options["variable"].default == "ACRA_MASTER_KEY"
    assert options["file"].type == "path"
    assert options["file"].default is None


def test_variable_option_rejects_non_names() -> None:
    option = next(o for o in EnvProvider.options if o.name == "variable")
    assert option.convert("MY_KEY", origin="option 'variable'") == "MY_KEY"
    for bad in ("", "A=B"):
        with pytest.raises(ConfigError, match="option 'variable'"):
            option.convert(bad, origin="option 'variable'")


def test_hook_and_entry_point() -> None:
    assert keyloader_master_key_providers() == [EnvProvider]
    (entry_point,) = entry_points(group="keyloader", name="env")
    assert entry_point.value == "keyloader_env.plugin"
    assert entry_point.load().EnvProvider is EnvProvider
    assert keyloader_env.EnvProvider is EnvProvider


def test_plugin_manager_finds_it_by_name_and_alias() -> None:
    pm = make_plugin_manager(autoload=True, allow=["env"], env={})
    assert pm.find_provider("env") is EnvProvider
    assert pm.find_provider("env_master_key") is EnvProvider


def test_loaded_through_the_api(monkeypatch: pytest.MonkeyPatch) -> None:
    with generate_master_key() as key:
        monkeypatch.setenv("ACRA_MASTER_KEY", text_of(key))
        pm = make_plugin_manager(autoload=True, allow=["env"], env={})
        with load_master_key(plugin_manager=pm) as loaded:
            assert loaded == key
        monkeypatch.setenv("OTHER_KEY", text_of(key))
        monkeypatch.setenv("KEYLOADER_ENV_VARIABLE", "OTHER_KEY")
        monkeypatch.delenv("ACRA_MASTER_KEY")
        with load_master_key(plugin_manager=pm) as loaded:
            assert loaded == key


def test_repr_names_the_source_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    raw = os.urandom(32)
    monkeypatch.setenv(VARIABLE, b64(raw))
    assert repr(provider()) == f"<EnvProvider 'env' variable={VARIABLE!r}>"
    path = key_file(tmp_path, raw)
    assert repr(provider(file=path)) == f"<EnvProvider 'env' file={str(path)!r}>"


# -- the variable ---------------------------------------------------------------------------


def test_default_variable_is_acra_master_key(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = os.urandom(32)
    monkeypatch.setenv("ACRA_MASTER_KEY", b64(raw))
    for config in ({"variable": None, "file": None}, {}):
        with EnvProvider(config).load() as key:
            assert key.encryption == raw


def test_variable_is_read_at_load_time(monkeypatch: pytest.MonkeyPatch) -> None:
    env = provider()
    with pytest.raises(MasterKeyNotFoundError):
        env.load()
    first, second = os.urandom(32), os.urandom(32)
    monkeypatch.setenv(VARIABLE, b64(first))
    with env.load() as key:
        assert key.encryption == first
    monkeypatch.setenv(VARIABLE, b64(second))
    with env.load() as key:
        assert key.encryption == second


def test_unset_variable() -> None:
    with pytest.raises(MasterKeyNotFoundError) as caught:
        provider().load()
    message = str(caught.value)
    assert f"environment variable {VARIABLE} is not set" in message
    assert "keyloader master-key generate" in message
    assert "'file'" in message


@pytest.mark.parametrize("value", ["", "\n", "  "])
def test_empty_variable(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(VARIABLE, value)
    with pytest.raises(MasterKeyNotFoundError, match=f"environment variable {VARIABLE} is empty"):
        provider().load()


def test_bad_base64_gives_the_position(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = os.urandom(32)
    text = b64(raw)
    monkeypatch.setenv(VARIABLE, text[:12] + "*" + text[13:])
    with pytest.raises(InvalidMasterKeyError) as caught:
        provider().load()
    message = str(caught.value)
    assert message.startswith(f"environment variable {VARIABLE} is not valid base64")
    assert "position 13 " in message
    assert "*" not in message
    assert_no_leak(message, raw)
    assert caught.value.__context__ is None


def test_too_short(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = os.urandom(24)
    monkeypatch.setenv(VARIABLE, b64(raw))
    with pytest.raises(InvalidMasterKeyError, match="24 bytes") as caught:
        provider().load()
    assert VARIABLE in str(caught.value)
    assert_no_leak(str(caught.value), raw)


def test_wrapped_text_with_trailing_newline(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = os.urandom(64)
    monkeypatch.setenv(VARIABLE, base64.encodebytes(raw).decode())
    with provider().load() as key:
        assert key.encryption == raw


def test_v2_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    encryption, signature = os.urandom(32), os.urandom(32)
    document = {"Encryption": b64(encryption), "signature": b64(signature)}
    monkeypatch.setenv(VARIABLE, b64(json.dumps(document).encode()))
    with provider().load() as key:
        assert key.version == "v2"
        assert key.encryption == encryption
        assert key.signature == signature


def test_v2_equal_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    same = os.urandom(32)
    document = {"encryption": b64(same), "signature": b64(same)}
    monkeypatch.setenv(VARIABLE, b64(json.dumps(document).encode()))
    with pytest.raises(InvalidMasterKeyError, match="are equal") as caught:
        provider().load()
    assert VARIABLE in str(caught.value)
    assert_no_leak(str(caught.value), same)


def test_keystore_version_v1_reads_a_v2_text_as_one_key(monkeypatch: pytest.MonkeyPatch) -> None:
    with generate_master_key("v2") as pair:
        text = text_of(pair)
    monkeypatch.setenv(VARIABLE, text)
    with provider(keystore_version="v1").load() as key:
        assert key.version == "v1"
        assert key.encryption == base64.b64decode(text)


def test_keystore_version_v2_refuses_a_v1_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VARIABLE, b64(os.urandom(32)))
    with pytest.raises(InvalidMasterKeyError, match="not a keystore v2 master key"):
        provider(keystore_version="v2").load()


# -- the key file ---------------------------------------------------------------------------


def test_file_wins_over_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    in_file, in_variable = os.urandom(32), os.urandom(32)
    monkeypatch.setenv(VARIABLE, b64(in_variable))
    path = key_file(tmp_path, in_file)
    with provider(file=path).load() as key:
        assert key.encryption == in_file
    with provider(file=str(path)).load() as key:
        assert key.encryption == in_file


def test_generated_files_load(tmp_path: Path) -> None:
    for version in ("v1", "v2"):
        with generate_master_key(version) as generated:
            path = write_master_key_file(generated, tmp_path / f"{version}.key")
            with provider(file=path).load() as key:
                assert key == generated


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o602, 0o610, 0o601])
def test_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    raw = os.urandom(32)
    path = key_file(tmp_path, raw, mode)
    with pytest.raises(InsecurePermissionsError) as caught:
        provider(file=path).load()
    message = str(caught.value)
    assert f"chmod 600 {path}" in message
    assert f"{mode:04o}" in message
    assert_no_leak(message, raw)


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700])
def test_private_file_is_accepted(tmp_path: Path, mode: int) -> None:
    raw = os.urandom(32)
    with provider(file=key_file(tmp_path, raw, mode)).load() as key:
        assert key.encryption == raw


def test_path_with_spaces_is_quoted_in_the_fix(tmp_path: Path) -> None:
    path = key_file(tmp_path, os.urandom(32), 0o644, name="my key")
    with pytest.raises(InsecurePermissionsError, match="chmod 600 '"):
        provider(file=path).load()


def test_symlink_to_a_private_file(tmp_path: Path) -> None:
    raw = os.urandom(32)
    target = key_file(tmp_path, raw)
    link = tmp_path / "link.key"
    link.symlink_to(target)
    with provider(file=link).load() as key:
        assert key.encryption == raw


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.key"
    with pytest.raises(MasterKeyNotFoundError) as caught:
        provider(file=path).load()
    message = str(caught.value)
    assert f"key file {path}" in message
    assert "does not exist" in message
    assert "keyloader master-key generate --output" in message


def test_directory_is_not_a_key_file(tmp_path: Path) -> None:
    directory = tmp_path / "dir"
    directory.mkdir(mode=0o700)
    with pytest.raises(MasterKeyNotFoundError, match="not a regular file"):
        provider(file=directory).load()


def test_short_raw_key_file(tmp_path: Path) -> None:
    raw = os.urandom(31)
    path = key_file(tmp_path, raw)
    with pytest.raises(InvalidMasterKeyError) as caught:
        provider(file=path).load()
    message = str(caught.value)
    assert f"key file {path} holds 31 bytes" in message
    assert "keyloader master-key generate --output" in message
    assert_no_leak(message, raw)


def test_empty_key_file(tmp_path: Path) -> None:
    with pytest.raises(MasterKeyNotFoundError, match="is empty"):
        provider(file=key_file(tmp_path, b"")).load()


def test_oversized_key_file(tmp_path: Path) -> None:
    path = key_file(tmp_path, os.urandom(MAX_FILE_SIZE + 1))
    with pytest.raises(InvalidMasterKeyError, match="too large"):
        provider(file=path).load()
    path = key_file(tmp_path, os.urandom(MAX_FILE_SIZE), name="max.key")
    with provider(file=path).load() as key:
        assert len(key.encryption) == MAX_FILE_SIZE


def test_raw_file_under_keystore_version_v2(tmp_path: Path) -> None:
    path = key_file(tmp_path, os.urandom(32))
    with pytest.raises(InvalidMasterKeyError, match="raw key bytes"):
        provider(file=path, keystore_version="v2").load()


def test_every_failure_is_a_master_key_or_permission_error(tmp_path: Path) -> None:
    failures = [
        provider(),
        provider(file=tmp_path / "missing"),
        provider(file=key_file(tmp_path, b"short")),
        provider(file=key_file(tmp_path, os.urandom(32), 0o666, name="open")),
    ]
    for env in failures:
        with pytest.raises((MasterKeyError, InsecurePermissionsError)):
            env.load()


def test_fifo_is_not_a_key_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(MasterKeyNotFoundError, match="not a regular file"):
        provider(file=fifo).load()
