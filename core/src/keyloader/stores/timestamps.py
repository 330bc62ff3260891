"""History timestamps: UTC in Go's layout ``2006-01-02T15:04:05.999999999``.

Acra names rotated key files this way (checked against cossacklabs/acra at 47f5b02,
``keystore/filesystem/filenames.go`` and ``server_keystore.go``): on rotation
``WriteKeyFile`` writes the new key to a temp file, ``backupHistoricalKeyFile``
hard-links the current file (``Link``, falling back to ``Copy`` with
``O_EXCL``) into ``<file>.old/<timestamp>`` (``historyDirSuffix = ".old"``,
directory mode 0700), then renames the temp file over the current one. The
timestamp is ``time.Now().UTC().Format(HistoricalFileNameTimeFormat)`` with
``HistoricalFileNameTimeFormat = "2006-01-02T15:04:05.999999999"``: RFC 3339
without a zone, nanoseconds with trailing zeros trimmed (no dot at all when
the fraction is zero). ``acra-keys list --rotated-keys`` parses each file name
with ``time.Parse`` of that layout and numbers them 2, 3, ... in file-name
order (``ReadDir`` sorts by name), which for this layout is oldest first.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

__all__ = ["history_timestamp", "next_history_timestamp", "parse_history_timestamp"]

_NS_PER_SECOND = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
# Go's time.Parse with this layout: fixed-width fields; a fraction of one or
# more digits after "." (or "," since Go 1.17), digits past the ninth ignored.
_LAYOUT = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:[.,]([0-9]+))?"
)


def history_timestamp(ns: int | None = None) -> str:
    """Format ``ns`` (nanoseconds since the epoch; default ``time.time_ns()``) the Go way."""
    if ns is None:
        ns = time.time_ns()
    seconds, fraction = divmod(ns, _NS_PER_SECOND)
    try:
        moment = _EPOCH + timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"{ns} ns since the epoch is outside years 1-9999") from None
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return text


def parse_history_timestamp(text: str) -> int:
    """Nanoseconds since the epoch of a Go-layout timestamp; ``ValueError`` if malformed."""
    match = _LAYOUT.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"{text!r} is not a history timestamp (expected UTC in the form "
            "2006-01-02T15:04:05.999999999)"
        )
    year, month, day, hour, minute, second = (int(group) for group in match.groups()[:6])
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"{text!r} is not a history timestamp: time of day out of range")
    try:
        days = date(year, month, day).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        raise ValueError(f"{text!r} is not a history timestamp: date out of range") from None
    digits = (match.group(7) or "")[:9]
    fraction = int(digits.ljust(9, "0")) if digits else 0
    seconds = days * 86_400 + hour * 3_600 + minute * 60 + second
    return seconds * _NS_PER_SECOND + fraction


def next_history_timestamp(existing: Iterable[str] = (), ns: int | None = None) -> str:
    """A new timestamp later than every parseable one in ``existing`` and equal to none.

    Taken from ``ns`` (default ``time.time_ns()``); if the clock has not moved
    past the newest existing entry (same nanosecond, or a clock stepped back),
    the newest entry plus 1 ns is used, so history numbers stay stable.
    """
    taken = set(existing)
    latest: int | None = None
    for name in taken:
        try:
            parsed = parse_history_timestamp(name)
        except ValueError:
            continue
        latest = parsed if latest is None else max(latest, parsed)
    candidate = time.time_ns() if ns is None else ns
    if latest is not None and candidate <= latest:
        candidate = latest + 1
    text = history_timestamp(candidate)
    while text in taken:
        candidate += 1
        text = history_timestamp(candidate)
    return text
