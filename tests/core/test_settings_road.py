"""Settings travel down once: each option is chosen and converted once per object built."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import keyloader
from keyloader import build, option_values
from keyloader.masterkey import generate_master_key
from keyloader.providers import Option


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """Every call of ``choose`` (one per option schema resolved) and of ``Option.convert``."""
    calls: dict[str, list[Any]] = {"choose": [], "convert": []}
    choose, convert = option_values.choose, Option.convert

    def counting_choose(tables: Any, schema: Any, subject: str, hint: Any) -> Any:
        calls["choose"].append(subject)
        return choose(tables, schema, subject, hint)

    def counting_convert(self: Option, value: object, *, origin: str) -> Any:
        calls["convert"].append(origin)
        return convert(self, value, origin=origin)

    monkeypatch.setattr(option_values, "choose", counting_choose)
    monkeypatch.setattr("keyloader.config.choose", counting_choose)
    monkeypatch.setattr(Option, "convert", counting_convert)
    return calls


def test_opening_a_keystore_resolves_each_schema_once(
    tmp_path: Path, counted: dict[str, list[Any]]
) -> None:
    with generate_master_key() as key, key.to_text() as text:
        env = {"ACRA_MASTER_KEY": text.bytes().decode(), "KEYLOADER_ENV_KEYSTORE_VERSION": "v1"}
    with keyloader.open_keystore(
        keys_dir=tmp_path / "keys", store_options={"lock_timeout": 3}, env=env
    ) as keys:
        assert keys.list() == []
    assert counted["choose"] == ["provider 'env'", "key store 'filesystem'"]
    origins = counted["convert"]
    assert sum("'keystore_version'" in o for o in origins) == 1  # given once, converted once
    assert sum("'lock_timeout'" in o for o in origins) == 1
    assert sum("'keys_dir'" in o for o in origins) == 1


def test_building_a_provider_resolves_its_options_once(counted: dict[str, list[Any]]) -> None:
    settings = keyloader.resolve(provider_options={"variable": "SOME_KEY"}, env={})
    pm = keyloader.make_plugin_manager(env={})
    provider = build.build_provider(pm, settings)
    assert provider.config["variable"] == "SOME_KEY"
    assert counted["choose"] == ["provider 'env'"]
    assert [o for o in counted["convert"] if "'variable'" in o] == [
        "option 'variable' of provider 'env' (from keyword argument provider_options)"
    ]
