"""Flapping: a group that fires (and resolves) more than ONCALL_FLAP_COUNT times within
ONCALL_FLAP_WINDOW is marked flapping. One message says so, with the count; its later firings
within the window are counted silently (not diagnosed, no resolution message); once it has been
stable (no firing, no resolution) for a whole window, a summary says how often it flapped.

State: KV `oncall_memory[flap-<group hash>]` (contracts/memory.py), changed with compare-and-set;
the summary is published under a message id derived from the episode, so two replicas that both
see it due send it once.
"""

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import nats.js.errors

from services.contracts import streams, subjects
from services.contracts.memory import FlapRecord, flap_key
from services.contracts.models import AlertGroup, NotifyText, group_hash, incident_tag, utc_now
from services.diagnoser import metrics
from services.runtime.bus import Bus
from services.runtime.service import Hook
from services.runtime.text import format_duration
from services.runtime.times import as_utc

log = logging.getLogger("oncall.diagnoser.flapping")

_DURATION = re.compile(r"^\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>s|sec|m|min|h|d)?\s*$", re.I)
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_window(value: object) -> float:
    """`1h`, `30m`, `90s`, `2d` or a number of seconds -> seconds."""
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise ValueError("must be a duration such as 1h, 30m, 90s, or seconds")
        seconds = float(match["n"]) * _UNIT_SECONDS[(match["unit"] or "s").lower()]
    if seconds <= 0:
        raise ValueError("must be more than 0")
    return seconds


@dataclass(frozen=True)
class FlapPolicy:
    count: int = 3
    window_seconds: float = 3600.0

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=self.window_seconds)


Action = Literal["diagnose", "announce", "count"]


@dataclass(frozen=True)
class FlapDecision:
    action: Action
    firings: int
    record: FlapRecord | None = None


def with_firing(
    record: FlapRecord | None, group: AlertGroup, incident_id: str, now: datetime, policy: FlapPolicy
) -> FlapRecord:
    """The record after the group fired again as a new incident (a pure change)."""
    record = record or FlapRecord(group_key=group.group_key, title=group.title)
    stale = record.flapping_since is not None and now - as_utc(record.last_change) >= policy.window
    if stale:  # stable for a window, and the summary not sent yet: a new episode starts
        record = FlapRecord(group_key=group.group_key, title=group.title)
    firings = [f for f in record.firings if now - as_utc(f) < policy.window] + [now]
    update: dict[str, object] = {
        "firings": firings,
        "last_change": now,
        "resolved": False,
        "last_incident": incident_id,
    }
    if record.flapping_since is not None:
        update["flaps"] = record.flaps + 1
    elif len(firings) > policy.count:
        update |= {"flapping_since": now, "announced_incident": incident_id, "flaps": 1}
    return record.model_copy(update=update)


def decision(before: FlapRecord | None, after: FlapRecord) -> FlapDecision:
    if after.flapping_since is None:
        return FlapDecision("diagnose", len(after.firings), after)
    if before is None or before.flapping_since != after.flapping_since:
        return FlapDecision("announce", len(after.firings), after)
    return FlapDecision("count", len(after.firings), after)


async def on_firing(
    bus: Bus, group: AlertGroup, incident_id: str, policy: FlapPolicy, now: datetime | None = None
) -> FlapDecision:
    """Count a new incident of the group; whether to diagnose it, announce flapping, or count it."""
    now = now or utc_now()
    key = flap_key(group_hash(group.group_key))
    seen: list[FlapRecord | None] = []

    def change(current: FlapRecord | None) -> FlapRecord | None:
        seen.append(current)
        if current is not None and current.last_incident == incident_id:
            return None  # a redelivery: counted already
        return with_firing(current, group, incident_id, now, policy)

    after = await bus.kv_update(streams.MEMORY, key, FlapRecord, change)
    assert after is not None
    before = seen[-1] if seen else None
    if before is not None and before.last_incident == incident_id:
        before = None if after.announced_incident == incident_id else before
    found = decision(before, after)
    if found.action != "diagnose":
        metrics.flaps.labels(action=found.action).inc()
    return found


async def on_resolved(bus: Bus, group: AlertGroup, now: datetime | None = None) -> None:
    """A resolution is a change too: the group is stable only a window after the last one."""
    now = now or utc_now()

    def change(current: FlapRecord | None) -> FlapRecord | None:
        if current is None or current.resolved:
            return None
        return current.model_copy(update={"last_change": now, "resolved": True})

    await bus.kv_update(streams.MEMORY, flap_key(group_hash(group.group_key)), FlapRecord, change)


def flapping_text(record: FlapRecord, incident_id: str, policy: FlapPolicy) -> str:
    return (
        f"🔁 *Flapping* {incident_tag(incident_id)}\n*{record.title}*\n"
        f"Fired and resolved {len(record.firings)} times in the last "
        f"{format_duration(policy.window_seconds)}. "
        f"I will count further flaps silently and send a summary once it has been stable for "
        f"{format_duration(policy.window_seconds)}."
    )


def summary_text(record: FlapRecord, policy: FlapPolicy) -> str:
    since = as_utc(record.flapping_since or record.last_change)
    last = as_utc(record.last_change)
    state = "resolved" if record.resolved else "firing"
    return (
        f"📉 *Flapping over* *{record.title}*\n"
        f"It fired {record.flaps} time(s) from when it was marked flapping at {since:%H:%M} UTC "
        f"({len(record.firings)} firings in its last window); stable ({state}) since {last:%H:%M} UTC, "
        f"{format_duration(policy.window_seconds)} without a change."
    )


async def announce(bus: Bus, record: FlapRecord, incident_id: str, policy: FlapPolicy) -> None:
    text = flapping_text(record, incident_id, policy)
    note = NotifyText(notification_id=f"flapping-{incident_id}", incident_id=incident_id, text=text)
    await bus.publish_event(subjects.NOTIFY_TEXT, note, msg_id=f"flapping-{incident_id}")


def due(record: FlapRecord, now: datetime, policy: FlapPolicy) -> bool:
    return now - as_utc(record.last_change) >= policy.window


async def summarize_stable(bus: Bus, policy: FlapPolicy, now: datetime | None = None) -> int:
    """Send the summary of every flapping group stable for a window, and forget groups that
    stopped firing; returns how many summaries were sent."""
    now = now or utc_now()
    kv = await bus.kv(streams.MEMORY)
    try:
        keys = await kv.keys()
    except nats.js.errors.NoKeysError:  # nats-py's answer for an empty bucket
        return 0
    sent = 0
    for key in [k for k in keys if k.startswith("flap-")]:
        record, _ = await bus.kv_get(streams.MEMORY, key, FlapRecord)
        if record is None or not due(record, now, policy):
            continue
        if record.flapping_since is not None:
            episode = f"{key}-{as_utc(record.flapping_since):%Y%m%d%H%M%S}"
            note = NotifyText(notification_id=f"flap-summary-{episode}", text=summary_text(record, policy))
            await bus.publish_event(subjects.NOTIFY_TEXT, note, msg_id=f"flap-summary-{episode}")
            sent += 1
        await bus.kv_delete(streams.MEMORY, key)
    return sent


def watcher(bus: Bus, policy: FlapPolicy) -> tuple[Hook, Hook]:
    """Start and stop hooks of the loop that looks for stable groups (a few times per window)."""
    task: list[asyncio.Task[None]] = []
    period = max(1.0, min(policy.window_seconds / 4, 60.0))

    async def loop() -> None:
        while True:
            await asyncio.sleep(period)
            try:
                await summarize_stable(bus, policy)
            except Exception:  # a NATS hiccup: try again next period
                log.exception("flapping summaries failed; retrying in %.0f s", period)

    async def start() -> None:
        task.append(asyncio.create_task(loop()))

    async def stop() -> None:
        for running in task:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running

    return start, stop
