"""What fetch_logs asks its log sources for: a service, stream labels and a time window."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.contracts.tools import FetchLogsArgs
from services.tools.times import as_utc


@dataclass(frozen=True)
class LogQuery:
    service: str | None
    start: datetime
    end: datetime
    limit: int
    now: datetime
    alert_start: datetime | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def anchored(self) -> bool:
        """Around an alert's start rather than "the last N seconds": sources that can only tail
        (the load balancer) must cut the lines outside [start, end] themselves."""
        return self.alert_start is not None


def log_query(args: FetchLogsArgs, now: datetime) -> LogQuery:
    """The last `seconds` before now; or, given the alert's start, `seconds` either side of it
    (never past now), so the lines from before the alert show what was normal."""
    span = timedelta(seconds=args.seconds)
    labels = args.labels or {}
    if args.starts_at is None:
        return LogQuery(args.service, now - span, now, args.limit, now, labels=labels)
    anchor = min(as_utc(args.starts_at), now)
    end = min(anchor + span, now)
    return LogQuery(args.service, anchor - span, end, args.limit, now, alert_start=anchor, labels=labels)
