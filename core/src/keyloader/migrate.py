"""``keys migrate``: an Acra keystore v1 directory as a v2 one, and back.

Acra has ``acra-keys migrate --src_keystore=v1 --dst_keystore=v2``; keyloader does both
directions, carries history (v1's ``<name>.old/<ts>`` entries become the older seqnums of
a ring, oldest first, and a ring's rotated keys become history entries, timestamped by
their ``validSince``), and never modifies the source. The destination is built in a
directory of its own beside it and renamed into place at the end, so an interrupted
migration leaves it absent (and the leftover is cleared by the next run); an existing
destination is refused unless it already holds exactly the source's keys (a rerun:
nothing to do) or ``force`` (each key written into it). ``dry_run`` reads every key of
the source and checks the destination's master key, writing nothing.

A destination may also be any key store (Redis: a key prefix). There is no directory to
rename into place; each key is written in one atomic step instead (a ring, or one
``put_many`` of a key's files), and a rerun skips every key the destination already holds
exactly, so an interrupted migration is finished by running it again.
"""

from __future__ import annotations

import datetime
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .engine import EngineBase
from .errors import ConfigError, KeyloaderError
from .inventory import KeyInfo
from .keyids import KeyId
from .keyrings import edit
from .keyrings import format as rings
from .keyrings.backend import RingBackend
from .keyrings.directory import RingDirectory, is_v2, sync
from .keyrings.engine import RingKeyManager
from .keystore import KeyManager
from .masterkey import MasterKey
from .secret import SecretBytes
from .stores.base import BlobWrite, KeyStore
from .stores.filesystem import FilesystemKeyStore
from .stores.timestamps import history_timestamp
from .themis import keys as themis_keys
from .themis import scell

__all__ = ["MigrateReport", "migrate_keys"]

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class MigrateReport:
    """What a migration did (with ``dry_run``: would do): counts, never key material."""

    source: str
    destination: str
    source_version: str
    destination_version: str
    dry_run: bool
    keys: int
    """Key ids migrated."""
    versions: int
    """Key versions migrated (current and rotated)."""
    up_to_date: bool = False
    """The destination held exactly the source's keys already: nothing was written."""


@dataclass
class _Version:
    secret: SecretBytes
    public: bytes | None
    moment: datetime.datetime


def migrate_keys(
    source: EngineBase,
    destination: Path | KeyStore,
    version: str,
    new_key: MasterKey,
    *,
    dry_run: bool = False,
    force: bool = False,
    progress: Progress | None = None,
) -> MigrateReport:
    """Copy every key of ``source`` (current and rotated) into a keystore ``version``
    (``v1`` or ``v2``) directory at ``destination`` (or into the key store
    ``destination``), sealed under ``new_key``."""
    if version not in ("v1", "v2"):
        raise ConfigError(f"the destination keystore version must be v1 or v2, not {version!r}")
    if new_key.version != version:
        raise ConfigError(
            f"a keystore {version} destination needs a {version} master key, not {new_key.version}"
        )
    with source.snapshot():
        if isinstance(destination, KeyStore):
            return _migrate_into_store(
                source, destination, version, new_key, dry_run, force, progress
            )
        destination = Path(os.path.abspath(destination))
        return _migrate(source, destination, version, new_key, dry_run, force, progress)


def _migrate(
    source: EngineBase,
    destination: Path,
    version: str,
    new_key: MasterKey,
    dry_run: bool,
    force: bool,
    progress: Progress | None,
) -> MigrateReport:
    inventory, versions = _read_all(source)

    def report(*, up_to_date: bool = False) -> MigrateReport:
        return MigrateReport(
            source=source.location,
            destination=str(destination),
            source_version=source.keystore_version,
            destination_version=version,
            dry_run=dry_run,
            keys=len(inventory),
            versions=versions,
            up_to_date=up_to_date,
        )

    if dry_run:
        return report()
    exists = destination.exists() and any(destination.iterdir())
    if exists and not force:
        if _holds_the_same(source, inventory, destination, version, new_key):
            return report(up_to_date=True)
        raise ConfigError(
            f"destination {destination} exists and does not hold exactly the source's keys: "
            "give another directory, or --force to write the keys into it"
        )
    staging = destination if exists else destination.with_name(f".{destination.name}.migrating")
    if not exists:
        shutil.rmtree(staging, ignore_errors=True)  # what an interrupted run left
    _write_all(source, inventory, staging, version, new_key, progress, staged=not exists)
    if not exists:
        for directory, _, _ in os.walk(staging):  # every file was fsynced; now every entry
            sync(Path(directory))
        destination.parent.mkdir(parents=True, exist_ok=True)
        if destination.exists():
            destination.rmdir()  # an empty directory, given as the destination
        os.rename(staging, destination)
        sync(destination.parent)
    return report()


def _migrate_into_store(
    source: EngineBase,
    store: KeyStore,
    version: str,
    new_key: MasterKey,
    dry_run: bool,
    force: bool,
    progress: Progress | None,
) -> MigrateReport:
    location = store.location
    rings = store.key_rings()  # the store was made with keystore_version = version
    if (rings is not None) != (version == "v2"):
        (rings or store).close()
        found = "v2" if rings is not None else "v1"
        raise ConfigError(
            f"destination {location} holds an Acra keystore {found} already, not {version}: "
            "give another keys_dir"
        )
    inventory, versions = _read_all(source)
    target = _engine(rings or store, _copy(new_key))
    with target:
        todo = list(inventory.items())
        try:
            theirs = _inventory(target)
            clashes = [
                kid
                for kid, _ in todo
                if kid in theirs and not _same(source, target, kid, inventory[kid], theirs[kid])
            ]
        except KeyloaderError as exc:
            raise ConfigError(
                f"destination {location} holds keys the new master key does not open ({exc}): "
                "give another keys_dir"
            ) from None
        if clashes and not force:
            raise ConfigError(
                f"destination {location} holds other versions of {clashes[0]}"
                f"{f' (and {len(clashes) - 1} more keys)' if len(clashes) > 1 else ''}: "
                "give another keys_dir, or --force to write the keys into it"
            )
        todo = [(kid, infos) for kid, infos in todo if kid not in theirs or kid in clashes]
        if not dry_run:
            lock = rings.locked(exclusive=True) if rings is not None else store.lock()
            with lock:
                for done, (kid, infos) in enumerate(todo, start=1):
                    held = list(_versions(source, kid, infos))
                    if rings is not None:
                        _write_ring(rings, new_key, kid, held, sync_directory=True)
                    else:
                        _write_files(store, new_key, kid, held)
                    if progress is not None:
                        progress(done, len(todo))
    return MigrateReport(
        source=source.location,
        destination=location,
        source_version=source.keystore_version,
        destination_version=version,
        dry_run=dry_run,
        keys=len(inventory),
        versions=versions,
        up_to_date=not todo,
    )


def _read_all(source: EngineBase) -> tuple[dict[KeyId, list[KeyInfo]], int]:
    """The source's inventory, and how many versions it holds: every key is read (and
    wiped) first, so a key that does not decrypt stops the migration before any write."""
    inventory = _inventory(source)
    versions = 0
    for kid, infos in inventory.items():
        for held in _versions(source, kid, infos):
            held.secret.wipe()
            versions += 1
    return inventory, versions


def _copy(key: MasterKey) -> MasterKey:
    return MasterKey(
        SecretBytes(key.encryption.buffer),
        SecretBytes(key.signature.buffer) if key.signature is not None else None,
    )


def _engine(where: RingBackend | KeyStore, key: MasterKey) -> EngineBase:
    """An engine on a destination, uncached, under its own copy of the new key."""
    if isinstance(where, KeyStore):
        return KeyManager(where, key, cache_size=0)
    return RingKeyManager(where, key, cache_size=0)


def _inventory(source: EngineBase) -> dict[KeyId, list[KeyInfo]]:
    """Every key id of ``source`` with its listed versions (one listing for all)."""
    found: dict[KeyId, list[KeyInfo]] = {}
    for info in source.list(rotated=True):
        if info.key_id is not None and info.state in ("current", "rotated"):
            found.setdefault(KeyId.parse(info.key_id), []).append(info)
    return found


def _versions(source: EngineBase, kid: KeyId, infos: list[KeyInfo]) -> Iterator[_Version]:
    """``kid``'s versions, oldest first, the current one (if any) last; each secret is the
    caller's to wipe."""
    ordered = sorted((i for i in infos if i.index != 1), key=lambda i: i.index or 0)
    ordered += [i for i in infos if i.index == 1]
    try:
        for info in ordered:
            secret = source.read(kid, info.index or 1)
            public = themis_keys.public_of(secret) if kid.kind.keypair else None
            created = info.created if info.created is not None else 0.0
            moment = datetime.datetime.fromtimestamp(int(created), datetime.UTC)
            yield _Version(secret, public, moment)
    finally:
        scell.scrub()


def _write_all(
    source: EngineBase,
    inventory: dict[KeyId, list[KeyInfo]],
    root: Path,
    version: str,
    key: MasterKey,
    progress: Progress | None,
    *,
    staged: bool,
) -> None:
    """Every key of ``inventory`` into the ``version`` directory ``root``, under one lock;
    ``staged``: ``root`` is renamed into place afterwards (its directories synced then)."""
    items = list(inventory.items())
    if version == "v2":
        rings_dir = RingDirectory.create(root) if not is_v2(root) else RingDirectory(root)
        with rings_dir.locked(exclusive=True):
            for done, (kid, infos) in enumerate(items, start=1):
                versions = list(_versions(source, kid, infos))
                _write_ring(rings_dir, key, kid, versions, sync_directory=not staged)
                if progress is not None:
                    progress(done, len(items))
        return
    files = FilesystemKeyStore({"keys_dir": root})
    try:
        with files.lock():
            for done, (kid, infos) in enumerate(items, start=1):
                _write_files(files, key, kid, list(_versions(source, kid, infos)))
                if progress is not None:
                    progress(done, len(items))
    finally:
        files.close()


def _write_ring(
    store: RingBackend,
    key: MasterKey,
    kid: KeyId,
    versions: list[_Version],
    *,
    sync_directory: bool,
) -> None:
    """``kid``'s versions as the keys of its ring (after what the ring holds already)."""
    assert key.signature is not None
    path = kid.ring_path
    existing = store.read(path)
    ring = rings.open_ring(existing, path, key.signature) if existing else edit.empty_ring(path)
    try:
        for held in versions:
            ring = edit.add_key(
                ring, path, key.encryption, held.secret, held.public, now=held.moment
            )
    finally:
        for held in versions:
            held.secret.wipe()
        scell.scrub()
    store.write(
        path,
        sync_directory=sync_directory,
        data=rings.signed_ring(ring, path, key.signature),
    )


def _write_files(store: KeyStore, key: MasterKey, kid: KeyId, versions: list[_Version]) -> None:
    """``kid``'s versions as v1 files: the newest current, the others history entries
    timestamped by when they were made (keypairs: both halves)."""
    writes: list[BlobWrite] = []
    try:
        for position, held in enumerate(versions, start=1):
            nanoseconds = int(held.moment.timestamp()) * 1_000_000_000 + position
            stamp = None if position == len(versions) else history_timestamp(nanoseconds)
            sealed = scell.encrypt(key.encryption.buffer, held.secret.buffer, kid.context)
            writes.append(BlobWrite(kid.store_name, sealed, stamp, False))
            if held.public is not None and kid.public_name is not None:
                writes.append(BlobWrite(kid.public_name, held.public, stamp, True))
    finally:
        for held in versions:
            held.secret.wipe()
        scell.scrub()
    store.put_many(writes)


def _holds_the_same(
    source: EngineBase,
    inventory: dict[KeyId, list[KeyInfo]],
    destination: Path,
    version: str,
    key: MasterKey,
) -> bool:
    """Whether ``destination`` holds exactly the source's key versions (a rerun)."""
    copy = _copy(key)
    try:
        where: RingBackend | KeyStore
        if version == "v2":
            where = RingDirectory(destination)
        else:
            where = FilesystemKeyStore({"keys_dir": destination})
        with _engine(where, copy) as target:
            theirs = _inventory(target)
            if set(theirs) != set(inventory):
                return False
            return all(
                _same(source, target, kid, infos, theirs[kid]) for kid, infos in inventory.items()
            )
    except KeyloaderError:
        return False


def _same(
    source: EngineBase,
    target: EngineBase,
    kid: KeyId,
    mine: list[KeyInfo],
    theirs: list[KeyInfo],
) -> bool:
    left, right = list(_versions(source, kid, mine)), list(_versions(target, kid, theirs))
    try:
        return len(left) == len(right) and all(
            a.secret == b.secret for a, b in zip(left, right, strict=True)
        )
    finally:
        for held in (*left, *right):
            held.secret.wipe()
