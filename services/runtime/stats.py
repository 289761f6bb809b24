"""`oncall stats`: what the agent did over a period, from the incidents' conversations in KV:
incidents, how many the model diagnosed and how many the rules, feedback right/wrong, median time
from firing to diagnosis, tickets, silences, repeats of known problems."""

import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import nats
import nats.js.errors

from services.contracts import streams
from services.contracts.models import OPEN_INCIDENTS_KEY, Conversation
from services.runtime.broker import nats_servers
from services.runtime.text import format_duration
from services.runtime.times import as_utc

_AGO = re.compile(r"^\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>m|h|d|w)\s*$", re.I)
_UNIT = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def period_start(text: str, now: datetime) -> datetime:
    """`7d`, `24h`, `2w`, `30m` before now, or an ISO date/time (UTC unless it says otherwise)."""
    ago = _AGO.match(text)
    if ago is not None:
        return now - float(ago["n"]) * _UNIT[ago["unit"].lower()]
    return as_utc(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))


@dataclass(frozen=True)
class Stats:
    since: datetime
    until: datetime
    incidents: int
    by_model: int
    by_rules: int
    undiagnosed: int
    right: int
    wrong: int
    median_seconds_to_diagnosis: float | None
    tickets: int
    silences: int
    repeats: int
    resolved: int


def fired_at(c: Conversation) -> datetime:
    return as_utc(min((a.starts_at for a in c.alerts if a.starts_at), default=c.opened_at))


def compute(conversations: Iterable[Conversation], since: datetime, until: datetime) -> Stats:
    chosen = [c for c in conversations if since <= as_utc(c.opened_at) < until]
    diagnosed = [c for c in chosen if c.diagnosis is not None]
    waits = [
        (as_utc(c.diagnosed_at) - fired_at(c)).total_seconds()
        for c in diagnosed
        if c.diagnosed_at is not None
    ]
    verdicts = [c.feedback[-1].verdict for c in chosen if c.feedback]
    return Stats(
        since=since,
        until=until,
        incidents=len(chosen),
        by_model=sum(c.diagnosis is not None and c.diagnosis.method == "model" for c in chosen),
        by_rules=sum(c.diagnosis is not None and c.diagnosis.method == "rules" for c in chosen),
        undiagnosed=len(chosen) - len(diagnosed),
        right=verdicts.count("right"),
        wrong=verdicts.count("wrong"),
        median_seconds_to_diagnosis=statistics.median(waits) if waits else None,
        tickets=sum(c.ticket_key is not None for c in chosen),
        silences=sum(1 for c in chosen for s in c.silences if s.ok and s.action == "create"),
        repeats=sum(c.seen_before is not None for c in chosen),
        resolved=sum(c.status == "resolved" for c in chosen),
    )


def render(s: Stats) -> str:
    def share(n: int) -> str:
        return f"{n} ({n / s.incidents:.0%})" if s.incidents else str(n)

    median = (
        format_duration(s.median_seconds_to_diagnosis) if s.median_seconds_to_diagnosis is not None else "-"
    )
    rated = s.right + s.wrong
    return "\n".join(
        [
            f"incidents {as_utc(s.since):%Y-%m-%d %H:%M} to {as_utc(s.until):%Y-%m-%d %H:%M} UTC: "
            f"{s.incidents}"
            f" ({s.resolved} resolved, {share(s.repeats)} seen before)",
            f"  diagnosed by the model: {share(s.by_model)}, by the rules: {share(s.by_rules)}"
            + (f", not diagnosed: {s.undiagnosed}" if s.undiagnosed else ""),
            f"  feedback: {s.right} right, {s.wrong} wrong"
            + (f" ({s.right / rated:.0%} right of those rated)" if rated else " (none given)"),
            f"  median time from firing to diagnosis: {median}",
            f"  tickets: {s.tickets}",
            f"  silences: {s.silences}",
        ]
    )


async def read_conversations(url: str) -> list[Conversation]:
    nc = await nats.connect(nats_servers(url), name="oncall-stats")
    try:
        kv = await nc.jetstream().key_value(streams.CONVERSATIONS.name)
        try:
            keys = await kv.keys()
        except nats.js.errors.NoKeysError:
            return []
        found = []
        for key in keys:
            if key == OPEN_INCIDENTS_KEY:
                continue
            try:
                entry = await kv.get(key)
            except nats.js.errors.KeyNotFoundError:
                continue
            if entry.value:
                found.append(Conversation.model_validate_json(entry.value))
        return found
    finally:
        await nc.close()
