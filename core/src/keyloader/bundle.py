"""Export and import of keys through bundles (the format: :mod:`keyloader.bundle_format`).

Export seals every chosen key (with its history and public part) into a bundle
under a fresh key written to a separate secret file. Import decrypts and
checks the whole bundle first, then writes it all-or-nothing with the store's
``put_many``. Plaintext lives only in one ``bytearray`` (wiped when done);
export fills it in place, import re-seals from views of it.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .acra_bundle import is_acra_v1_bundle, read_acra_v1_bundle, seal_acra_v1
from .bundle_acra import acra_payload
from .bundle_format import (
    BUNDLE_CONTEXT,
    BundleEntry,
    parse_payload,
    read_bundle_file,
    read_secret_file,
    seal_payload,
)
from .errors import (
    ConfigError,
    IntegrityError,
    KeyExistsError,
    KeyNotFoundError,
)
from .inventory import location_of
from .keyids import KeyId, classify, key_id_of
from .keystore import KeyManager
from .masterkey import MasterKey
from .secret import SecretBytes
from .stores.base import BlobWrite, KeyStore, StoredBlob
from .stores.fs_files import TEMP_PREFIX, fsync_dir, unlink_quietly
from .themis import scell

__all__ = ["ExportReport", "ImportReport", "export_keys", "import_keys"]

Progress = Callable[[int, int], None]
"""``progress(done, total)``, called after each key (and, on import, after the write)."""


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote: paths, names and counts, never key material.

    ``key_ids`` are the keys exported (each with its history and public part);
    ``entries`` counts every blob in the bundle, ``history`` the rotated ones
    among them, ``public`` the ``.pub`` files; ``unknown`` lists the files left
    out of an export of all keys because they are not keys.
    """

    output: Path
    secret_output: Path
    store: str
    fingerprint: str
    key_ids: tuple[str, ...]
    entries: int
    history: int
    public: int
    unknown: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImportReport:
    """What an import did, by destination path (never key material).

    - ``imported``: blobs that did not exist and were written.
    - ``replaced``: existing blobs holding another key, overwritten (``force``).
    - ``kept``: existing blobs holding another key, left as they are (no ``force``).
    - ``identical``: existing blobs that already hold the bundle's key (a rerun).
    """

    input: Path
    store: str
    fingerprint: str
    imported: tuple[str, ...]
    replaced: tuple[str, ...]
    kept: tuple[str, ...]
    identical: tuple[str, ...]


# -- export -----------------------------------------------------------------------------------


def export_keys(
    manager: KeyManager,
    key_ids: Iterable[KeyId | str] | None,
    output: str | os.PathLike[str],
    secret_output: str | os.PathLike[str],
    *,
    force: bool = False,
    progress: Progress | None = None,
    acra: bool = False,
) -> ExportReport:
    """Write the keys (``None``: every key) to a bundle and its fresh secret to another file;
    with ``acra``, in Acra's v1 format (what ``acra-keys import`` reads,
    :mod:`keyloader.acra_bundle`) instead of keyloader's.

    Each key comes with its history and, for keypairs, its public part. Both
    files are created with mode 0600 and ``O_EXCL``; an existing file is
    :class:`KeyExistsError` unless ``force``, which replaces it atomically.
    A key that does not decrypt is :class:`IntegrityError` and nothing is written.
    Emits ``keys_exported``.
    """
    bundle_path, secret_path = Path(output), Path(secret_output)
    try:
        report = _export(manager, key_ids, bundle_path, secret_path, force, progress, acra)
    except Exception as exc:
        manager.audit("keys_exported", ok=False, error=exc)
        raise
    manager.audit("keys_exported")
    return report


def _export(
    manager: KeyManager,
    key_ids: Iterable[KeyId | str] | None,
    bundle_path: Path,
    secret_path: Path,
    force: bool,
    progress: Progress | None,
    acra: bool = False,
) -> ExportReport:
    check_outputs(bundle_path, secret_path, force)
    wanted = None if key_ids is None else _unique(key_id_of(k) for k in key_ids)
    store = manager.store
    with store.lock():  # a consistent snapshot: no rotation half-way through
        names, unknown = _selected(store, store.list(), wanted)
        blobs = [
            (name, ts, public, _read(store, name, ts))
            for name, public, stamps in names
            for ts in stamps
        ]
    if not blobs:
        raise KeyNotFoundError(f"no keys to export in {store.location}")
    sealed, bundle_key = _seal(manager, blobs, progress, acra)
    with bundle_key:
        write_outputs(bundle_path, sealed, secret_path, bundle_key.view, force)
    exported = _unique(kid for name, _, _ in names if (kid := classify(name).key_id) is not None)
    return ExportReport(
        output=bundle_path,
        secret_output=secret_path,
        store=store.location,
        fingerprint=manager.fingerprint,
        key_ids=tuple(str(kid) for kid in exported),
        entries=len(blobs),
        history=sum(1 for _, ts, _, _ in blobs if ts is not None),
        public=sum(1 for _, _, public, _ in blobs if public),
        unknown=tuple(unknown),
    )


def _unique(kids: Iterable[KeyId]) -> list[KeyId]:
    return list(dict.fromkeys(kids))


def _selected(
    store: KeyStore, listing: Sequence[StoredBlob], wanted: list[KeyId] | None
) -> tuple[list[tuple[str, bool, list[str | None]]], list[str]]:
    """(name, public, [None for current, timestamps...]) to export, and the unknown files."""
    by_name = {blob.name: blob for blob in listing}
    unknown: list[str] = []
    if wanted is None:
        chosen: list[StoredBlob] = []
        for blob in listing:
            if classify(blob.name).key_id is None:
                unknown.append(location_of(store, blob.name, None))
            else:
                chosen.append(blob)
    else:
        chosen = []
        for kid in wanted:
            private = by_name.get(kid.store_name)
            if private is None:
                raise KeyNotFoundError(
                    f"{kid} does not exist in {store.location}: see `keyloader keys list`"
                )
            chosen.append(private)
            public_blob = by_name.get(kid.public_name) if kid.public_name else None
            if public_blob is not None:
                chosen.append(public_blob)
    names: list[tuple[str, bool, list[str | None]]] = []
    for blob in chosen:
        public = classify(blob.name).public
        stamps: list[str | None] = [None] if blob.current else []
        stamps += list(blob.history)  # a keypair's public history goes with its private one
        if stamps:
            names.append((blob.name, public, stamps))
    return names, unknown


def _read(store: KeyStore, name: str, timestamp: str | None) -> bytes:
    return store.get(name) if timestamp is None else store.get_history(name, timestamp)


def _seal(
    manager: KeyManager,
    blobs: Sequence[tuple[str, str | None, bool, bytes]],
    progress: Progress | None,
    acra: bool = False,
) -> tuple[bytes, SecretBytes]:
    """The bundle of ``blobs``: public files as they are, keys unsealed into the payload
    (keyloader's format, or with ``acra`` Acra's v1 one)."""

    def fill(index: int, target: memoryview) -> None:
        name, ts, public, blob = blobs[index]
        if public:
            target[:] = blob
            return
        kid = classify(name).key_id
        assert kid is not None
        with manager.unseal(blob, kid.context, location_of(manager.store, name, ts)) as plain:
            if len(plain) != len(target):  # pragma: no cover - scell checks msg_len
                raise IntegrityError(f"{name}: unexpected key length")
            target[:] = plain.buffer

    items = [
        (name, ts, public, len(blob) if public else max(len(blob) - scell.HEADER_SIZE, 0))
        for name, ts, public, blob in blobs
    ]
    if acra:  # Acra names a history entry by its path: <name>.old/<timestamp>
        named = [(name if ts is None else f"{name}.old/{ts}", size) for name, ts, _, size in items]
        return seal_acra_v1(named, fill)
    return seal_payload(items, fill, progress)


def check_outputs(bundle: Path, secret: Path, force: bool) -> None:
    if os.path.abspath(bundle) == os.path.abspath(secret):
        raise ConfigError(
            f"the bundle and its secret must go to two different files, not both to {bundle}"
        )
    for path in (bundle, secret):
        if not force and os.path.lexists(path):
            raise KeyExistsError(_exists_message(path))
        if not path.parent.is_dir():
            raise ConfigError(
                f"cannot write {path}: directory {path.parent} does not exist; create it first"
            )


def _exists_message(path: Path) -> str:
    return f"file {path} already exists: choose another path, or force (--force) to replace it"


def write_outputs(bundle: Path, sealed: bytes, secret: Path, key: memoryview, force: bool) -> None:
    """Write both files 0600: ``O_EXCL``, or (``force``) temp file + atomic replace."""
    _write_private(bundle, sealed, force)
    try:
        _write_private(secret, key, force)
    except BaseException:
        if not force:
            unlink_quietly(bundle)
        raise


def _write_private(path: Path, data: bytes | memoryview, force: bool) -> None:
    target = path.parent / f"{TEMP_PREFIX}{secrets.token_hex(8)}" if force else path
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(target, flags, 0o600)
    except FileExistsError:
        raise KeyExistsError(_exists_message(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror or exc}") from None
    try:
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if force:
            os.replace(target, path)
        fsync_dir(path.parent)
    except OSError as exc:
        unlink_quietly(target)
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        unlink_quietly(target)
        raise


# -- import -----------------------------------------------------------------------------------


def import_keys(
    manager: KeyManager,
    input: str | os.PathLike[str],  # the CLI's --input
    secret: str | os.PathLike[str],
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Import a bundle into ``manager``'s store, re-sealed under its master key.

    Everything is decrypted and validated first: a wrong secret or a modified
    bundle is :class:`IntegrityError` and nothing is written. Existing keys are
    kept unless ``force`` (keys already holding the bundle's value count as
    ``identical``). The writes go through ``KeyStore.put_many`` under the lock:
    all or nothing on the filesystem store, where an interrupted import is
    finished by the next writer. Emits ``keys_imported``.
    """
    bundle_path, secret_path = Path(input), Path(secret)
    try:
        report = _import(manager, bundle_path, secret_path, force, progress)
    except Exception as exc:
        manager.audit("keys_imported", ok=False, error=exc)
        raise
    manager.audit("keys_imported")
    return report


def _import(
    manager: KeyManager,
    bundle_path: Path,
    secret_path: Path,
    force: bool,
    progress: Progress | None,
) -> ImportReport:
    key = read_secret_file(secret_path)
    with key:
        sealed = read_bundle_file(bundle_path)
        try:
            payload = scell.decrypt(key.buffer, sealed, BUNDLE_CONTEXT)
            acra = False
        except IntegrityError:
            if not is_acra_v1_bundle(sealed, key):
                raise IntegrityError(
                    f"cannot open bundle {bundle_path} with secret {secret_path}: wrong secret "
                    "file, or the bundle was modified or truncated; nothing was imported"
                ) from None
            payload, acra_entries = acra_payload(
                read_acra_v1_bundle(sealed, key, bundle_path), bundle_path
            )
            acra = True
    with payload, memoryview(payload.buffer) as view:
        entries = acra_entries if acra else parse_payload(view, bundle_path)
        master = manager.master_key
        store = manager.store
        outcomes: dict[str, list[str]] = {state: [] for state in _OUTCOMES}
        with store.lock():
            listing = {blob.name: blob for blob in store.list()}
            writes: list[BlobWrite] = []
            total = len(entries) + 1  # each key, then the write of them all
            for done, entry in enumerate(entries, start=1):
                with view[entry.start : entry.end] as data:
                    outcome, write = _planned(manager, master, listing, entry, data, force)
                outcomes[outcome].append(location_of(store, entry.name, entry.timestamp))
                if write is not None:
                    writes.append(write)
                if progress is not None:
                    progress(done, total)
            try:  # even with nothing to write: it clears what a crashed import left
                store.put_many(writes)
            finally:
                for write in writes:
                    manager.forget(write.name)
            if progress is not None:
                progress(total, total)
    return ImportReport(
        input=bundle_path,
        store=store.location,
        fingerprint=master.fingerprint,
        imported=tuple(outcomes["imported"]),
        replaced=tuple(outcomes["replaced"]),
        kept=tuple(outcomes["kept"]),
        identical=tuple(outcomes["identical"]),
    )


_OUTCOMES = ("imported", "replaced", "kept", "identical")


def _planned(
    manager: KeyManager,
    master: MasterKey,
    listing: dict[str, StoredBlob],
    entry: BundleEntry,
    data: memoryview,
    force: bool,
) -> tuple[str, BlobWrite | None]:
    """What to do with one entry: its outcome, and the write (sealed for this store) if any."""
    where = location_of(manager.store, entry.name, entry.timestamp)
    state = _existing_state(manager, listing.get(entry.name), entry, data, where)
    if state == "identical":
        return "identical", None
    if state == "different" and not force:
        return "kept", None
    blob = (
        bytes(data)
        if entry.public
        else scell.encrypt(master.encryption.buffer, data, entry.context)
    )
    outcome = "replaced" if state == "different" else "imported"
    return outcome, BlobWrite(entry.name, blob, entry.timestamp, entry.public)


def _existing_state(
    manager: KeyManager, blob: StoredBlob | None, entry: BundleEntry, data: memoryview, where: str
) -> str:
    """``absent``, ``identical`` (holds this key already) or ``different``."""
    if blob is None:
        return "absent"
    if entry.timestamp is None:
        if not blob.current:
            return "absent"
    elif entry.timestamp not in blob.history:
        return "absent"
    existing = _read(manager.store, entry.name, entry.timestamp)
    if entry.public:
        return "identical" if hmac.compare_digest(existing, data) else "different"
    try:
        plain = manager.unseal(existing, entry.context, where)
    except IntegrityError:
        return "different"
    with plain:
        return "identical" if hmac.compare_digest(plain.buffer, data) else "different"
