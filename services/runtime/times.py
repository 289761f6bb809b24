"""Times as the agent reads them: a time without a zone is UTC.

Alertmanager, the tools' backends and the bus all speak UTC; a naive datetime (a model leaving
the zone out, an HTTP asctime date, a test) is read as UTC rather than as the host's local time,
so nothing depends on the machine's TZ.
"""

from __future__ import annotations

from datetime import UTC, datetime


def assume_utc(moment: datetime) -> datetime:
    """A naive time taken as UTC; an aware one as it is, its offset kept."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def as_utc(moment: datetime) -> datetime:
    """The same instant in UTC (a naive time being UTC already)."""
    return assume_utc(moment).astimezone(UTC)
