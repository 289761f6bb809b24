"""Incident memory: each diagnosed incident is filed under its problem's signature in KV
`oncall_memory`, so that a repeat says so in its first lines ("Seen 3 times before; last on
2026-11-30 (#a1b2c3), ticket OPS-12 (Done), lasted 14 min; fixed by commit abc123 (title)") and
the model reads the earlier diagnoses beside the evidence.

The signature is computed from the evidence, not from the diagnosis text (which the model words
differently every time): the service plus what the rules rank decisive (ranking.py): the
exception type and the failing frame (the file's last two path parts and the function, not the
line, which moves with every edit), or, without a trace, the decisive subject (the dependency,
the slow tables, the kind).
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from services.contracts import streams
from services.contracts.memory import MAX_REMEMBERED, PastIncident, ProblemRecord, signature_key
from services.contracts.models import AlertGroup, Conversation, TicketRequested, incident_tag, utc_now
from services.contracts.tool_results import CommitsResult, CommitSummary
from services.diagnoser.evidence import Evidence
from services.diagnoser.rules import Facts, tables_in
from services.runtime.bus import Bus
from services.runtime.text import clip, format_duration
from services.runtime.times import as_utc

log = logging.getLogger("oncall.diagnoser.memory")

# Earlier diagnoses the model reads (newest first), and how much of each.
PAST_FOR_MODEL = 3
PAST_ROOT_CAUSE_CHARS = 300


def signature_of(group: AlertGroup, evidence: Evidence) -> str:
    """`checkout | KeyError at checkout/payments.py in charge`, `orders | slow SQL on orders`,
    `api | dependency payments-gateway`; `<service> | <alert> (no cause found)` when nothing ranks."""
    facts = Facts.of(group, evidence)
    service = (group.service or "-").lower()
    top = facts.causes[0] if facts.causes else None
    if top is None:
        return f"{service} | {group.alertname} (no cause found)"
    if top.trace is not None:
        exception = top.trace.exception.split(":", 1)[0].strip() or "exception"
        frame = evidence.failing_frame or (top.trace.frames[-1] if top.trace.frames else None)
        where = f" at {short_path(frame.lookup_path)} in {frame.function}" if frame is not None else ""
        return f"{service} | {exception}{where}"
    if top.signal.kind == "slow" and (tables := tables_in(top.text)):
        return f"{service} | slow SQL on {', '.join(sorted(t.lower() for t in tables))}"
    return f"{service} | {top.signal.kind} {top.subject}"


def ended(group: AlertGroup) -> datetime | None:
    """When Alertmanager says the group's alerts ended (the latest `endsAt`)."""
    ends = [a.ends_at for a in group.alerts if a.ends_at is not None]
    return max(ends) if ends else None


def short_path(path: str) -> str:
    """The file's last two parts: `/app/checkout/payments.py` (a container) and
    `src/checkout/payments.py` (the repository) are one `checkout/payments.py`."""
    return "/".join(path.replace("\\", "/").rstrip("/").split("/")[-2:])


@dataclass(frozen=True)
class Recalled:
    """What memory says of a new incident, before it is diagnosed."""

    signature: str
    key: str
    seen_before: str | None  # the message's first line; None: a first occurrence
    for_model: str | None  # the earlier diagnoses, as evidence for the model


async def recall(bus: Bus, group: AlertGroup, evidence: Evidence, incident_id: str) -> Recalled:
    signature = signature_of(group, evidence)
    key = signature_key(signature)
    record, _ = await bus.kv_get(streams.MEMORY, key, ProblemRecord)
    past = earlier(record, incident_id)
    if not past:
        return Recalled(signature, key, None, None)
    return Recalled(signature, key, seen_before_line(past, evidence), past_for_model(past))


def earlier(record: ProblemRecord | None, incident_id: str) -> list[PastIncident]:
    """The other incidents of the signature, oldest first (a re-diagnosis is not its own past)."""
    return [p for p in record.incidents if p.incident_id != incident_id] if record else []


def seen_before_line(past: list[PastIncident], evidence: Evidence) -> str:
    last = past[-1]
    times = "once" if len(past) == 1 else f"{len(past)} times"
    parts = [f"last on {as_utc(last.started_at):%Y-%m-%d} ({incident_tag(last.incident_id)})"]
    if last.ticket_key:
        status = f" ({last.ticket_status})" if last.ticket_status else ""
        parts.append(f"ticket {last.ticket_key}{status}")
    if last.resolved_at is not None:
        parts.append(f"lasted {format_duration((last.resolved_at - last.started_at).total_seconds())}")
    line = f"Seen {times} before; " + ", ".join(parts)
    fix = fix_since(last.started_at, evidence)
    if fix is not None:
        line += f"; fixed by commit {fix.sha[:7]} ({clip(fix.title, 80)})"
    return line + wrong_note(past)


def wrong_note(past: list[PastIncident]) -> str:
    """A diagnosis marked wrong is never recalled as if it were right."""
    last = past[-1]
    if last.verdict == "wrong":
        said = f": the cause was {clip(last.correction, 120)}" if last.correction else ""
        return f". ⚠️ That diagnosis was marked wrong{said}"
    wrong = sum(p.verdict == "wrong" for p in past)
    return f". ⚠️ {wrong} of those diagnoses were marked wrong" if wrong else ""


def fix_since(started: datetime, evidence: Evidence) -> CommitSummary | None:
    """The newest commit to the failing file (or the repository, for latency) made after the last
    occurrence began: the change meant to fix it."""
    file_history = evidence.commits.result.output(CommitsResult) if evidence.commits is not None else None
    repository = evidence.recent_changes
    commits = [*(file_history.commits if file_history else []), *(repository.commits if repository else [])]
    after = [c for c in commits if (when := commit_time(c)) is not None and when > as_utc(started)]
    return max(after, key=lambda c: commit_time(c) or started) if after else None


def commit_time(commit: CommitSummary) -> datetime | None:
    if not commit.date:
        return None
    try:
        return as_utc(datetime.fromisoformat(commit.date.replace("Z", "+00:00")))
    except ValueError:
        return None


def past_for_model(past: list[PastIncident]) -> str:
    lines = [
        f"This problem (same service, same decisive signature) was diagnosed {len(past)} time(s) before. "
        "Earlier diagnoses, newest first; check them against today's evidence, do not copy them:"
    ]
    for incident in reversed(past[-PAST_FOR_MODEL:]):
        where = f" at {incident.affected_file}:{incident.line}" if incident.affected_file else ""
        verdict = ""
        if incident.verdict == "wrong":
            verdict = " [marked WRONG by the on-call person" + (
                f"; the cause was: {clip(incident.correction, 200)}]" if incident.correction else "]"
            )
        elif incident.verdict == "right":
            verdict = " [confirmed right by the on-call person]"
        lines.append(
            f"- {incident_tag(incident.incident_id)} on {as_utc(incident.started_at):%Y-%m-%d %H:%M} UTC "
            f"({incident.method}){where}: {clip(incident.root_cause, PAST_ROOT_CAUSE_CHARS)}{verdict}"
        )
    return "\n".join(lines)


def with_recalled(conversation: Conversation, recalled: Recalled) -> Conversation:
    return conversation.model_copy(
        update={
            "signature": recalled.key,
            "signature_text": recalled.signature,
            "seen_before": recalled.seen_before,
            "diagnosed_at": utc_now(),
        }
    )


# --- keeping the record ---------------------------------------------------------------------------


def past_incident_of(
    conversation: Conversation, known: PastIncident | None, ended_at: datetime | None = None
) -> PastIncident:
    d = conversation.diagnosis
    started = min((a.starts_at for a in conversation.alerts if a.starts_at), default=conversation.opened_at)
    latest = conversation.feedback[-1] if conversation.feedback else None
    return PastIncident(
        incident_id=conversation.incident_id,
        started_at=started,
        # Alertmanager's end of the alerts when it said so ("lasted 14 min"), not when we heard it.
        resolved_at=ended_at or (known.resolved_at if known else None) or conversation.resolved_at,
        root_cause=d.root_cause if d else "",
        affected_file=d.affected_file if d else None,
        line=d.line if d else None,
        method=d.method if d else "rules",
        ticket_key=conversation.ticket_key,
        ticket_status=known.ticket_status if known and known.ticket_key == conversation.ticket_key else None,
        verdict=latest.verdict if latest else None,
        correction=latest.correction if latest else None,
    )


def with_incident(
    record: ProblemRecord | None, signature: str, conversation: Conversation, ended_at: datetime | None = None
) -> ProblemRecord:
    record = record or ProblemRecord(signature=signature, service=conversation.service)
    known = next((p for p in record.incidents if p.incident_id == conversation.incident_id), None)
    entry = past_incident_of(conversation, known, ended_at)
    others = [p for p in record.incidents if p.incident_id != conversation.incident_id]
    incidents = sorted([*others, entry], key=lambda p: as_utc(p.started_at))[-MAX_REMEMBERED:]
    return record.model_copy(
        update={
            "incidents": incidents,
            "right": sum(p.verdict == "right" for p in incidents),
            "wrong": sum(p.verdict == "wrong" for p in incidents),
            "updated_at": utc_now(),
        }
    )


async def remember(
    bus: Bus,
    conversation: Conversation | None,
    ticket_status: str | None = None,
    ended_at: datetime | None = None,
) -> None:
    """File (or refresh) the incident under its signature: after its diagnosis, its ticket, its
    resolution and each feedback. Idempotent: the entry is rebuilt from the conversation."""
    if conversation is None or conversation.signature is None or conversation.diagnosis is None:
        return
    signature = conversation.signature_text or conversation.signature

    def change(current: ProblemRecord | None) -> ProblemRecord:
        updated = with_incident(current, signature, conversation, ended_at)
        if ticket_status is not None:
            updated.incidents = [
                p.model_copy(update={"ticket_status": ticket_status})
                if p.incident_id == conversation.incident_id
                else p
                for p in updated.incidents
            ]
        return updated

    await bus.kv_update(streams.MEMORY, conversation.signature, ProblemRecord, change)


async def with_related_tickets(
    bus: Bus, conversation: Conversation, request: TicketRequested
) -> TicketRequested:
    """One ticket per problem: a ticket request names the tickets of earlier incidents with the
    same signature (newest first), for ticketing to comment on, reopen or link."""
    if conversation.signature is None or request.related_tickets:
        return request
    record, _ = await bus.kv_get(streams.MEMORY, conversation.signature, ProblemRecord)
    keys: list[str] = []
    for past in reversed(earlier(record, conversation.incident_id)):
        if past.ticket_key and past.ticket_key not in keys and past.ticket_key != conversation.ticket_key:
            keys.append(past.ticket_key)
    return request.model_copy(update={"related_tickets": keys}) if keys else request
