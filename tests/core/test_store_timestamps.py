"""History timestamps in Go's layout ``2006-01-02T15:04:05.999999999`` (Acra's .old names)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyloader.stores.timestamps import (
    history_timestamp,
    next_history_timestamp,
    parse_history_timestamp,
)

NS = 1_000_000_000
# 2024-01-02T03:04:05Z, and Go's reference time 2006-01-02T15:04:05Z, in seconds
JAN_2_2024 = 1_704_164_645
GO_REFERENCE = 1_136_214_245
YEAR_1 = -62_135_596_800 * NS
YEAR_9999_END = 253_402_300_800 * NS - 1


def _oracle(ns: int) -> str:
    """The Go rule spelled out with datetime: seconds, then the fraction trimmed of zeros."""
    seconds, fraction = divmod(ns, NS)
    text = (datetime(1970, 1, 1) + timedelta(seconds=seconds)).isoformat()
    return text + ("." + f"{fraction:09d}".rstrip("0") if fraction else "")


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (JAN_2_2024 * NS + 123_456_789, "2024-01-02T03:04:05.123456789"),
        (JAN_2_2024 * NS + 123_000_000, "2024-01-02T03:04:05.123"),
        (JAN_2_2024 * NS + 100_000_000, "2024-01-02T03:04:05.1"),
        (JAN_2_2024 * NS + 1, "2024-01-02T03:04:05.000000001"),
        (JAN_2_2024 * NS + 10, "2024-01-02T03:04:05.00000001"),
        (JAN_2_2024 * NS, "2024-01-02T03:04:05"),
        # formatting Go's reference time with all nines gives the layout back
        (GO_REFERENCE * NS + 999_999_999, "2006-01-02T15:04:05.999999999"),
        (0, "1970-01-01T00:00:00"),
        (-1, "1969-12-31T23:59:59.999999999"),
        (951_868_799 * NS + 500_000_000, "2000-02-29T23:59:59.5"),
        (YEAR_1, "0001-01-01T00:00:00"),
    ],
)
def test_go_layout_vectors(ns: int, text: str) -> None:
    assert history_timestamp(ns) == text
    assert parse_history_timestamp(text) == ns


def test_default_is_now_in_utc() -> None:
    before = time.time_ns()
    text = history_timestamp()
    after = time.time_ns()
    assert before // 1000 * 1000 - NS <= parse_history_timestamp(text) <= after
    assert not text.endswith(("Z", "+00:00"))


@given(st.integers(min_value=YEAR_1, max_value=YEAR_9999_END))
def test_format_matches_the_go_rule_and_round_trips(ns: int) -> None:
    text = history_timestamp(ns)
    assert text == _oracle(ns)
    assert parse_history_timestamp(text) == ns
    assert not text.endswith(".")
    assert "." not in text[:19]
    if "." in text:
        assert not text.endswith("0")


@given(
    st.integers(min_value=0, max_value=YEAR_9999_END),
    st.integers(min_value=0, max_value=YEAR_9999_END),
)
def test_text_order_is_time_order(a: int, b: int) -> None:
    """Why Acra picked the layout: names sort like the times they encode."""
    ta, tb = history_timestamp(a), history_timestamp(b)
    assert (ta < tb) == (a < b)
    assert (ta == tb) == (a == b)


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("2024-01-02T03:04:05.120", JAN_2_2024 * NS + 120_000_000),  # trailing zeros accepted
        ("2024-01-02T03:04:05.000", JAN_2_2024 * NS),
        ("2024-01-02T03:04:05,5", JAN_2_2024 * NS + 500_000_000),  # comma, as Go >= 1.17
        ("2024-01-02T03:04:05.1234567899", JAN_2_2024 * NS + 123_456_789),  # extra digits cut
    ],
)
def test_parse_accepts_what_go_accepts(text: str, ns: int) -> None:
    assert parse_history_timestamp(text) == ns


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2024-01-02",
        "2024-01-02 03:04:05",
        "2024-01-02T03:04:05Z",
        "2024-01-02T03:04:05+00:00",
        "2024-01-02T03:04:05.",
        "2024-01-02T03:04:05.x",
        "2024-1-02T03:04:05",
        "24-01-02T03:04:05",
        "2024-13-02T03:04:05",
        "2024-00-02T03:04:05",
        "2024-02-30T03:04:05",
        "2023-02-29T00:00:00",
        "0000-01-01T00:00:00",
        "2024-01-02T24:00:00",
        "2024-01-02T23:60:00",
        "2024-01-02T23:59:60",
        "\uff12\uff10\uff12\uff14-01-02T03:04:05",  # full-width digits
        "2024-01-02T03:04:05\n",
        " 2024-01-02T03:04:05",
        "../2024-01-02T03:04:05",
    ],
)
def test_parse_refuses_malformed(text: str) -> None:
    with pytest.raises(ValueError, match="history timestamp"):
        parse_history_timestamp(text)


def test_parse_refuses_non_text() -> None:
    with pytest.raises(ValueError):
        parse_history_timestamp(12345)  # type: ignore[arg-type]


def test_format_refuses_years_past_9999() -> None:
    with pytest.raises(ValueError, match="years"):
        history_timestamp(YEAR_9999_END + 1)


def test_next_timestamp_uses_the_clock() -> None:
    assert next_history_timestamp([], JAN_2_2024 * NS) == "2024-01-02T03:04:05"
    before = time.time_ns()
    fresh = parse_history_timestamp(next_history_timestamp())
    assert before // 1000 * 1000 - NS <= fresh <= time.time_ns()


def test_next_timestamp_is_later_than_every_existing_one() -> None:
    existing = ["2024-01-02T03:04:05.5", "2024-01-02T03:04:04", "not a timestamp"]
    # the clock stands at the newest entry, or went back: newest + 1 ns
    for clock in (JAN_2_2024 * NS + 500_000_000, JAN_2_2024 * NS - 7 * NS):
        assert next_history_timestamp(existing, clock) == "2024-01-02T03:04:05.500000001"
    later = next_history_timestamp(existing, JAN_2_2024 * NS + 600_000_000)
    assert later == "2024-01-02T03:04:05.6"


def test_next_timestamp_never_collides() -> None:
    taken: list[str] = []
    for _ in range(50):  # the same clock value every time
        taken.append(next_history_timestamp(taken, JAN_2_2024 * NS))
    assert len(set(taken)) == 50
    times = [parse_history_timestamp(t) for t in taken]
    assert times == sorted(times)
    assert times == [JAN_2_2024 * NS + i for i in range(50)]
    # a non-canonical spelling of the same instant counts as taken
    odd = ["2024-01-02T03:04:05.000"]  # same instant, non-canonical spelling
    assert next_history_timestamp(odd, JAN_2_2024 * NS) == "2024-01-02T03:04:05.000000001"
