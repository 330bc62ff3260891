"""The real ``aws-kms`` provider: Acra's ``kms_encrypted_master_key`` strategy on boto3.

``ACRA_MASTER_KEY`` (option ``encrypted_key_variable``) holds base64 of a KMS
ciphertext; the master key is ``Decrypt(KeyId=key_alias, CiphertextBlob=...)``
with no encryption context, then checked like any master key: a v1 key of at
least 32 bytes, or (keystore v2) the JSON pair. ``store`` encrypts a key under the
alias, making the KMS key and alias first when the region has none, and returns
the ``ACRA_MASTER_KEY`` value; the plaintext never leaves the process but for KMS.

This module imports no AWS SDK; :mod:`keyloader_aws.client` does, on first use.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from keyloader.errors import (
    AuthenticationError,
    InvalidMasterKeyError,
    KeyExistsError,
    MasterKeyError,
)
from keyloader.errors import MasterKeyNotFoundError as NotFound
from keyloader.masterkey import master_key_from_bytes
from keyloader.providers import REWRAP_ENV_VARIABLE
from keyloader.secret_base64 import decode_base64, wipe

from .credentials import AwsKmsCredentials, load_credentials
from .plugin import (
    DEFAULT_ENCRYPTED_KEY_VARIABLE,
    DEFAULT_KEY_ALIAS,
    DEFAULT_TIMEOUT,
    AwsKmsPlaceholder,
)

if TYPE_CHECKING:
    from keyloader.masterkey import MasterKey

    from .client import KmsClient

__all__ = ["AWS_CREDENTIAL_VARIABLES", "AwsKmsProvider", "KmsSettings"]

AWS_CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
)
"""Credentials the standard AWS chain reads from the environment (``exec`` removes them)."""

MIN_CIPHERTEXT_LENGTH = 32
"""Acra checks the decoded variable like a key (32 bytes); every KMS ciphertext is longer."""

_MAKE_ONE = "make one with `keyloader --enterprise --provider aws-kms master-key store --generate`"


@dataclass(frozen=True)
class KmsSettings:
    """The provider's options, resolved: what :class:`~keyloader_aws.client.KmsClient` needs."""

    credentials: AwsKmsCredentials | None
    region: str | None
    endpoint: str | None
    key_alias: str = DEFAULT_KEY_ALIAS
    encrypted_key_variable: str = DEFAULT_ENCRYPTED_KEY_VARIABLE
    ca_bundle: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    retries: int = 2

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> KmsSettings:
        """Options as the core resolved them; the credentials file is read here."""
        path = config.get("credentials_path")
        credentials = load_credentials(Path(path)) if path else None
        ca_bundle = config.get("ca_bundle")
        return cls(
            credentials=credentials,
            region=config.get("region") or (credentials.region if credentials else None),
            endpoint=config.get("endpoint") or (credentials.endpoint if credentials else None),
            key_alias=str(config.get("key_alias") or DEFAULT_KEY_ALIAS),
            encrypted_key_variable=str(
                config.get("encrypted_key_variable") or DEFAULT_ENCRYPTED_KEY_VARIABLE
            ),
            ca_bundle=str(ca_bundle) if ca_bundle else None,
            timeout=float(config.get("timeout") or DEFAULT_TIMEOUT),
            retries=_int(config.get("retries"), 2),
        )


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) else default


class AwsKmsProvider(AwsKmsPlaceholder):
    """The master key decrypted by AWS KMS (Enterprise Edition, gated like the placeholder)."""

    placeholder: ClassVar[bool] = False
    can_store: ClassVar[bool] = True
    install_hint: ClassVar[str] = ""

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self._settings: KmsSettings | None = None
        self._client: KmsClient | None = None

    @classmethod
    def rewrap_target_defaults(cls, given: frozenset[str]) -> dict[str, object]:
        """As a rewrap target, the ciphertext is read from ``DST_ACRA_MASTER_KEY``."""
        return (
            {}
            if "encrypted_key_variable" in given
            else {"encrypted_key_variable": REWRAP_ENV_VARIABLE}
        )

    @property
    def kms_settings(self) -> KmsSettings:
        if self._settings is None:
            self._settings = KmsSettings.from_config(self.config)
        return self._settings

    @property
    def variable(self) -> str:
        """The environment variable holding the ciphertext."""
        return str(self.config.get("encrypted_key_variable") or DEFAULT_ENCRYPTED_KEY_VARIABLE)

    def consumed_environment(self) -> tuple[str, ...]:
        """The ciphertext's variable, and the AWS chain's credentials when they were used."""
        extra = [self.variable]
        if not self.config.get("credentials_path"):
            extra += AWS_CREDENTIAL_VARIABLES
        return tuple(dict.fromkeys((*super().consumed_environment(), *extra)))

    def load(self) -> MasterKey:
        """Decrypt the variable's ciphertext with KMS and check the plaintext as a master key."""
        blob = self._ciphertext()
        plaintext = self._kms().decrypt(blob)
        try:
            return master_key_from_bytes(
                plaintext,
                keystore_version=self.keystore_version,
                source=f"the AWS KMS plaintext of environment variable {self.variable}",
            )
        finally:
            wipe(plaintext)

    def store(self, key: MasterKey, *, force: bool = False) -> dict[str, str]:
        """Encrypt ``key`` under the alias (made if missing); return the variable's new value.

        Without ``force``, a variable that already holds a key this alias decrypts
        is :class:`KeyExistsError`: the service would lose the key it has.
        """
        if not force:
            self._refuse_replacing()
        with key.to_bytes() as plaintext:
            request = bytearray(plaintext.buffer)  # botocore takes bytes or bytearray only
            try:
                blob = self._kms().encrypt(request)
            finally:
                request[:] = bytes(len(request))
        return {self.variable: base64.b64encode(blob).decode("ascii")}

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} variable={self.variable!r}>"

    # -- helpers ----------------------------------------------------------------------------

    def _kms(self) -> KmsClient:
        if self._client is None:
            from .client import KmsClient  # here: boto3 loads when KMS is first used

            self._client = KmsClient(self.kms_settings)
        return self._client

    def _ciphertext(self) -> bytes:
        """The variable's base64 decoded (it is a ciphertext, not a secret)."""
        name = self.variable
        text = os.environ.get(name)
        if text is None or not text.strip():
            state = "is not set" if text is None else "is empty"
            raise NotFound(
                f"environment variable {name} {state}: it must hold the base64 AWS KMS "
                f"ciphertext of the master key; {_MAKE_ONE}"
            )
        subject = f"environment variable {name}"
        if not text.isascii():
            raise InvalidMasterKeyError(f"{subject} is not base64 (non-ASCII text): {_MAKE_ONE}")
        blob = decode_base64(text.strip().encode("ascii"), subject, _MAKE_ONE)
        if len(blob) < MIN_CIPHERTEXT_LENGTH:
            raise InvalidMasterKeyError(
                f"{subject} decodes to {len(blob)} bytes, too short for an AWS KMS ciphertext: "
                f"{_MAKE_ONE}"
            )
        return bytes(blob)

    def _refuse_replacing(self) -> None:
        if not os.environ.get(self.variable, "").strip():
            return
        try:
            existing = self.load()
        except (MasterKeyError, AuthenticationError):  # not a ciphertext this key decrypts
            return
        with existing:
            fingerprint = existing.fingerprint
        raise KeyExistsError(
            f"environment variable {self.variable} already holds a master key ({fingerprint}) "
            f"that {self.kms_settings.key_alias} decrypts: pass --force to make a new one "
            f"(refused while the key store holds keys that only the old key decrypts)"
        )
