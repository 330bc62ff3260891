"""The boto3 side of ``aws-kms``: one KMS client with keyloader's credentials, deadline, retries.

Imported only when the provider first talks to KMS: it imports boto3. The calls
are Acra's (cossacklabs/acra ``keystore/kms/aws``): ``Decrypt`` and ``Encrypt``
with the key alias as ``KeyId`` and no encryption context; ``ListAliases``
(every page) to find the alias by name and region; ``CreateKey`` and
``CreateAlias`` to make one.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import boto3
import botocore.config
import botocore.exceptions
import botocore.httpsession
import botocore.session

from keyloader.deadline import Deadline
from keyloader.errors import ConfigError, KeyloaderError

from .failures import Call, failure, is_retryable
from .sender import DeadlineSender, SendFailure

if TYPE_CHECKING:
    from .provider import KmsSettings

__all__ = ["KmsClient"]

BACKOFF_BASE = 0.1
"""Seconds before the first retry (then doubled, with jitter)."""
BACKOFF_CAP = 2.0
ALIAS_CHECKS = 10
"""How often a new alias is looked for before giving up (Acra: 10, 100 ms apart)."""
ALIAS_CHECK_PAUSE = 0.1

_KEY_DESCRIPTION = "Acra master key encryption key (made by keyloader)"

_QUIET: ContextVar[bool] = ContextVar("keyloader_aws_quiet", default=False)


class _NoDebugDuringKms(logging.Filter):
    """Drops botocore's DEBUG records while a keyloader KMS call runs in this context.

    At DEBUG, botocore logs each request's parameters and each answer's body: the
    plaintext of an ``Encrypt`` and of a ``Decrypt``. keyloader's calls must not
    put key material in anyone's logs; the application's own AWS calls keep theirs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.INFO or not _QUIET.get()


_FILTER = _NoDebugDuringKms()
_filtered_count = 0


def _filter_sdk_loggers() -> None:
    """Put the filter on every botocore logger (a filter acts on its own logger only)."""
    global _filtered_count
    loggers = logging.Logger.manager.loggerDict
    if len(loggers) == _filtered_count:
        return
    for name, logger in list(loggers.items()):
        sdk = name.split(".", 1)[0] in ("botocore", "boto3")
        if sdk and isinstance(logger, logging.Logger) and _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    _filtered_count = len(loggers)


class KmsClient:
    """KMS calls for one provider; every public method is one operation under one deadline."""

    def __init__(self, settings: KmsSettings) -> None:
        self.settings = settings
        core = botocore.session.Session()
        if settings.credentials is not None:
            core.set_credentials(
                settings.credentials.access_key_id, settings.credentials.secret_access_key
            )
        region = settings.region or core.get_config_variable("region")
        if not region:
            raise ConfigError(
                "provider 'aws-kms' needs a region: set option region (AWS_REGION), give a "
                "credentials_path file with one, or configure one in the AWS profile"
            )
        self.region = str(region)
        ca_bundle = settings.ca_bundle or core.get_config_variable("ca_bundle")
        if ca_bundle is not None and not _is_file(str(ca_bundle)):
            raise ConfigError(
                f"option 'ca_bundle' of provider 'aws-kms' (AWS_CA_BUNDLE): file {ca_bundle} "
                f"does not exist; give the path of a PEM file"
            )
        self.sender = DeadlineSender(str(ca_bundle or botocore.httpsession.get_cert_path(True)))
        config = botocore.config.Config(
            region_name=self.region,
            retries={"total_max_attempts": 1},  # retried here, under the deadline
            connect_timeout=settings.timeout,
            read_timeout=settings.timeout,
        )
        session = boto3.session.Session(botocore_session=core)
        self.client: Any = session.client("kms", endpoint_url=settings.endpoint, config=config)
        self.client.meta.events.register("before-send.kms", self.sender)
        self.where = f"region {self.region} ({self.client.meta.endpoint_url})"

    # -- operations ------------------------------------------------------------------------

    def decrypt(self, blob: bytes) -> bytearray:
        """The plaintext of ``blob`` in a buffer the caller wipes.

        botocore hands it over as ``bytes`` (and the response's base64 as ``str``),
        which Python cannot wipe: they are dropped as soon as copied.
        """
        with self._operation():
            answer = self._call("decrypt", KeyId=self.settings.key_alias, CiphertextBlob=blob)
            plaintext = bytearray(answer.pop("Plaintext", b""))
            del answer
            return plaintext

    def encrypt(self, plaintext: bytearray) -> bytes:
        """``plaintext`` encrypted under the key alias, creating the key and alias if missing.

        botocore base64-encodes the plaintext into the request body, a ``str``
        Python cannot wipe, dropped once sent.
        """
        with self._operation():
            if not self._alias_exists():
                self._create_key_with_alias()
            answer = self._call("encrypt", KeyId=self.settings.key_alias, Plaintext=plaintext)
            return bytes(answer["CiphertextBlob"])

    def close(self) -> None:
        self.sender.close()
        self.client.close()

    # -- the alias --------------------------------------------------------------------------

    def _alias_exists(self) -> bool:
        """True if the alias is listed in this region (matched by name and ARN region, as Acra)."""
        name = self._alias_name()
        marker: str | None = None
        while True:
            page = self._call("list_aliases", **({"Marker": marker} if marker else {}))
            for entry in page.get("Aliases", []):
                arn = str(entry.get("AliasArn", ""))
                parts = arn.split(":")
                if entry.get("AliasName") == name and len(parts) >= 6 and parts[3] == self.region:
                    return True
            marker = page.get("NextMarker") if page.get("Truncated") else None
            if not marker:
                return False

    def _create_key_with_alias(self) -> None:
        key = self._call("create_key", Description=_KEY_DESCRIPTION)["KeyMetadata"]
        self._call("create_alias", AliasName=self._alias_name(), TargetKeyId=key["Arn"])
        for _ in range(ALIAS_CHECKS):
            if self._alias_exists():
                return
            time.sleep(ALIAS_CHECK_PAUSE)
        raise KeyloaderError(
            f"AWS KMS in {self.where} created key {key['Arn']} but alias "
            f"{self._alias_name()} did not appear; run the command again"
        )

    def _alias_name(self) -> str:
        """``alias/NAME`` of the option (an alias ARN names it after its last ':')."""
        return self.settings.key_alias.rsplit(":", 1)[-1]

    # -- calls ------------------------------------------------------------------------------

    @contextmanager
    def _operation(self) -> Iterator[None]:
        self.sender.deadline = Deadline(self.settings.timeout)
        _filter_sdk_loggers()
        quiet = _QUIET.set(True)
        try:
            yield
        finally:
            _QUIET.reset(quiet)
            self.sender.deadline = Deadline.at(float("inf"))

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        """One KMS call, retried with backoff while retryable and the deadline allows."""
        attempt = 0
        call = Call(operation, self.settings, self.where)
        while True:
            attempt += 1
            try:
                answer: dict[str, Any] = getattr(self.client, operation)(**params)
                return answer
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                problem: BaseException = exc
            except SendFailure as exc:
                problem = exc
            if not is_retryable(problem) or attempt > self.settings.retries:
                raise failure(problem, call, attempts=attempt) from None
            delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))
            delay = delay / 2 + random.uniform(0, delay / 2)  # noqa: S311 - jitter, not crypto
            if delay >= self.sender.deadline.remaining():
                timed_out = SendFailure("the overall deadline passed", retryable=False)
                timed_out.timed_out = True
                raise failure(timed_out, call, attempts=attempt) from None
            time.sleep(delay)


def _is_file(path: str) -> bool:
    import os

    return os.path.isfile(path)
