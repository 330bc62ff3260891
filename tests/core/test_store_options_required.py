"""A key store's ``required`` options are enforced by the core, as a provider's are."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pytest

import keyloader
from keyloader.errors import ConfigError
from keyloader.plugins import make_plugin_manager
from keyloader.providers import Option
from keyloader.stores import MemoryKeyStore


class BucketStore(MemoryKeyStore):
    name: ClassVar[str] = "bucket-store"
    options: ClassVar[tuple[Option, ...]] = (
        *MemoryKeyStore.options,
        Option("bucket", "Bucket holding the keys.", required=True),
    )
    built: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        BucketStore.built.append(dict(config))


def manager() -> Any:
    plugin = ModuleType("bucket_plugin")
    plugin.keyloader_key_stores = keyloader.hookimpl(lambda: [BucketStore])  # type: ignore[attr-defined]
    from keyloader_env import plugin as env_plugin

    return make_plugin_manager(autoload=False, env={}, plugins=[plugin, env_plugin])


def test_a_missing_required_store_option_is_a_config_error_before_the_store_is_built(
    tmp_path: Path,
) -> None:
    BucketStore.built.clear()
    with pytest.raises(ConfigError) as excinfo:
        keyloader.open_keystore(keystore="bucket-store", plugin_manager=manager(), env={})
    message = str(excinfo.value)
    assert message.startswith("key store 'bucket-store' needs option 'bucket'")
    for where in (
        "-s bucket=...",
        "[stores.bucket-store] bucket",
        "KEYLOADER_STORE_BUCKET_STORE_BUCKET",
    ):
        assert where in message
    assert BucketStore.built == []


@pytest.mark.parametrize(
    ("kwargs", "env"),
    [
        ({"store_options": {"bucket": "keys"}}, {}),
        ({}, {"KEYLOADER_STORE_BUCKET_STORE_BUCKET": "keys"}),
    ],
)
def test_a_given_required_store_option_opens_the_store(
    kwargs: dict[str, Any], env: dict[str, str]
) -> None:
    BucketStore.built.clear()
    with keyloader.open_keystore(
        keystore="bucket-store", plugin_manager=manager(), env=env, **kwargs
    ) as keys:
        assert keys.list() == []
    assert BucketStore.built[0]["bucket"] == "keys"
