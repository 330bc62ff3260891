"""Searchable values: ``7F`` | HMAC-SHA256(client's hmac key, plaintext), then the container.

AcraServer matches rows by the 33-byte hash (cossacklabs/acra ``hmac/hash.go``: the
first byte names the hash function, 0x7F for SHA-256) and, decrypting, checks it
against the plaintext in constant time.
"""

from __future__ import annotations

import hmac

from ..errors import IntegrityError

__all__ = ["HASH_SIZE", "PREFIX", "search_hash", "split", "matches"]

PREFIX = 0x7F
HASH_SIZE = 33


def search_hash(key: memoryview | bytearray, data: bytes | bytearray | memoryview) -> bytes:
    """The 33-byte searchable hash of ``data`` under the hmac ``key``."""
    return bytes((PREFIX,)) + hmac.digest(key, data, "sha256")


def split(value: memoryview) -> tuple[memoryview, memoryview]:
    """``(hash, container)`` of a searchable value; :class:`IntegrityError` if it has no hash."""
    if len(value) <= HASH_SIZE or value[0] != PREFIX:
        raise IntegrityError("not a searchable value: no 7F hash before the container")
    return value[:HASH_SIZE], value[HASH_SIZE:]


def matches(
    found: memoryview, key: memoryview | bytearray, data: bytes | bytearray | memoryview
) -> bool:
    """Whether ``found`` is the hash of ``data`` under ``key`` (constant time)."""
    return hmac.compare_digest(found, search_hash(key, data))
