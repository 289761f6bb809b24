"""Text and times as every service writes them: one clipper, one duration style, one UTC rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.runtime.text import clip, format_duration
from services.runtime.times import as_utc, assume_utc

IST = timezone(timedelta(hours=5, minutes=30))


@pytest.mark.parametrize(
    ("text", "limit", "clipped"),
    [
        ("short", 10, "short"),
        ("exactly10!", 10, "exactly10!"),
        ("eleven char", 10, "eleven ch…"),
        ("two words here", 5, "two…"),  # no "two …": whitespace before the ellipsis goes
        ("abc", 1, "…"),
        ("abc", 0, ""),
    ],
)
def test_clip(text: str, limit: int, clipped: str) -> None:
    assert clip(text, limit) == clipped
    assert len(clip(text, limit)) <= limit


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (-5, "0 s"),
        (0, "0 s"),
        (45.9, "45 s"),
        (60, "1 min"),
        (45 * 60, "45 min"),
        (3600, "1 h"),  # not "1 h 0 min"
        (2 * 3600, "2 h"),
        (90 * 60, "1 h 30 min"),
        (3600 + 23 * 60 + 30, "1 h 23 min"),
        (86400, "1 d"),  # not "1 d 0 h"
        (3 * 86400, "3 d"),
        (2 * 86400 + 3 * 3600 + 59 * 60, "2 d 3 h"),
    ],
)
def test_one_duration_style(seconds: float, said: str) -> None:
    assert format_duration(seconds) == said


def test_a_naive_time_is_utc() -> None:
    naive = datetime(2026, 11, 24, 6, 2)
    assert assume_utc(naive) == as_utc(naive) == datetime(2026, 11, 24, 6, 2, tzinfo=UTC)
    assert as_utc(naive).tzinfo is UTC


def test_an_aware_time_keeps_its_instant() -> None:
    local = datetime(2026, 11, 24, 11, 32, tzinfo=IST)
    assert assume_utc(local) is local  # its offset kept
    converted = as_utc(local)
    assert converted == local and converted.tzinfo is UTC and converted.hour == 6
