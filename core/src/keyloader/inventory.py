"""What a key store holds, listed and verified: ``KeyInfo`` rows and ``VerifyResult``s.

The engine's read-only views over a store (``KeyManager.list`` and
``KeyManager.verify`` call these). Listing needs no master key unless
``check`` asks whether each blob decrypts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .errors import IntegrityError, KeyFormatError, KeyNotFoundError, KeyStoreError
from .keyids import KeyId, classify
from .keypairs import public_history_match
from .secret import SecretBytes
from .stores.base import KeyStore, StoredBlob
from .stores.timestamps import parse_history_timestamp
from .themis import keys as themis_keys

if TYPE_CHECKING:
    from .keystore import KeyManager

__all__ = [
    "UNKNOWN_FILE",
    "KeyInfo",
    "KeyState",
    "VerifyResult",
    "history_time",
    "list_keys",
    "location_of",
    "verify_keys",
]

UNKNOWN_FILE = "unknown file: not an Acra keystore v1 key name (left untouched)"
KeyState = Literal["current", "rotated", "public", "unknown"]


@dataclass(frozen=True)
class KeyInfo:
    """One row of a listing: a stored blob and what it is (never its content)."""

    key_id: str | None
    purpose: str
    client_id: str | None
    index: int | None
    state: KeyState
    created: float | None
    path: str
    decrypts: bool | None = None


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of decrypting one blob (``error`` names the failure, never data).

    ``ok`` is True when the blob decrypts, False when it does not, and None for
    an unknown file, which is reported but is not a key.
    """

    key_id: str | None
    index: int | None
    path: str
    ok: bool | None
    error: str | None = None
    error_type: str | None = None


def list_keys(manager: KeyManager, *, rotated: bool = False, check: bool = False) -> list[KeyInfo]:
    """Every stored blob with what it is; ``check`` also tries to decrypt each one."""
    infos: list[KeyInfo] = []
    for blob in manager.store.list():
        what = classify(blob.name)
        kid = what.key_id
        key_id = str(kid) if kid is not None else None
        purpose = kid.kind.value if kid is not None else "unknown"
        client = kid.client_id if kid is not None else None
        if kid is None:
            entries: list[tuple[int | None, KeyState, str | None]] = [(None, "unknown", None)]
        elif what.public:
            entries = [(None, "public", None)] if blob.current else []
            if rotated:  # the public halves of rotated keypairs, numbered like the private ones
                entries += [(i, "public", ts) for i, ts in enumerate(blob.history, start=2)]
        else:
            entries = [(1, "current", None)] if blob.current else []
            if rotated:
                entries += [(i, "rotated", ts) for i, ts in enumerate(blob.history, start=2)]
        for index, state, ts in entries:
            decrypts = None
            if check and kid is not None and state in ("current", "rotated"):
                decrypts = _decrypts(manager, kid, blob.name, ts)
            infos.append(
                KeyInfo(
                    key_id=key_id,
                    purpose=purpose,
                    client_id=client,
                    index=index,
                    state=state,
                    created=blob.created if ts is None else history_time(ts),
                    path=location_of(manager.store, blob.name, ts),
                    decrypts=decrypts,
                )
            )
    return infos


def _decrypts(manager: KeyManager, kid: KeyId, name: str, timestamp: str | None) -> bool:
    try:  # a stored value the store cannot even decode (Redis: not base64) is no key either
        blob = (
            manager.store.get(name)
            if timestamp is None
            else manager.store.get_history(name, timestamp)
        )
        manager.unseal(blob, kid.context, name).wipe()
    except (IntegrityError, KeyStoreError):
        return False
    return True


def verify_keys(
    manager: KeyManager, progress: Callable[[int, int], None] | None = None
) -> list[VerifyResult]:
    """Decrypt every key, current and history; one result per blob.

    Each key checked is reported to audit observers as ``key_verified``
    (``ok`` its result, ``error_type`` why it failed). Unknown files (not
    Acra keystore v1 key names) are reported with ``ok=None``: they are not
    keys, so they are neither verified nor failures.
    ``progress(done, total)`` is called after each key.
    """
    results: list[VerifyResult] = []
    work: list[tuple[KeyId, str, int, str | None]] = []
    listing = manager.store.list()
    by_name = {blob.name: blob for blob in listing}
    for blob in listing:
        what = classify(blob.name)
        kid = what.key_id
        if kid is None:
            where = location_of(manager.store, blob.name, None)
            results.append(VerifyResult(None, None, where, None, UNKNOWN_FILE, "unknown"))
        elif not what.public:
            if blob.current:
                work.append((kid, blob.name, 1, None))
            work += [(kid, blob.name, i, ts) for i, ts in enumerate(blob.history, start=2)]
    for done, (kid, name, index, ts) in enumerate(work, start=1):
        where = location_of(manager.store, name, ts)
        try:
            data = manager.store.get(name) if ts is None else manager.store.get_history(name, ts)
            with manager.unseal(data, kid.context, where) as plain:
                if kid.public_name is not None:
                    _check_pair(manager.store, by_name, kid, plain, ts, where)
        except (IntegrityError, KeyNotFoundError, KeyStoreError) as exc:
            results.append(
                VerifyResult(str(kid), index, where, False, str(exc), type(exc).__name__)
            )
            manager.audit("key_verified", kid, index, error=exc)
        else:
            results.append(VerifyResult(str(kid), index, where, True))
            manager.audit("key_verified", kid, index)
        if progress is not None:
            progress(done, len(work))
    results.sort(key=lambda r: r.path)
    return results


def _check_pair(
    store: KeyStore,
    listing: dict[str, StoredBlob],
    kid: KeyId,
    private: SecretBytes,
    timestamp: str | None,
    where: str,
) -> None:
    """``KeyFormatError`` unless the private half (a Themis container) matches its public half."""
    assert kid.public_name is not None
    public = listing.get(kid.public_name)
    if timestamp is None:
        match = None if public is None or not public.current else ""
    else:
        match = public_history_match(listing[kid.store_name], public, timestamp)
    if match is None:
        which = "its public half" if timestamp is None else "the public half of that rotation"
        raise KeyFormatError(f"{where}: {which} ({kid.public_name}) is missing")
    stored = store.get(kid.public_name) if not match else store.get_history(kid.public_name, match)
    if themis_keys.public_of(private, where) != stored:
        raise KeyFormatError(
            f"{where}: the private half does not match its public half "
            f"{location_of(store, kid.public_name, match or None)}"
        )


def location_of(store: KeyStore, name: str, timestamp: str | None) -> str:
    """Where a blob lives, as messages and listings show it: ``<location>/<name>[.old/<ts>]``."""
    path = f"{store.location.rstrip('/')}/{name}"
    return path if timestamp is None else f"{path}.old/{timestamp}"


def history_time(timestamp: str) -> float | None:
    """A history timestamp as seconds since the epoch (None if it does not parse)."""
    try:
        return parse_history_timestamp(timestamp) / 1e9
    except ValueError:
        return None
