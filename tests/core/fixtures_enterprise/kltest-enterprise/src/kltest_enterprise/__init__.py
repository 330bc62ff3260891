"""Enterprise stand-ins: non-placeholder ``aws-kms``, ``gcp-kms`` and ``keywhiz`` providers.

Each subclasses the open-source placeholder with ``placeholder = False``, so it
has the same name, options and checks, and loads a key without any cloud:
the "KMS" ciphertext is the master key itself (decryption is the identity),
and the "Keywhiz server" is the JSON object in ``KLTEST_KEYWHIZ_SECRETS``
(secret name -> base64 text). Every load records ``(provider name, config)``
in :data:`LOADED`.
"""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

import keyloader
from keyloader.errors import MasterKeyNotFoundError
from keyloader.masterkey import MasterKey, parse_master_key
from keyloader.providers import MasterKeyProvider
from keyloader_aws import AwsKmsPlaceholder, load_credentials
from keyloader_gcp import GcpKmsPlaceholder
from keyloader_keywhiz import KeywhizPlaceholder

LOADED: list[tuple[str, dict[str, Any]]] = []


def _record(provider: MasterKeyProvider) -> None:
    LOADED.append((provider.name, dict(provider.config)))


def _from_variable(provider: MasterKeyProvider, what: str) -> MasterKey:
    variable = str(provider.config["encrypted_key_variable"])
    ciphertext = os.environ.get(variable)
    if not ciphertext:
        raise MasterKeyNotFoundError(f"{what}: environment variable {variable} is not set")
    return parse_master_key(
        ciphertext,
        keystore_version=provider.keystore_version,
        source=f"environment variable {variable} ({what})",
    )


class FakeAwsKms(AwsKmsPlaceholder):
    placeholder: ClassVar[bool] = False

    def load(self) -> MasterKey:
        _record(self)
        if self.config["credentials_path"] is not None:  # else: the AWS chain
            load_credentials(self.config["credentials_path"])
        return _from_variable(self, "fake AWS KMS")


class FakeGcpKms(GcpKmsPlaceholder):
    placeholder: ClassVar[bool] = False

    def load(self) -> MasterKey:
        _record(self)
        return _from_variable(self, f"fake Cloud KMS key {self.config['key_name']}")


class FakeKeywhiz(KeywhizPlaceholder):
    placeholder: ClassVar[bool] = False

    def load(self) -> MasterKey:
        _record(self)
        secrets = json.loads(os.environ.get("KLTEST_KEYWHIZ_SECRETS", "{}"))
        name = str(self.config["secret_name"])
        if name not in secrets:
            raise MasterKeyNotFoundError(f"fake Keywhiz has no secret {name!r}")
        return parse_master_key(
            secrets[name], keystore_version=self.keystore_version, source=f"Keywhiz secret {name}"
        )


@keyloader.hookimpl
def keyloader_master_key_providers() -> list[type[MasterKeyProvider]]:
    return [FakeAwsKms, FakeGcpKms, FakeKeywhiz]
