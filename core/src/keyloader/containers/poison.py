"""Poison records: random data in a container under a poison key (cossacklabs/acra ``poison/``).

Acra's ``acra-poisonrecordmaker`` draws 1 to 99 random bytes (or ``--data_length``),
encrypts them as an AcraStruct to the poison keypair (``--type acrastruct``, the
default) or as an AcraBlock under the poison symmetric key (``--type acrablock``), and
prints the enveloped value in base64. A value is a poison record exactly when it
decrypts with a poison key.
"""

from __future__ import annotations

import secrets

from ..errors import ConfigError

__all__ = ["KINDS", "MAX_DATA_LENGTH", "payload"]

KINDS = ("acrastruct", "acrablock")
DEFAULT_MAX = 99
MAX_DATA_LENGTH = 1 << 30
"""A sanity bound on ``data_length`` (1 GiB), far above any column."""


def payload(data_length: int | None = None) -> bytes:
    """Random poison data: ``data_length`` bytes, or 1 to 99 like Acra's default."""
    if data_length is None:
        data_length = 1 + secrets.randbelow(DEFAULT_MAX)
    if not 1 <= data_length <= MAX_DATA_LENGTH:
        raise ConfigError(
            f"poison record data length must be 1 to {MAX_DATA_LENGTH} bytes, not {data_length}"
        )
    return secrets.token_bytes(data_length)
