"""Operating the bus from the product when the NATS CLI is missing: `oncall replay`, `oncall inspect`."""

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import nats
import nats.js.errors
from nats.js import JetStreamContext
from pydantic import ValidationError

from services.contracts import streams, subjects
from services.contracts.models import AlertGroup, Conversation
from services.runtime.broker import nats_servers

REPLAY_HEADER = "Oncall-Replay-Of"


@dataclass(frozen=True)
class Selection:
    stream: str
    first_seq: int | None = None
    last_seq: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    incident: str | None = None
    subject: str | None = None


DLQ_REASON_HEADER = "Oncall-Dlq-Reason"
DLQ_ORIGINAL_SUBJECT_HEADER = "Oncall-Original-Subject"


@dataclass(frozen=True)
class StoredMessage:
    seq: int
    subject: str
    time: datetime | None
    data: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def dead_letter_reason(self) -> str | None:
        return self.headers.get(DLQ_REASON_HEADER)

    @property
    def replay_subject(self) -> str:
        """Where a replay goes: a dead letter back to the subject it failed on, anything else to its own."""
        return self.headers.get(DLQ_ORIGINAL_SUBJECT_HEADER) or self.subject

    @property
    def incident_id(self) -> str | None:
        try:
            body = json.loads(self.data)
        except ValueError:
            return None
        if not isinstance(body, dict):
            return None
        if body.get("incident_id") or "groupKey" not in body:
            return body.get("incident_id")
        try:
            return AlertGroup.model_validate(body).effective_incident_id
        except ValidationError:
            return None


def selected(message: StoredMessage, selection: Selection) -> bool:
    if selection.first_seq is not None and message.seq < selection.first_seq:
        return False
    if selection.last_seq is not None and message.seq > selection.last_seq:
        return False
    if message.time is not None:
        if selection.since is not None and message.time < selection.since:
            return False
        if selection.until is not None and message.time > selection.until:
            return False
    if selection.subject is not None and message.subject != selection.subject:
        return False
    return selection.incident is None or message.incident_id == selection.incident


def forced_seqs(messages: list[StoredMessage]) -> set[int]:
    """With --force, only the newest selected firing message of each incident is marked: one new
    investigation per incident, however many alert messages it stored."""
    newest: dict[str | None, int] = {}
    for message in messages:
        if message.replay_subject != subjects.ALERTS_FIRING:
            continue
        newest[message.incident_id] = max(newest.get(message.incident_id, 0), message.seq)
    return set(newest.values())


def with_force(data: bytes) -> bytes:
    """The same message, marked so that the diagnoser investigates it again."""
    body: dict[str, Any] = json.loads(data)
    body["force"] = True
    return json.dumps(body).encode()


async def stored_messages(js: JetStreamContext, selection: Selection) -> list[StoredMessage]:
    info = await js.stream_info(selection.stream)
    if info.state.messages == 0:
        return []  # an empty stream (the dead letters' normal state) reports first/last seq 0
    first = max(info.state.first_seq, selection.first_seq or 0)
    last = min(info.state.last_seq, selection.last_seq or info.state.last_seq)
    found = []
    for seq in range(first, last + 1):
        try:
            raw = await js.get_msg(selection.stream, seq)
        except nats.js.errors.NotFoundError:
            continue  # deleted or expired
        message = StoredMessage(seq, raw.subject or "", raw.time, raw.data or b"", dict(raw.headers or {}))
        if selected(message, selection):
            found.append(message)
    return found


async def replay(url: str, selection: Selection, force: bool, dry_run: bool) -> list[StoredMessage]:
    """Re-publishes the selected messages under a new message id. Without `force` the services'
    own idempotency makes a replay of handled work a no-op (no second WhatsApp, no second ticket)."""
    nc = await nats.connect(nats_servers(url), name="oncall-replay")
    js = nc.jetstream()
    try:
        messages = await stored_messages(js, selection)
        if not dry_run:
            stamp = datetime.now().strftime("%Y%m%dT%H%M%S%f")
            forced = forced_seqs(messages) if force else set()
            for message in messages:
                data = with_force(message.data) if message.seq in forced else message.data
                await js.publish(
                    message.replay_subject,
                    data,
                    headers={
                        "Nats-Msg-Id": f"replay-{selection.stream}-{message.seq}-{stamp}",
                        REPLAY_HEADER: f"{selection.stream}/{message.seq}",
                    },
                )
        return messages
    finally:
        await nc.close()


async def read_conversation(url: str, incident_id: str) -> Conversation | None:
    nc = await nats.connect(nats_servers(url), name="oncall-inspect")
    try:
        kv = await nc.jetstream().key_value(streams.CONVERSATIONS.name)
        try:
            entry = await kv.get(incident_id)
        except nats.js.errors.KeyNotFoundError:
            return None
        return Conversation.model_validate_json(entry.value) if entry.value else None
    finally:
        await nc.close()


def describe(conversation: Conversation) -> str:
    """A person's view of an incident: what fired, what was found, what was done."""
    lines = [
        f"incident #{conversation.incident_id}: {conversation.title} [{conversation.status}]",
        f"  group:    {conversation.group_key}",
        f"  opened:   {conversation.opened_at:%Y-%m-%d %H:%M:%S} UTC"
        + (
            f", resolved {conversation.resolved_at:%Y-%m-%d %H:%M:%S} UTC" if conversation.resolved_at else ""
        ),
        f"  alerts:   {len(conversation.alerts)} ({len(conversation.firing_fingerprints)} firing)",
    ]
    if conversation.diagnosis is not None:
        d = conversation.diagnosis
        lines += [
            f"  diagnosis (rev {conversation.diagnosis_revision}, {d.method}, {d.priority}, "
            f"confidence {d.confidence:.0%}):",
            f"    {d.root_cause}",
            f"    at {d.affected_file}:{d.line}" if d.affected_file else "    (no file)",
        ]
    if conversation.evidence_summary:
        lines.append("  evidence: " + conversation.evidence_summary.replace("\n", "; "))
    if conversation.seen_before:
        lines.append(f"  memory:   {conversation.seen_before}")
    for said in conversation.feedback:
        why = f": the cause was {said.correction}" if said.correction else ""
        lines.append(f"  feedback: {said.verdict} by {said.by} at {said.at:%H:%M:%S}{why}")
    if conversation.acked_by:
        lines.append(f"  taken by: {conversation.acked_by}")
    if conversation.ticket_key:
        lines.append(f"  ticket:   {conversation.ticket_key} {conversation.ticket_url or ''}".rstrip())
    if conversation.ticket_error:
        lines.append(f"  ticket failed: {conversation.ticket_error}")
    for silence in conversation.silences:
        verb = "silenced" if silence.action == "create" else "unsilenced"
        until = f" until {silence.ends_at:%Y-%m-%d %H:%M} UTC" if silence.ends_at else ""
        state = f"{verb}{until}" if silence.ok else f"{verb.removesuffix('d')} refused: {silence.outcome}"
        ident = f" (silence {silence.silence_id})" if silence.silence_id else ""
        lines.append(f"  {silence.at:%H:%M:%S} {state} by {silence.by}{ident}")
    for turn in conversation.turns:
        lines.append(f"  {turn.at:%H:%M:%S} {turn.sender}: {turn.text}")
        if turn.answer:
            lines.append(f"           -> {turn.answer.splitlines()[0]}")
    lines.append(
        f"  model tokens used: {conversation.tokens_used}, messages kept: {len(conversation.llm_messages)}"
    )
    lines += model_usage_lines(conversation)
    return "\n".join(lines)


def model_usage_lines(conversation: Conversation) -> list[str]:
    """Tokens in and out, the cost (only when a price was configured: never a guess), the loops of
    the model's tool calls and why its conclusion was forced."""
    lines = []
    if conversation.tokens_in or conversation.tokens_out:
        cost = f", cost {usd(conversation.cost_usd)}" if conversation.cost_usd is not None else ""
        tokens = f"{conversation.tokens_in} tokens in, {conversation.tokens_out} out"
        lines.append(f"  model usage: {tokens}{cost}")
    lines += [f"  model loop: {loop}" for loop in conversation.model_loops]
    if conversation.forced_conclusion:
        why = FORCED_BY.get(conversation.forced_conclusion, conversation.forced_conclusion)
        lines.append(f"  conclusion forced: {why}")
    return lines


FORCED_BY = {
    "rounds": "the last round (ONCALL_MAX_ROUNDS)",
    "tokens": "the token budget was spent (ONCALL_TOKEN_BUDGET)",
    "cost": "the cost limit was reached (ONCALL_COST_LIMIT_USD)",
    "loop": "the model repeated its tool calls after a note",
    "repair": "its diagnosis was invalid once and was asked for again",
}


def usd(amount: float) -> str:
    """Cents for most incidents, more digits for the fractions of a cent a short one costs."""
    return f"${amount:.2f}" if amount >= 1 else f"${amount:.4f}"
