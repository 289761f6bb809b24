"""An incident's timeline, derived from its conversation: fired, diagnosed, each reply and what
was done, resolved, with times. The diagnoser puts it in the resolution event (the WhatsApp
message shows it short, ticketing comments it on the ticket), `oncall inspect --timeline` prints it.
Derived, not logged step by step: the conversation already holds every step's time."""

from collections.abc import Sequence

from services.contracts.models import Conversation, TimelineEntry
from services.runtime.text import clip
from services.runtime.times import as_utc

WHAT_CHARS = 160


def timeline_of(conversation: Conversation) -> list[TimelineEntry]:
    c = conversation
    fired = min((a.starts_at for a in c.alerts if a.starts_at), default=c.opened_at)
    entries = [TimelineEntry(at=fired, what=f"fired: {c.title}")]
    if c.diagnosis is not None:
        d = c.diagnosis
        where = f" ({d.affected_file}:{d.line})" if d.affected_file and d.line else ""
        cause = clip(one_line(d.root_cause), WHAT_CHARS)
        what = f"diagnosed ({d.method}, {d.priority}){where}: {cause}"
        entries.append(TimelineEntry(at=c.diagnosed_at or c.opened_at, what=what))
    for turn in c.turns:
        said = f'{turn.sender}: "{clip(one_line(turn.text), 80)}"'
        answer = f" -> {clip(one_line(turn.answer), 80)}" if turn.answer else ""
        entries.append(TimelineEntry(at=turn.at, what=said + answer))
    for silence in c.silences:
        verb = "silenced" if silence.action == "create" else "unsilenced"
        state = verb if silence.ok else f"{verb} refused"
        until = f" until {as_utc(silence.ends_at):%H:%M} UTC" if silence.ends_at and silence.ok else ""
        entries.append(TimelineEntry(at=silence.at, what=f"{state}{until} by {silence.by}"))
    if c.ticket_key:
        entries.append(TimelineEntry(at=c.ticket_at or c.updated_at, what=f"ticket {c.ticket_key}"))
    for feedback in c.feedback:
        why = f": {clip(feedback.correction, 80)}" if feedback.correction else ""
        what = f"diagnosis marked {feedback.verdict} by {feedback.by}{why}"
        entries.append(TimelineEntry(at=feedback.at, what=what))
    if c.resolved_at is not None:
        entries.append(TimelineEntry(at=c.resolved_at, what="resolved"))
    return sorted(entries, key=lambda e: as_utc(e.at))


def one_line(text: str) -> str:
    return " ".join(text.split())


def render(entries: Sequence[TimelineEntry], limit: int | None = None) -> list[str]:
    """`06:02:11 fired: HighErrorRate on checkout`, one per line (the first `limit`, then how many more)."""
    days = {as_utc(e.at).date() for e in entries}
    style = "%H:%M:%S" if len(days) <= 1 else "%Y-%m-%d %H:%M:%S"
    shown = entries if limit is None or len(entries) <= limit else [*entries[: limit - 1], entries[-1]]
    lines = [f"{as_utc(e.at):{style}} {e.what}" for e in shown]
    if len(shown) < len(entries):
        lines.insert(limit - 1 if limit else 0, f"… {len(entries) - len(shown)} more")
    return lines
