"""Acra's v1 bundles as import entries: names and history split, every entry checked.

:func:`acra_payload` turns the entries of an ``acra-keys export`` bundle
(:mod:`keyloader.acra_bundle`) into what :func:`keyloader.bundle.import_keys` imports from
keyloader's own bundles: one payload in secret pages and a :class:`BundleEntry` per key.
"""

from __future__ import annotations

from pathlib import Path

from .acra_bundle import AcraEntry
from .bundle_format import BundleEntry
from .errors import IntegrityError
from .keyids import classify
from .secret import SecretBytes
from .stores.timestamps import parse_history_timestamp

__all__ = ["acra_payload"]

_HISTORY = ".old/"


def acra_payload(entries: list[AcraEntry], source: Path) -> tuple[SecretBytes, list[BundleEntry]]:
    """One payload holding every entry's content, and the entries pointing into it; the
    entries' own buffers are wiped. :class:`IntegrityError` (nothing imported) for a name
    that is not an Acra keystore v1 key, a bad history timestamp, a key given twice, or a
    key of zero bytes (what Acra 0.96 writes for keys exported by id)."""
    try:
        placed: list[BundleEntry] = []
        seen: set[tuple[str, str | None]] = set()
        start = 0
        for entry in entries:
            name, timestamp = _split(entry.name, source)
            kind = classify(name)
            if kind.key_id is None:
                raise _malformed(source, f"{entry.name[:80]!r} is not an Acra keystore v1 key")
            if (name, timestamp) in seen:
                raise _malformed(source, f"{entry.name[:80]!r} appears twice")
            seen.add((name, timestamp))
            content = entry.content.buffer
            if not kind.public and (not content or not any(content)):
                raise _malformed(
                    source,
                    f"{entry.name} holds no key ({len(content)} zero bytes: Acra 0.96 zeroes "
                    "keys it exports by id; export them with `acra-keys export --all "
                    "--private_keys`)",
                )
            placed.append(BundleEntry(name, timestamp, kind.public, start, start + len(content)))
            start += len(content)
        payload = SecretBytes.zeroed(start)
        for entry, target in zip(entries, placed, strict=True):
            payload.buffer[target.start : target.end] = entry.content.buffer
        return payload, placed
    finally:
        for entry in entries:
            entry.content.wipe()


def _split(name: str, source: Path) -> tuple[str, str | None]:
    """``client1_storage.old/<ts>`` -> (``client1_storage``, ``<ts>``)."""
    if _HISTORY not in name:
        return name, None
    base, timestamp = name.split(_HISTORY, 1)
    try:
        parse_history_timestamp(timestamp)
    except ValueError:
        raise _malformed(source, f"{name[:80]!r} has a bad history timestamp") from None
    return base, timestamp


def _malformed(source: Path, why: str) -> IntegrityError:
    return IntegrityError(f"Acra bundle {source}: {why}; nothing was imported")
