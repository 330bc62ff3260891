"""What ``KeyStoreContract`` tells a store author when a check fails: what to do, not only
"DID NOT RAISE"."""

from __future__ import annotations

import pytest

from keyloader.errors import KeyStoreError
from keyloader.stores import MAX_BLOB_SIZE, MemoryKeyStore, check_blob_size
from keyloader.stores import memory as memory_module
from keyloader.testing import KeyStoreContract


def test_a_store_that_returns_an_oversize_value_is_told_to_call_check_blob_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(memory_module, "check_blob_size", lambda *args: None)  # forgets it
    store = MemoryKeyStore({})
    with pytest.raises(pytest.fail.Exception) as caught:
        KeyStoreContract().test_a_value_larger_than_any_key_is_refused_on_read(store)
    message = str(caught.value)
    assert f"{MAX_BLOB_SIZE + 1024} bytes" in message
    assert "keyloader.stores.check_blob_size(size, what, location)" in message


def test_check_blob_size_is_public_and_says_what_to_do() -> None:
    check_blob_size(MAX_BLOB_SIZE, "client1_hmac", "the store")
    with pytest.raises(KeyStoreError, match=r"larger than any key could be .*move it out"):
        check_blob_size(MAX_BLOB_SIZE + 1, "client1_hmac", "the store")
