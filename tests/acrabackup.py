"""Acra's KeyBackuper rules, replayed over a keys directory.

``acra-keys export`` and ``acra-backup`` (cossacklabs/acra at 47f5b02,
``keystore/filesystem/filesystem_backup.go``: ``ReadDir``, ``isPrivate``,
``getContextFromFilename``, ``readFilesAsKeys``) read every file under keys_dir,
recursively, and fail the whole export on the first one that does not work:
a file that is not public must open with Secure Cell under the master key and
the context derived from its name; a public file must be a valid public key.
:func:`acra_export_problems` applies the same rules and returns one line per
file that would fail.

Acra derives some contexts differently from the ones its own keymaker seals
with (``.poison_key/poison_key_sym`` is sealed with context
``.poison_key/poison_key_sym`` but read back with ``.poison_key/poison_key``;
rotated poison keys with the bare file name): those files fail Acra's own
export whoever wrote them. :func:`acra_export_problems` reports them apart, in
``acra_own``, so a test can insist that everything else passes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from keyloader.errors import IntegrityError
from keyloader.keyids import classify
from keyloader.stores.timestamps import parse_history_timestamp
from keyloader.themis import keys as themis_keys
from keyloader.themis import scell

__all__ = ["AcraExport", "acra_context", "acra_export_problems"]

POISON_KEY = ".poison_key/poison_key"


@dataclass
class AcraExport:
    """What Acra's backup would say: files that fail it, split by whose rules they break."""

    problems: list[str] = field(default_factory=list)  # files Acra's own keys never are
    acra_own: list[str] = field(default_factory=list)  # Acra's keymaker writes them this way too

    @property
    def ok(self) -> bool:
        return not self.problems


def _is_historical(name: str) -> bool:
    try:
        parse_history_timestamp(os.path.basename(name))
    except ValueError:
        return False
    return True


def _is_public(name: str) -> bool:
    return name.endswith((".pub", ".pub.old"))


def _is_private(name: str) -> bool:
    if _is_historical(name):
        name = os.path.basename(os.path.dirname(name))
    if name == POISON_KEY:
        return True
    return not _is_public(name)


def acra_context(name: str) -> bytes:
    """The context Acra's backup derives from a file name (``getContextFromFilename``)."""
    if _is_historical(name):
        name = os.path.dirname(name)
    if name == POISON_KEY:
        return name.encode()
    if name == POISON_KEY + "_sym":
        return name[: -len("_sym")].encode()
    base = os.path.basename(name)
    base = base.removesuffix(".old")
    for suffix in ("_hmac", "_server", "_translator", "_storage", "_storage_sym"):
        if base.endswith(suffix):
            return base[: -len(suffix)].encode()
    return base.encode()


def _keymaker_context(name: str) -> bytes | None:
    """The context Acra's keymaker (and keyloader) seals ``name`` with, if it is a known key."""
    if _is_historical(name):
        name = os.path.dirname(name).removesuffix(".old")
    kid = classify(name).key_id
    return kid.context if kid is not None else None


def acra_export_problems(keys_dir: Path, master: bytes) -> AcraExport:
    """Every file under ``keys_dir`` that Acra's KeyBackuper would fail on."""
    result = AcraExport()
    for top, dirs, files in os.walk(keys_dir):
        dirs.sort()
        for file in sorted(files):
            path = Path(top) / file
            name = path.relative_to(keys_dir).as_posix()
            content = path.read_bytes() if path.is_file() else b""
            if _is_private(name):
                context = acra_context(name)
                try:
                    scell.decrypt(master, content, context).wipe()
                except IntegrityError:
                    maker = _keymaker_context(name)
                    if maker is not None and maker != context:
                        try:
                            scell.decrypt(master, content, maker).wipe()
                        except IntegrityError:
                            pass
                        else:
                            result.acra_own.append(name)
                            continue
                    result.problems.append(f"{name}: does not open with context {context!r}")
            elif _is_public(name):
                try:
                    themis_keys.load_public(content, name)
                except IntegrityError as exc:
                    result.problems.append(f"{name}: not a valid public key ({exc})")
    return result
