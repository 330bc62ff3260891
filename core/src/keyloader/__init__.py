"""keyloader: load a master key from a KMS, protect the intermediate keys beneath it.

The embedding API in one place::

    import keyloader

    with keyloader.open_keystore(keys_dir=".acrakeys") as keys:
        keys.generate(["symmetric"], client_id="client1")
        with keys.use("client/client1/symmetric") as key:
            ...  # key is a SecretBytes, wiped when the block ends

Plugin authors need :data:`hookimpl`, :class:`MasterKeyProvider`, :class:`Option`
and :class:`KeyStore`. ``import keyloader`` never imports typer, rich, hvac or
redis; the names below are imported on first access, so the CLI pays only for
what a command uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

from ._version import __version__
from .lazy import lazy_exports

hookimpl = pluggy.HookimplMarker("keyloader")
"""Marker for hook implementations: ``@keyloader.hookimpl``."""

if TYPE_CHECKING:
    from . import aio
    from .api import load_master_key, open_keystore, resolve
    from .audit import AuditEvent
    from .errors import (
        AuthenticationError,
        ConfigError,
        DecryptionError,
        DuplicateKeyStoreError,
        DuplicateProviderError,
        EnterpriseFeatureError,
        InsecurePermissionsError,
        IntegrityError,
        InvalidMasterKeyError,
        KeyExistsError,
        KeyFormatError,
        KeyloaderDeprecationWarning,
        KeyloaderError,
        KeyNotFoundError,
        KeyStoreError,
        KeyStoreNotFoundError,
        MasterKeyError,
        MasterKeyNotFoundError,
        NotRegisteredError,
        PluginLoadError,
        ProviderNotFoundError,
        ProviderNotImplementedError,
        ProviderUnavailableError,
        RingFormatError,
    )
    from .hardening import HardeningReport, harden_process
    from .keyids import KeyId, KeyKind
    from .keystore import KeyInfo, KeyManager, VerifyResult
    from .masterkey import MasterKey, generate_master_key, parse_master_key
    from .plugins import make_plugin_manager
    from .providers import MasterKeyProvider, Option, PlaceholderProvider
    from .secret import SecretBytes
    from .stores.base import KeyStore, StoredBlob

_LAZY: dict[str, str] = {
    "aio": ".aio",
    "load_master_key": ".api",
    "open_keystore": ".api",
    "resolve": ".api",
    "AuditEvent": ".audit",
    "AuthenticationError": ".errors",
    "ConfigError": ".errors",
    "DecryptionError": ".errors",
    "DuplicateKeyStoreError": ".errors",
    "DuplicateProviderError": ".errors",
    "EnterpriseFeatureError": ".errors",
    "InsecurePermissionsError": ".errors",
    "IntegrityError": ".errors",
    "InvalidMasterKeyError": ".errors",
    "KeyExistsError": ".errors",
    "KeyFormatError": ".errors",
    "RingFormatError": ".errors",
    "KeyloaderDeprecationWarning": ".errors",
    "KeyloaderError": ".errors",
    "KeyNotFoundError": ".errors",
    "KeyStoreError": ".errors",
    "KeyStoreNotFoundError": ".errors",
    "MasterKeyError": ".errors",
    "MasterKeyNotFoundError": ".errors",
    "NotRegisteredError": ".errors",
    "PluginLoadError": ".errors",
    "ProviderNotFoundError": ".errors",
    "ProviderNotImplementedError": ".errors",
    "ProviderUnavailableError": ".errors",
    "HardeningReport": ".hardening",
    "harden_process": ".hardening",
    "KeyId": ".keyids",
    "KeyKind": ".keyids",
    "KeyInfo": ".keystore",
    "KeyManager": ".keystore",
    "VerifyResult": ".keystore",
    "MasterKey": ".masterkey",
    "generate_master_key": ".masterkey",
    "parse_master_key": ".masterkey",
    "make_plugin_manager": ".plugins",
    "MasterKeyProvider": ".providers",
    "Option": ".providers",
    "PlaceholderProvider": ".providers",
    "SecretBytes": ".secret",
    "KeyStore": ".stores.base",
    "StoredBlob": ".stores.base",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "__version__",
    "hookimpl",
    # embedding API
    "open_keystore",
    "load_master_key",
    "aio",
    "resolve",
    "KeyManager",
    "KeyInfo",
    "VerifyResult",
    "KeyId",
    "KeyKind",
    "MasterKey",
    "generate_master_key",
    "parse_master_key",
    "SecretBytes",
    "AuditEvent",
    "harden_process",
    "HardeningReport",
    # plugin authors
    "make_plugin_manager",
    "MasterKeyProvider",
    "PlaceholderProvider",
    "Option",
    "KeyStore",
    "StoredBlob",
    # errors
    "KeyloaderDeprecationWarning",
    "KeyloaderError",
    "ConfigError",
    "PluginLoadError",
    "NotRegisteredError",
    "ProviderNotFoundError",
    "KeyStoreNotFoundError",
    "DuplicateProviderError",
    "DuplicateKeyStoreError",
    "EnterpriseFeatureError",
    "ProviderNotImplementedError",
    "ProviderUnavailableError",
    "AuthenticationError",
    "MasterKeyError",
    "MasterKeyNotFoundError",
    "InvalidMasterKeyError",
    "KeyNotFoundError",
    "KeyExistsError",
    "IntegrityError",
    "KeyFormatError",
    "RingFormatError",
    "DecryptionError",
    "KeyStoreError",
    "InsecurePermissionsError",
]
