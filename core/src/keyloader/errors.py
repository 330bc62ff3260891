"""The typed error tree.

Every error keyloader raises on purpose is a :class:`KeyloaderError`. Messages
name the variable, option, path or provider involved and say what to do; they
never contain key material. Plugins wrap SDK errors with ``raise ... from exc``.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "ConfigError",
    "DecryptionError",
    "DuplicateKeyStoreError",
    "DuplicateProviderError",
    "EnterpriseFeatureError",
    "InsecurePermissionsError",
    "IntegrityError",
    "InvalidMasterKeyError",
    "KeyExistsError",
    "KeyFormatError",
    "RingFormatError",
    "KeyNotFoundError",
    "KeyStoreError",
    "KeyStoreNotFoundError",
    "KeyloaderDeprecationWarning",
    "KeyloaderError",
    "MasterKeyError",
    "MasterKeyNotFoundError",
    "NotRegisteredError",
    "PluginLoadError",
    "ProviderNotFoundError",
    "ProviderNotImplementedError",
    "ProviderUnavailableError",
]


class KeyloaderError(Exception):
    """Root of every error keyloader raises on purpose."""


class KeyloaderDeprecationWarning(DeprecationWarning):
    """A public name or behaviour that a later release removes (docs/upgrading.md: one minor
    release of these warnings before the removal). Run your tests with it as an error:
    ``keyloader.testing.deprecations_as_errors()``, or
    ``-W error::keyloader.errors.KeyloaderDeprecationWarning``."""


class ConfigError(KeyloaderError, ValueError):
    """A setting, option, key id or client id is missing, unknown or malformed."""


class PluginLoadError(KeyloaderError):
    """A plugin could not be loaded, and what was asked for may live in it."""


class NotRegisteredError(KeyloaderError, LookupError):
    """No master-key provider or key store is registered under that name."""


class ProviderNotFoundError(NotRegisteredError):
    """No master-key provider is registered under that name (or alias)."""


class KeyStoreNotFoundError(NotRegisteredError):
    """No key store is registered under that name."""


class DuplicateProviderError(KeyloaderError):
    """Two non-placeholder providers claim the same name."""


class DuplicateKeyStoreError(KeyloaderError):
    """Two key stores claim the same name."""


class EnterpriseFeatureError(KeyloaderError):
    """An Enterprise Edition provider was selected without the enterprise flag."""


class ProviderNotImplementedError(KeyloaderError):
    """The enterprise flag is on but only the open-source placeholder is installed."""


class ProviderUnavailableError(KeyloaderError):
    """The master-key source cannot be reached: network, timeout, sealed."""


class AuthenticationError(KeyloaderError):
    """The master-key source refused the credentials or denies the path."""


class MasterKeyError(KeyloaderError):
    """The master key cannot be loaded or is not acceptable."""


class MasterKeyNotFoundError(MasterKeyError):
    """The master key is not where the provider looked: unset, empty or absent."""


class InvalidMasterKeyError(MasterKeyError):
    """The master key was found but is malformed: bad base64, too short, bad v2 pair."""


class KeyNotFoundError(KeyloaderError, LookupError):
    """No intermediate key (or history entry) with that id or index."""


class KeyExistsError(KeyloaderError):
    """The key already exists; rotate it instead, or pass force."""


class IntegrityError(KeyloaderError):
    """A blob failed authentication: wrong master key, tampered or moved file."""


class KeyFormatError(IntegrityError):
    """A key container is malformed: Themis tag, length, checksum, scalar or curve point."""


class RingFormatError(IntegrityError):
    """An Acra keystore v2 key ring (or bundle) is malformed, or its signature or a key in
    it does not verify; the message names the ring, never its bytes."""


class DecryptionError(IntegrityError):
    """A value (AcraStruct, AcraBlock, searchable value) is malformed, truncated, or does
    not decrypt with any key of the key id it was given; the message names the key id,
    never the data."""


class KeyStoreError(KeyloaderError):
    """The key store failed: I/O error, lock timeout, unsupported layout."""


class InsecurePermissionsError(KeyStoreError):
    """A key file or directory is readable or writable by group or others."""
