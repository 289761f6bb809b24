"""Silences asked for by a human on WhatsApp: create or expire them and tell everyone."""

import json
import logging
from datetime import timedelta

from services.alert_ingest.alertmanager import AlertmanagerClient, AlertmanagerError
from services.contracts import streams, subjects
from services.contracts.models import NotifyText, SilenceApplied, SilenceRequested, utc_now
from services.runtime.bus import Bus
from services.runtime.text import format_duration

log = logging.getLogger("oncall.alert_ingest.silences")


def silence_key(incident_id: str) -> str:
    return f"silence.{incident_id}"


async def handle_silence(
    request: SilenceRequested, bus: Bus, alertmanager: AlertmanagerClient | None
) -> None:
    """Transient Alertmanager errors raise (the consumer retries with backoff); anything else
    becomes a plain answer to the on-call people, and the outcome is recorded on the incident."""
    applied = await _apply(request, bus, alertmanager)
    note = NotifyText(
        notification_id=f"silence-{request.request_id}",
        incident_id=request.incident_id,
        text=applied.outcome,
        in_reply_to=request.in_reply_to,
    )
    await bus.publish_event(subjects.NOTIFY_TEXT, note, msg_id=f"silence-outcome-{request.request_id}")
    await bus.publish_event(
        subjects.SILENCES_APPLIED, applied, msg_id=f"silence-applied-{request.request_id}"
    )


async def report_given_up(request: SilenceRequested, reason: str, bus: Bus) -> None:
    """The request was dead-lettered (Alertmanager kept failing): the person who asked reads why."""
    verb = "silence" if request.action == "create" else "unsilence"
    applied = _outcome(request, f"I could not {verb} the alerts; I gave up after repeated failures: {reason}")
    note = NotifyText(
        notification_id=f"silence-{request.request_id}",
        incident_id=request.incident_id,
        text=applied.outcome,
        in_reply_to=request.in_reply_to,
    )
    await bus.publish_event(subjects.NOTIFY_TEXT, note, msg_id=f"silence-outcome-{request.request_id}")
    await bus.publish_event(
        subjects.SILENCES_APPLIED, applied, msg_id=f"silence-applied-{request.request_id}"
    )


def _outcome(
    request: SilenceRequested, text: str, ok: bool = False, silence_id: str | None = None
) -> SilenceApplied:
    ends_at = (
        utc_now() + timedelta(seconds=request.duration_seconds) if ok and request.action == "create" else None
    )
    return SilenceApplied(
        request_id=request.request_id,
        incident_id=request.incident_id,
        requested_by=request.requested_by,
        action=request.action,
        ok=ok,
        silence_id=silence_id,
        ends_at=ends_at,
        outcome=text,
    )


async def _apply(
    request: SilenceRequested, bus: Bus, alertmanager: AlertmanagerClient | None
) -> SilenceApplied:
    if alertmanager is None:
        verb = "silence" if request.action == "create" else "unsilence"
        return _outcome(request, f"I can't {verb}: Alertmanager is not configured (set ALERTMANAGER_URL).")
    key = silence_key(request.incident_id)
    stored = await bus.kv_text(streams.DELIVERIES, key)
    current = json.loads(stored) if stored else None
    try:
        if request.action == "create":
            if not request.matchers:
                return _outcome(request, "I can't silence this incident: its alerts have no labels to match.")
            duration = timedelta(seconds=request.duration_seconds)
            matched = ", ".join(f"{m.name}={m.value}" for m in request.matchers)
            lasting = format_duration(duration.total_seconds())
            done = f"🔕 Silenced for {lasting} ({matched}). Reply `unsilence` to undo."
            if current and current.get("request_id") == request.request_id:
                # A redelivery: this very request already made its silence.
                return _outcome(request, done, ok=True, silence_id=current.get("silence_id"))
            silence_id = await alertmanager.create_silence(request.matchers, duration, request.comment)
            record = {"silence_id": silence_id, "request_id": request.request_id}
            await bus.kv_put_text(streams.DELIVERIES, key, json.dumps(record))
            return _outcome(request, done, ok=True, silence_id=silence_id)
        if current is None:
            return _outcome(request, "There is no silence of mine on this incident to remove.")
        await alertmanager.expire_silence(current["silence_id"])
        await bus.kv_delete(streams.DELIVERIES, key)
        removed = "🔔 Silence removed: alerts of this incident notify again."
        return _outcome(request, removed, ok=True, silence_id=current["silence_id"])
    except AlertmanagerError as exc:
        if exc.transient:
            raise
        log.warning("silence %s for incident %s refused: %s", request.action, request.incident_id, exc)
        return _outcome(request, f"Alertmanager did not accept that: {exc}")
