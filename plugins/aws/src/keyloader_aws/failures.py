"""What a failed KMS call becomes: one typed keyloader error that says what to do.

Messages name the operation, the key alias, the region and endpoint, and AWS's
error code; never a credential, a ciphertext or a plaintext. The codes are the
KMS API reference's (``Decrypt``, ``Encrypt``, ``ListAliases``, ``CreateKey``,
``CreateAlias``); moto answers ``AccessDeniedException`` where AWS says
``IncorrectKeyException`` and, for some corrupted blobs, where AWS says
``InvalidCiphertextException``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import botocore.exceptions

from keyloader.errors import (
    AuthenticationError,
    ConfigError,
    InvalidMasterKeyError,
    KeyloaderError,
    MasterKeyNotFoundError,
    ProviderUnavailableError,
)

from .sender import SendFailure

if TYPE_CHECKING:
    from .provider import KmsSettings

__all__ = ["Call", "failure", "is_retryable"]

_API_NAMES = {
    "decrypt": "Decrypt",
    "encrypt": "Encrypt",
    "list_aliases": "ListAliases",
    "create_key": "CreateKey",
    "create_alias": "CreateAlias",
}
_RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "KMSInternalException",
        "DependencyTimeoutException",
        "LimitExceededException",
        "RequestLimitExceeded",
        "ServiceUnavailableException",
        "InternalFailure",
    }
)
_CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "InvalidClientTokenId",
        "ExpiredTokenException",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
    }
)
_MESSAGE_LENGTH = 200
_CREDENTIALS_MISSING = (
    botocore.exceptions.NoCredentialsError,
    botocore.exceptions.PartialCredentialsError,
    botocore.exceptions.CredentialRetrievalError,
)


@dataclass(frozen=True)
class Call:
    """One KMS operation, for the words of its error."""

    operation: str
    settings: KmsSettings
    where: str

    @property
    def api(self) -> str:
        return _API_NAMES.get(self.operation, self.operation)

    @property
    def key(self) -> str:
        return f"KMS key {self.settings.key_alias} in {self.where}"


def is_retryable(exc: BaseException) -> bool:
    """A failure that may pass: no connection, throttled, or a KMS server error."""
    if isinstance(exc, SendFailure):
        return exc.retryable
    if isinstance(exc, botocore.exceptions.ClientError):
        code, status = _code(exc), _status(exc)
        return code in _RETRYABLE_CODES or status == 429 or status >= 500
    return isinstance(exc, botocore.exceptions.EndpointConnectionError)


def failure(exc: BaseException, call: Call, *, attempts: int) -> KeyloaderError:
    """The keyloader error for ``exc``, raised by ``call`` after ``attempts`` attempts."""
    settings = call.settings
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    if isinstance(exc, SendFailure):
        if exc.timed_out:
            return ProviderUnavailableError(
                f"AWS KMS in {call.where} did not answer {call.api} within the "
                f"{settings.timeout:g} s deadline{tries} (option 'timeout' of provider 'aws-kms')"
            )
        return ProviderUnavailableError(
            f"cannot reach AWS KMS in {call.where} for {call.api}{tries}: {exc.reason}"
        )
    if isinstance(exc, _CREDENTIALS_MISSING):
        return AuthenticationError(
            "provider 'aws-kms' found no AWS credentials: give option credentials_path (the "
            "JSON file of Acra's --kms_credentials_path), or set up the standard AWS chain "
            "(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an instance role)"
        )
    if isinstance(exc, botocore.exceptions.ClientError):
        return _client_failure(exc, call, tries)
    if isinstance(exc, botocore.exceptions.NoRegionError):
        return ConfigError("provider 'aws-kms' needs a region: set option region (AWS_REGION)")
    return ProviderUnavailableError(
        f"AWS KMS {call.api} in {call.where} failed{tries}: {type(exc).__name__}"
    )


def _client_failure(exc: botocore.exceptions.ClientError, call: Call, tries: str) -> KeyloaderError:
    code = _code(exc)
    said = _message(exc)
    variable = call.settings.encrypted_key_variable
    if code == "NotFoundException":
        return MasterKeyNotFoundError(
            f"{call.key} does not exist ({code}{said}): create it with `keyloader --enterprise "
            f"--provider aws-kms master-key store --generate`, or fix options key_alias and region"
        )
    if code == "DisabledException":
        return ProviderUnavailableError(
            f"{call.key} is disabled ({code}{said}): enable it (`aws kms enable-key`) to use it"
        )
    if code == "KMSInvalidStateException":
        return ProviderUnavailableError(
            f"{call.key} cannot be used in its state ({code}{said}): a key pending deletion "
            f"must be restored (`aws kms cancel-key-deletion`), then enabled"
        )
    if code == "InvalidCiphertextException":
        return InvalidMasterKeyError(
            f"environment variable {variable} is not a ciphertext {call.key} decrypts "
            f"({code}): it is damaged, or was made with an encryption context (Acra uses none)"
        )
    if code == "IncorrectKeyException":
        return InvalidMasterKeyError(
            f"environment variable {variable} was encrypted under another KMS key than "
            f"{call.settings.key_alias} ({code}): fix option key_alias or the ciphertext"
        )
    if code == "AccessDeniedException":
        reading = call.operation == "decrypt"
        other = f", or {variable} was encrypted under another KMS key" if reading else ""
        return AuthenticationError(
            f"AWS KMS denied {call.api} on {call.key} ({code}{said}): the credentials may "
            f"lack kms:{call.api} on it{other}"
        )
    if code in _CREDENTIAL_CODES:
        return AuthenticationError(
            f"AWS KMS in {call.where} refused the credentials for {call.api} ({code}{said}): "
            f"check the access key (credentials_path or the AWS chain) and the region"
        )
    if code == "InvalidKeyUsageException":
        return ConfigError(
            f"{call.key} cannot {call.api} ({code}{said}): use a symmetric ENCRYPT_DECRYPT key"
        )
    status = _status(exc)
    return ProviderUnavailableError(
        f"AWS KMS {call.api} on {call.key} failed{tries} (HTTP {status}, {code or 'no code'}{said})"
    )


def _code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: botocore.exceptions.ClientError) -> int:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return status if isinstance(status, int) else 0


def _message(exc: botocore.exceptions.ClientError) -> str:
    """AWS's own words (names and ARNs, never key material), shortened; '' if none."""
    text = " ".join(str(exc.response.get("Error", {}).get("Message", "")).split())
    if not text:
        return ""
    if len(text) > _MESSAGE_LENGTH:
        text = text[: _MESSAGE_LENGTH - 3] + "..."
    return f": {text}"
