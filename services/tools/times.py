"""Times as tools read and write them: UTC, ISO 8601, epoch numbers of any precision."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

# Naive times are taken as UTC (what a model means when it leaves the zone out).
from services.runtime.times import as_utc, assume_utc

__all__ = ["as_utc", "iso", "parse_timestamp"]


def iso(moment: datetime) -> str:
    """`2026-11-24T06:02:41Z`: to the second, which is as precise as a person reads it."""
    return as_utc(moment).isoformat(timespec="seconds").replace("+00:00", "Z")


# Log compression reads each line's time several times per call, and the same lines again on the
# next call over the same window: parsing was 4 % of an incident's CPU.
@lru_cache(maxsize=16_384)
def parse_timestamp(text: str) -> datetime | None:
    """An ISO 8601 time (naive = UTC) or epoch seconds, milliseconds or nanoseconds; None if neither."""
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        scale = next((s for s in (1, 1e3, 1e6, 1e9) if 0 <= number / s < 1e11), None)  # s, ms, µs, ns
        return None if scale is None else datetime.fromtimestamp(number / scale, UTC)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return assume_utc(moment)
