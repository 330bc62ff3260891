"""Key ids: parsing, Acra v1 store names and contexts, classification of store names."""

from __future__ import annotations

import pytest

from keyloader.errors import ConfigError
from keyloader.keyids import KeyId, KeyKind, classify, validate_client_id

ACRA_TABLE = [
    ("client/client1/symmetric", "client1_storage_sym", b"client1"),
    ("client/client1/searchable", "client1_hmac", b"client1"),
    ("client/client1/storage", "client1_storage", b"client1"),
    ("audit-log", "secure_log_key", b"secure_log_key"),
    ("poison-record-symmetric", ".poison_key/poison_key_sym", b".poison_key/poison_key_sym"),
    ("poison-record", ".poison_key/poison_key", b".poison_key/poison_key"),
]


@pytest.mark.parametrize(("text", "store_name", "context"), ACRA_TABLE)
def test_key_id_maps_to_acra_name_and_context(text: str, store_name: str, context: bytes) -> None:
    kid = KeyId.parse(text)
    assert str(kid) == text
    assert kid.store_name == store_name
    assert kid.context == context
    assert classify(store_name).key_id == kid


def test_keypairs_have_public_files() -> None:
    assert KeyId.parse("client/client1/storage").public_name == "client1_storage.pub"
    assert KeyId.parse("poison-record").public_name == ".poison_key/poison_key.pub"
    assert KeyId.parse("client/client1/symmetric").public_name is None
    pub = classify("client1_storage.pub")
    assert pub.public
    assert pub.key_id == KeyId(KeyKind.STORAGE, "client1")


@pytest.mark.parametrize(
    "name",
    [
        "client1",
        "client1_server",
        "client1_zone",
        "ZXCabc_zone_sym",
        "auth_key",
        "abc_hmac",
        "client1_storage_sym.pub",
        "version-x",
        "cl/ient_hmac",
    ],
)
def test_other_names_are_unknown(name: str) -> None:
    assert classify(name).key_id is None


def test_longest_suffix_wins() -> None:
    # "<cid>_storage_sym" is the symmetric key of <cid>, not a keypair named "<cid>_storage_sym"
    kid = classify("client1_storage_sym").key_id
    assert kid == KeyId(KeyKind.SYMMETRIC, "client1")
    # a client id may itself end in "_storage"
    assert classify("app_storage_storage_sym").key_id == KeyId(KeyKind.SYMMETRIC, "app_storage")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "client/",
        "client/abc/symmetric",
        "client/client1/other",
        "client/client1",
        "audit",
        "client/bad/id!/symmetric",
        "client/" + "x" * 257 + "/symmetric",
        "poison_key",
    ],
)
def test_bad_key_ids_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        KeyId.parse(text)


@pytest.mark.parametrize("cid", ["abcde", "a b-c_d", "X" * 256, "12345"])
def test_valid_client_ids(cid: str) -> None:
    assert validate_client_id(cid) == cid


@pytest.mark.parametrize("cid", ["abcd", "X" * 257, "abc/de", "abc.de", "abcdé", "abc\nde"])
def test_invalid_client_ids(cid: str) -> None:
    with pytest.raises(ConfigError, match="client id"):
        validate_client_id(cid)


def test_client_id_rules_follow_the_kind() -> None:
    with pytest.raises(ConfigError):
        KeyId(KeyKind.SYMMETRIC)
    with pytest.raises(ConfigError):
        KeyId(KeyKind.AUDIT_LOG, "client1")
