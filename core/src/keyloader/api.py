"""The embedding API: open a key store or load a master key from settings."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .build import (
    REWRAP_ENV_VARIABLE,
    build_key_store,
    build_provider,
    instantiate_provider,
    migration_source,
    migration_target,
)
from .config import Layer, Settings, load_settings
from .errors import ConfigError, KeyExistsError, KeyloaderError, MasterKeyError
from .masterkey import MasterKey
from .plugins import KeyloaderPluginManager, make_plugin_manager
from .providers import MasterKeyProvider

if TYPE_CHECKING:  # the engine (and cryptography) load only when a key store is opened
    from .bundle import ExportReport, ImportReport
    from .engine import EngineBase
    from .keyrings.bundle import RingExportReport, RingImportReport
    from .keystore import KeyManager
    from .migrate import MigrateReport
    from .rewrap import RewrapReport
    from .stores.base import KeyStore

__all__ = [
    "REWRAP_ENV_VARIABLE",
    "StoredMasterKey",
    "create_key_store",
    "create_provider",
    "export_keystore",
    "import_keystore",
    "load_master_key",
    "load_rewrap_target",
    "migrate_keystore",
    "open_keystore",
    "resolve",
    "rewrap_keystore",
    "store_master_key",
]


def resolve(
    *,
    config: str | Path | None = None,
    provider: str | None = None,
    provider_options: Mapping[str, object] | None = None,
    keystore: str | None = None,
    store_options: Mapping[str, object] | None = None,
    keys_dir: str | Path | None = None,
    enterprise: bool | None = None,
    cache_size: int | None = None,
    cache_ttl: float | None = None,
    auto_reload: bool | None = None,
    harden: bool | None = None,
    previous_provider: str | None = None,
    previous_options: Mapping[str, object] | None = None,
    rewrap_to_options: Mapping[str, object] | None = None,
    cli: Layer | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve settings from keyword arguments, CLI flags, environment and config file.

    ``rewrap_to_options`` are the options of a rewrap's target provider
    (:func:`rewrap_keystore`), like the CLI's ``--to-option``.
    """
    api = Layer(
        provider=provider,
        provider_options=dict(provider_options or {}),
        keystore=keystore,
        store_options=dict(store_options or {}),
        keys_dir=keys_dir,
        enterprise=enterprise,
        cache_size=cache_size,
        cache_ttl=cache_ttl,
        auto_reload=auto_reload,
        harden=harden,
        previous_provider=previous_provider,
        previous_options=dict(previous_options or {}),
        rewrap_to_options=dict(rewrap_to_options or {}),
        config_file=config,
    )
    return load_settings(api=api, cli=cli, env=env)


def create_provider(
    pm: KeyloaderPluginManager,
    name: str,
    options: Mapping[str, Any],
    given: set[str],
    *,
    enterprise: bool,
) -> MasterKeyProvider:
    """Instantiate provider ``name`` with resolved ``options`` (``given``: those not defaulted).

    Given options are validated first (in every gate state), then the enterprise
    gate, then required options, then the provider is constructed
    (:func:`keyloader.build.instantiate_provider`).
    """
    return instantiate_provider(pm, pm.find_provider(name), options, given, enterprise)


def create_key_store(pm: KeyloaderPluginManager, settings: Settings) -> KeyStore:
    """The configured key store (:func:`keyloader.build.build_key_store`)."""
    return build_key_store(pm, settings)


def load_master_key(
    settings: Settings | None = None,
    *,
    plugin_manager: KeyloaderPluginManager | None = None,
    **kwargs: Any,
) -> MasterKey:
    """Load the configured master key (``settings`` or the keyword arguments of :func:`resolve`)."""
    settings = settings if settings is not None else resolve(**kwargs)
    _harden_if_asked(settings)
    pm = plugin_manager if plugin_manager is not None else make_plugin_manager()
    provider = build_provider(pm, settings)
    try:
        return provider.load()
    finally:
        provider.close()


def _harden_if_asked(settings: Settings) -> None:
    """``KEYLOADER_HARDEN``: make the process non-dumpable before any key is loaded."""
    if settings.harden:
        from .hardening import harden_process

        harden_process()


def open_keystore(
    settings: Settings | None = None,
    *,
    plugin_manager: KeyloaderPluginManager | None = None,
    **kwargs: Any,
) -> EngineBase:
    """Open the configured key store; the master key is loaded when first needed.

    An Acra keystore v1 store gives a :class:`~keyloader.keystore.KeyManager`; a store
    holding an Acra keystore v2 (:meth:`~keyloader.stores.KeyStore.key_rings`: a directory
    or a Redis prefix whose ``version`` says so, or a new one with ``keystore_version``
    v2) a :class:`~keyloader.keyrings.engine.RingKeyManager`. Both have the same ``read``,
    ``use``, data operations, listing and key writes.

    Takes either resolved ``settings`` or the keyword arguments of :func:`resolve`
    (``provider``, ``provider_options``, ``keystore``, ``store_options``,
    ``keys_dir``, ``enterprise``, ``cache_size``, ``previous_provider``, ...).
    Close the result (or use it as a context manager) to wipe the master key.
    """
    from .keystore import KeyManager

    settings = settings if settings is not None else resolve(**kwargs)
    _harden_if_asked(settings)
    pm = plugin_manager if plugin_manager is not None else make_plugin_manager()
    provider = build_provider(pm, settings)
    store = build_key_store(pm, settings)
    common: dict[str, Any] = {
        "cache_size": settings.cache_size,
        "cache_ttl": settings.cache_ttl,
        "emit": pm.emit if pm.hook.keyloader_audit_event.get_hookimpls() else None,
        "wants": pm.audit_wants,
        "provider_name": provider.name,
        "auto_reload": settings.auto_reload,
    }
    previous = build_provider(pm, settings, "previous") if settings.previous_provider else None
    rings = store.key_rings()
    if rings is not None:  # an Acra keystore v2: its own engine
        from .keyrings.engine import RingKeyManager

        return RingKeyManager(rings, provider, previous=previous, **common)
    return KeyManager(store, provider, previous=previous, **common)


@dataclass(frozen=True)
class StoredMasterKey:
    """What :func:`store_master_key` did: where, which key, and what a service must be given.

    ``environment`` is empty when the provider's backend now holds the key
    (``vault``). A provider that keeps only a wrapping key returns what a
    service needs beside the provider's options (``aws-kms``:
    ``{"ACRA_MASTER_KEY": <base64 KMS ciphertext>}``): never key material, but
    left out of ``repr`` all the same.
    """

    provider: str
    version: str
    fingerprint: str
    environment: Mapping[str, str] = field(default_factory=dict, repr=False)


def store_master_key(
    settings: Settings,
    key: MasterKey,
    *,
    force: bool = False,
    plugin_manager: KeyloaderPluginManager | None = None,
) -> StoredMasterKey:
    """Write ``key`` into the configured provider; say where and what a service needs.

    The provider must be able to store (``can_store``: ``vault``, ``aws-kms``), else
    :class:`ConfigError`. A key already stored there is :class:`KeyExistsError`
    unless ``force``; even with ``force``, replacing it is refused (``KeyExistsError``)
    while the configured key store holds keys that only the stored (old) key
    decrypts: rewrap them to the new key first. ``key`` is not closed.
    """
    pm = plugin_manager if plugin_manager is not None else make_plugin_manager()
    provider = build_provider(pm, settings)
    try:
        if not provider.can_store:
            raise ConfigError(
                f"provider {provider.name!r} cannot store master keys: select one that can "
                f"(e.g. --provider vault)"
            )
        if force:
            _refuse_orphaning(settings, pm, provider, key)
        environment = provider.store(key, force=force)
    finally:
        provider.close()
    return StoredMasterKey(
        provider=provider.name,
        version=key.version,
        fingerprint=key.fingerprint,
        environment=dict(environment or {}),
    )


def _refuse_orphaning(
    settings: Settings, pm: KeyloaderPluginManager, provider: MasterKeyProvider, key: MasterKey
) -> None:
    """Refuse to replace the stored key while keys in the key store decrypt only with it."""
    try:
        old = provider.load()
    except MasterKeyError:  # nothing stored, or nothing valid: no key is sealed with it
        return
    with old:
        if old == key:
            return
        with open_keystore(settings, plugin_manager=pm) as manager:
            orphans = _decrypted_only_by(manager.store, old, key)
            location = manager.store.location
        fingerprint = old.fingerprint
    if orphans:
        count = len(orphans)
        raise KeyExistsError(
            f"refusing to replace master key {fingerprint} in provider {provider.name!r}: "
            f"{count} key{'s' if count != 1 else ''} in key store {settings.keystore!r} at "
            f"{location} decrypt only with it (first: {orphans[0]}); rewrap them to the new "
            f"key first (`keyloader keys rewrap --to-provider ...`), then store it again"
        )


def _decrypted_only_by(store: KeyStore, old: MasterKey, new: MasterKey) -> list[str]:
    """Names of the blobs (current and history) that ``old`` decrypts and ``new`` does not."""
    from .keyids import classify

    found: list[str] = []
    for blob in store.list():
        what = classify(blob.name)
        kid = what.key_id
        if kid is None or what.public:
            continue
        stamps: list[str | None] = [None] if blob.current else []
        stamps += list(blob.history)
        for stamp in stamps:
            data = store.get(blob.name) if stamp is None else store.get_history(blob.name, stamp)
            if _decrypts(old, data, kid.context) and not _decrypts(new, data, kid.context):
                found.append(blob.name if stamp is None else f"{blob.name}.old/{stamp}")
    return found


def _decrypts(key: MasterKey, blob: bytes, context: bytes) -> bool:
    from .errors import IntegrityError
    from .themis import scell

    try:
        scell.decrypt(key.encryption.buffer, blob, context).wipe()
    except IntegrityError:
        return False
    return True


# -- master-key rotation and backup (docs/security.md) ---------------------------------


def load_rewrap_target(
    settings: Settings,
    to_provider: str,
    *,
    plugin_manager: KeyloaderPluginManager | None = None,
) -> MasterKey:
    """Load the new master key of a rewrap from provider ``to_provider``.

    Its options come only from :meth:`Settings.rewrap_target_options` (the api
    and cli layers, then ``[rewrap.to]``); an ``env`` target given neither
    ``variable`` nor ``file`` reads ``DST_ACRA_MASTER_KEY``. The enterprise gate
    applies. Errors keep their type, prefixed with "rewrap target provider".
    """
    pm = plugin_manager if plugin_manager is not None else make_plugin_manager()
    provider = build_provider(pm, settings, "rewrap", to_provider)
    name = provider.name
    try:
        return provider.load()
    except KeyloaderError as exc:
        raise _retold(exc, f"rewrap target provider {name!r}") from None
    finally:
        provider.close()


def _retold(exc: KeyloaderError, subject: str) -> KeyloaderError:
    """The same error type with ``subject`` in front of its message."""
    try:
        return type(exc)(f"{subject}: {exc}")
    except TypeError:  # an error class with another constructor: keep it as it is
        return exc


def rewrap_keystore(
    settings: Settings,
    *,
    to_provider: str,
    plugin_manager: KeyloaderPluginManager | None = None,
    dry_run: bool = False,
    skip_undecryptable: bool = False,
    skip_unknown: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> RewrapReport:
    """Re-seal every key of the configured store under the master key of ``to_provider``.

    The new key is loaded first (:func:`load_rewrap_target`), then the store is
    opened with the current (and previous) master key and
    :func:`keyloader.rewrap.rewrap_keys` runs; both keys are wiped at the end.
    """
    from .rewrap import rewrap_keys

    pm = plugin_manager if plugin_manager is not None else make_plugin_manager()
    settings = migration_source(pm, settings)
    with (
        load_rewrap_target(settings, to_provider, plugin_manager=pm) as new_key,
        open_keystore(settings, plugin_manager=pm) as opened,
    ):
        from .keyrings.engine import RingKeyManager

        if isinstance(opened, RingKeyManager):
            from .keyrings.rewrap import rewrap_rings

            return rewrap_rings(
                opened,
                new_key,
                dry_run=dry_run,
                skip_undecryptable=skip_undecryptable,
                skip_unknown=skip_unknown,
                progress=progress,
            )
        return rewrap_keys(
            _v1_only(opened, "rewrap"),
            new_key,
            dry_run=dry_run,
            skip_undecryptable=skip_undecryptable,
            skip_unknown=skip_unknown,
            progress=progress,
        )


def migrate_keystore(
    settings: Settings,
    *,
    destination: str | Path,
    destination_version: str,
    to_provider: str = "env",
    source_version: str | None = None,
    destination_store: str = "filesystem",
    destination_options: Mapping[str, Any] | None = None,
    plugin_manager: KeyloaderPluginManager | None = None,
    dry_run: bool = False,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> MigrateReport:
    """:func:`keyloader.migrate.migrate_keys` from the configured store into the keys_dir
    ``destination`` of ``destination_store`` (options: ``destination_options``), under the
    key of ``to_provider`` (a rewrap target: ``env`` reads ``DST_ACRA_MASTER_KEY``);
    ``source_version`` must be the source's own (Acra's ``--src_keystore``)."""
    from .migrate import migrate_keys

    pm = plugin_manager if plugin_manager is not None else make_plugin_manager()
    settings = migration_source(pm, settings)
    with (
        load_rewrap_target(settings, to_provider, plugin_manager=pm) as new_key,
        open_keystore(settings, plugin_manager=pm) as source,
    ):
        if source_version is not None and source_version != source.keystore_version:
            raise ConfigError(
                f"{source.location} is an Acra keystore {source.keystore_version} store, not "
                f"{source_version} (--src_keystore)"
            )
        target = migration_target(
            pm, settings, destination_store, destination_options, destination, destination_version
        )
        return migrate_keys(
            source,
            target,
            destination_version,
            new_key,
            dry_run=dry_run,
            force=force,
            progress=progress,
        )


def export_keystore(
    settings: Settings,
    key_ids: Iterable[str] | None,
    output: str | Path,
    secret_output: str | Path,
    *,
    force: bool = False,
    plugin_manager: KeyloaderPluginManager | None = None,
    progress: Callable[[int, int], None] | None = None,
    format: str = "keyloader",
) -> ExportReport | RingExportReport:
    """Export keys (``None``: all) of the configured store: :func:`keyloader.bundle.export_keys`;
    ``format="acra"`` writes the bundle ``acra-keys import`` reads."""
    if format not in ("keyloader", "acra"):
        raise ConfigError(f"unknown bundle format {format!r}: use keyloader or acra")
    from .bundle import export_keys

    acra = format == "acra"
    with open_keystore(settings, plugin_manager=plugin_manager) as opened:
        from .keyrings.engine import RingKeyManager

        if isinstance(opened, RingKeyManager):
            from .keyids import KeyId
            from .keyrings.bundle import export_ring_bundle

            paths = None if key_ids is None else [KeyId.parse(k).ring_path for k in key_ids]
            return export_ring_bundle(
                opened, paths, Path(output), Path(secret_output), force=force, acra=acra
            )
        manager = _v1_only(opened, "keys export")
        return export_keys(
            manager,
            key_ids,
            output,
            secret_output,
            force=force,
            progress=progress,
            acra=acra,
        )


def import_keystore(
    settings: Settings,
    input: str | Path,  # the CLI's --input
    secret: str | Path,
    *,
    force: bool = False,
    plugin_manager: KeyloaderPluginManager | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport | RingImportReport:
    """Import a bundle into the configured store: :func:`keyloader.bundle.import_keys` (a
    keystore v1 store: keyloader's bundles and Acra's v1 ones), or
    :func:`keyloader.keyrings.bundle.import_ring_bundle` (a v2 store: keyloader's bundles of
    v2 stores and Acra's v2 ones)."""
    from .bundle import import_keys
    from .keyrings.engine import RingKeyManager

    with open_keystore(settings, plugin_manager=plugin_manager) as opened:
        if isinstance(opened, RingKeyManager):
            from .keyrings.bundle import import_ring_bundle

            return import_ring_bundle(opened, Path(input), Path(secret), force=force)
        return import_keys(
            _v1_only(opened, "keys import"), input, secret, force=force, progress=progress
        )


def _v1_only(manager: EngineBase, what: str) -> KeyManager:
    """``manager`` if it keeps an Acra keystore v1 store; ``ConfigError`` for v2."""
    from .keystore import KeyManager as V1Manager

    if not isinstance(manager, V1Manager):
        raise ConfigError(
            f"{manager.location} is an Acra keystore v2 directory: {what} works on keystore "
            "v1 stores only in this release"
        )
    return manager
