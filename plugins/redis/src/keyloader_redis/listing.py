"""Listing the ``redis`` store: one ``SCAN`` walk, and the store names in what it found.

Each ``SCAN`` step runs as the read-only :data:`scripts.SCAN_NAMES`, which
answers one NUL-joined string instead of a thousand replies; where scripts are
refused (an ACL without ``EVALSHA``, a read-only replica) the lister falls back
to plain ``SCAN`` for good. Keys are Acra's paths under ``<keys_dir>/``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

from keyloader.errors import ConfigError
from keyloader.stores.base import StoredBlob
from keyloader.stores.names import (
    HELPER_PREFIX,
    HISTORY_SUFFIX,
    POISON_DIR,
    VERSION_FILE,
    check_name,
)
from keyloader.stores.timestamps import parse_history_timestamp

from . import scripts
from .connection import RedisConnection

__all__ = ["SCAN_COUNT", "Lister", "blobs_from_names"]

log = logging.getLogger("keyloader.stores.redis")

SCAN_COUNT = 1000
"""The ``COUNT`` of each ``SCAN`` step."""

_FLAT_HELPERS = frozenset({VERSION_FILE, POISON_DIR, ""})
_TRUE, _NO_HISTORY, _NONE = itertools.repeat(True), itertools.repeat(()), itertools.repeat(None)


class Lister:
    """``SCAN`` walks over the server of ``connection``."""

    def __init__(self, connection: RedisConnection, route: str | None = None) -> None:
        self.connection = connection
        self.route = route
        """A key of the keystore's hash slot: the listing script runs on the node owning it
        (a Redis Cluster; one server ignores it)."""
        self.server_scan = True  # False once the server refuses the listing script

    def names(self, prefix: str, what: str) -> list[str]:
        """The keys starting with ``prefix``, without it (UTF-8 only; other keys are skipped)."""
        pattern = _glob_escape(prefix) + "*"

        def scan(client: Any, _: int) -> list[str]:
            if self.server_scan:
                try:
                    return self._steps(client, pattern, prefix)
                except self.connection.errors.ResponseError as exc:
                    if not _scripts_refused(exc):
                        raise
                    log.debug(
                        "listing with plain SCAN: scripts refused (%s)", self.connection.scrub(exc)
                    )
                    self.server_scan = False
            keys = list(client.scan_iter(match=pattern, count=SCAN_COUNT))
            return _relative_names(keys, len(prefix.encode()))

        return self.connection.run(what, scan)

    def _steps(self, client: Any, pattern: str, prefix: str) -> list[str]:
        """The ``SCAN_NAMES`` walk; a step whose joined answer does not split cleanly (a key
        holding a NUL byte, or not UTF-8) is scanned again plainly, key by key."""
        script = self.connection.script(scripts.SCAN_NAMES)
        skip = len(prefix)  # every key starts with the prefix: cut it from the decoded text
        names: list[str] = []
        cursor: bytes | int = 0
        while True:
            step = cursor
            keys_arg = [self.route] if self.route is not None else []
            cursor, count, joined = script(keys=keys_arg, args=[step, pattern, SCAN_COUNT])
            keys: list[str] = []
            if count:
                with suppress(UnicodeDecodeError):
                    keys = bytes(joined).decode("utf-8").split("\0")
            if len(keys) == count:
                names += [key[skip:] for key in keys]
            else:
                plain = client.scan(cursor=step, match=pattern, count=SCAN_COUNT)[1]
                names += _relative_names(plain, len(prefix.encode()))
            if int(cursor) == 0:
                return names


def blobs_from_names(names: Sequence[str], base: str) -> list[StoredBlob]:
    """The store's blobs, from the key names under ``base`` (helpers and strays left out)."""
    # Most keys are current blobs at the top level: plain names, set-deduplicated (SCAN
    # may return a key twice); only the few that could be helpers are checked one by one.
    current = {name for name in names if "/" not in name}
    maybe_helpers = [
        name
        for name in current
        if "." in name or name in _FLAT_HELPERS  # helpers start with "." or end in ".old"
    ]
    current.difference_update([name for name in maybe_helpers if _is_helper(name)])
    history: dict[str, list[tuple[int, str]]] = {}
    for rel in [name for name in names if "/" in name]:
        head, _, tail = rel.partition("/")
        if head == POISON_DIR:
            head, slash, tail = tail.partition("/")
            if not slash:
                if not _is_helper(head):
                    current.add(f"{POISON_DIR}/{head}")
                continue
            head = f"{POISON_DIR}/{head}"
        if head.endswith(HISTORY_SUFFIX) and "/" not in tail:
            _add_history(history, head[: -len(HISTORY_SUFFIX)], tail)
        else:
            log.debug("ignoring Redis key %r: not a key store name", base + rel)
    if not history:
        return list(
            map(StoredBlob._make, zip(sorted(current), _TRUE, _NO_HISTORY, _NONE, strict=False))
        )
    return [
        StoredBlob(
            name,
            name in current,
            tuple(ts for _, ts in sorted(history.get(name, ()))),
            None,
        )
        for name in sorted(current | history.keys())
    ]


def _add_history(history: dict[str, list[tuple[int, str]]], name: str, timestamp: str) -> None:
    try:
        check_name(name)
        parsed = parse_history_timestamp(timestamp)
    except (ConfigError, ValueError):
        log.warning("ignoring history entry %r of %r: not a history timestamp", timestamp, name)
        return
    history.setdefault(name, []).append((parsed, timestamp))


def _glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis ``MATCH`` pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _is_helper(base: str) -> bool:
    """Keys of one directory level that are not key blobs: helpers, ``version``, ``*.old``."""
    return base.startswith(HELPER_PREFIX) or base.endswith(HISTORY_SUFFIX) or base in _FLAT_HELPERS


def _relative_names(keys: Sequence[bytes], skip: int) -> list[str]:
    """The UTF-8 keys without their first ``skip`` bytes; keys that are not UTF-8 are skipped."""
    joined = b"\0".join(key[skip:] for key in keys)
    if joined.count(b"\0") == len(keys) - 1:  # no NUL inside a key: decode all at once
        try:
            return joined.decode("utf-8").split("\0") if keys else []
        except UnicodeDecodeError:
            pass
    names = []
    for key in keys:
        try:
            names.append(key[skip:].decode("utf-8"))
        except UnicodeDecodeError:
            log.debug("ignoring Redis key %r: not UTF-8", key)
    return names


def _scripts_refused(exc: BaseException) -> bool:
    """True when the listing script failed for a reason plain ``SCAN`` does not have.

    An ACL without ``EVALSHA`` (``NOPERM``), scripting disabled or renamed, a read-only
    replica that refuses scripts (``READONLY``, Redis 7): anything but an authentication
    failure, which plain ``SCAN`` would meet too.
    """
    return not str(exc).startswith(("NOAUTH", "WRONGPASS"))
