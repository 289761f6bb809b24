"""WhatsApp texts for the on-call people: pure functions from bus events to message bodies.

WhatsApp renders `*bold*`, `_italic_`, `` `code` ``, `> ` quotes and `- ` lists, but no Markdown
headers or `[text](url)` links, so URLs are written out plainly. Every message about an
incident carries its tag (`#a1b2c3`), which is how a typed reply finds its incident again.
"""

import re
from collections.abc import Iterator
from typing import Final

from services.contracts.models import (
    IncidentDiagnosed,
    IncidentResolved,
    NotifyText,
    TicketCreated,
    TicketFailed,
    incident_tag,
)
from services.runtime.text import clip, format_duration
from services.runtime.timeline import render
from services.runtime.times import as_utc

# Twilio rejects a Body over 1600 characters (error 21617).
MAX_MESSAGE_CHARS: Final = 1600
# Bounds on model-written fields, so one verbose diagnosis does not become ten messages.
MAX_FIELD_CHARS: Final = 1000
MAX_LIST_ITEM_CHARS: Final = 300
MAX_NEXT_STEPS: Final = 8
MAX_EVIDENCE_LINES: Final = 3
MAX_EVIDENCE_CHARS: Final = 200

REPLY_HINT: Final = "Reply to this message: `create jira task and assign to <name>`, `status`, `help`"
# A template variable is one line (WhatsApp refuses newlines and tabs in them), and template
# plus variables stay within 1024 characters (error 63021): the invitation is kept short.
MAX_INVITE_CHARS: Final = 200
MAX_QUOTE_CHARS: Final = 120
MAX_TIMELINE_CHARS: Final = 100
_WHITESPACE = re.compile(r"\s+")


def format_diagnosis(event: IncidentDiagnosed) -> str:
    d = event.diagnosis
    lines = [f"🚨 *Incident diagnosis* {incident_tag(event.incident_id)}", f"*{_one_line(event.title)}*"]
    if event.seen_before:  # incident memory: the first thing the on-call person needs to know
        lines.append(f"🔁 {clip(_one_line(event.seen_before), MAX_FIELD_CHARS)}")
    priority = f"*Priority:* {d.priority}"
    if event.severity:
        priority += f" · *Severity:* {_one_line(event.severity)}"
    lines.append(priority)
    if event.alert_count > 1:
        lines.append(f"*Alerts firing:* {event.alert_count}")

    lines += ["", "*Root cause:*", clip(d.root_cause.strip(), MAX_FIELD_CHARS)]
    facts = []
    if d.affected_file:
        where = f"{d.affected_file}:{d.line}" if d.line else d.affected_file
        facts.append(f"*File:* `{_one_line(where)}`")
    if event.error_rate is not None:
        facts.append(f"*Error rate:* {format_ratio(event.error_rate)}")
    if facts:
        lines += ["", *facts]

    evidence = [e for e in (_one_line(e) for e in d.evidence) if e][:MAX_EVIDENCE_LINES]
    if evidence:
        lines += ["", "*Evidence:*", *(f"> {clip(e, MAX_EVIDENCE_CHARS)}" for e in evidence)]
    if d.suggested_fix.strip():
        lines += ["", "*Suggested fix:*", clip(d.suggested_fix.strip(), MAX_FIELD_CHARS)]
    steps = [s for s in (_one_line(s) for s in d.next_steps) if s][:MAX_NEXT_STEPS]
    if steps:
        lines += ["", "*Next steps:*", *(f"- {clip(s, MAX_LIST_ITEM_CHARS)}" for s in steps)]

    if d.unverified:
        shown = ", ".join(clip(_one_line(c), MAX_EVIDENCE_CHARS) for c in d.unverified[:MAX_EVIDENCE_LINES])
        lines += ["", f"⚠️ *Not found in the evidence (unverified):* {shown}"]
    if d.rules_view:
        lines += ["", "*The evidence read by the rules says otherwise:*", clip(d.rules_view, MAX_FIELD_CHARS)]

    notes = []
    if d.method == "rules":
        why = f": {clip(_one_line(d.fallback_reason), MAX_LIST_ITEM_CHARS)}" if d.fallback_reason else ""
        notes.append(f"_Rule-based diagnosis{why}_")
    elif d.model:
        notes.append(f"_Diagnosis by the model {_one_line(d.model)}, confidence {d.confidence:.0%}_")
    if event.truncated_alerts > 0:
        notes.append(
            f"⚠️ Alertmanager left out {event.truncated_alerts} more alert(s) of this group; "
            "this diagnosis is based on the ones it sent."
        )
    if event.runbook_url:
        notes.append(f"Runbook: {event.runbook_url}")
    if event.generator_url:
        notes.append(f"Graph: {event.generator_url}")
    if notes:
        lines += ["", *notes]
    lines += ["", REPLY_HINT]
    return "\n".join(lines)


def format_resolved(event: IncidentResolved) -> str:
    lines = [f"✅ *Resolved* {incident_tag(event.incident_id)}", f"*{_one_line(event.title)}*"]
    resolved_at = as_utc(event.resolved_at)
    if event.started_at is not None:
        started_at = as_utc(event.started_at)
        lines.append(
            f"Lasted {format_duration((resolved_at - started_at).total_seconds())} "
            f"({started_at:%H:%M} → {resolved_at:%H:%M} UTC)."
        )
    else:
        lines.append(f"Resolved at {resolved_at:%H:%M} UTC.")
    if event.ticket_key:
        lines.append(f"Ticket: {event.ticket_key} {event.ticket_url or ''}".rstrip())
    if event.timeline:  # short: the ticket's comment and `oncall inspect --timeline` have all of it
        lines += [
            "",
            "*Timeline (UTC):*",
            *(clip(line, MAX_TIMELINE_CHARS) for line in render(event.timeline, 8)),
        ]
    return "\n".join(lines)


def format_ticket_created(event: TicketCreated) -> str:
    lines = [
        f"🎫 *Jira task {'updated' if event.existing else 'created'}* {incident_tag(event.incident_id)}",
        f"*{event.key}* {event.url}".rstrip(),
    ]
    if event.assignee_name:
        lines.append(f"Assigned to {event.assignee_name}")
    elif not event.existing:
        lines.append("Unassigned")
    if event.note:
        lines.append(clip(event.note.strip(), MAX_FIELD_CHARS))
    return "\n".join(lines)


def format_ticket_failed(event: TicketFailed) -> str:
    return "\n".join(
        [
            f"⚠️ *Jira task not created* {incident_tag(event.incident_id)}",
            clip(event.reason.strip(), MAX_FIELD_CHARS) or "No reason was given.",
            "",
            "Reply `create jira task and assign to <name>` to try again.",
        ]
    )


def format_text(event: NotifyText) -> str:
    text = event.text.strip()
    if event.incident_id is None:
        return text
    tag = incident_tag(event.incident_id)
    return text if tag in text else f"{text}\n\n{tag}"


def invitation(incident_id: str | None, headline: str) -> str:
    """The one-line variable of the template sent when the 24-hour window is closed: a template
    cannot carry our free text, so it names the incident and invites a reply (which reopens
    the window)."""
    line = _one_line(headline)
    if incident_id is not None and incident_tag(incident_id) not in line:
        line = f"{incident_tag(incident_id)} {line}".strip()
    return clip(line, MAX_INVITE_CHARS)


def first_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.strip()), "")


def with_asker(answer: str, sender: str, profile_name: str | None, question: str) -> str:
    """The answer headed by who asked what, so that every on-call person reading it knows which
    colleague's request it answers. The number is shown masked beside the WhatsApp profile name:
    the name is whatever the person typed in WhatsApp, the number is what Twilio vouches for."""
    who = f"{_one_line(profile_name)} ({mask_number(sender)})" if profile_name else mask_number(sender)
    quote = clip(_one_line(question), MAX_QUOTE_CHARS)
    header = f"↩️ *{who}:* “{quote}”" if quote else f"↩️ *{who}*"
    return f"{header}\n\n{answer}"


def mask_number(number: str) -> str:
    """Enough of a number to tell colleagues apart, not the whole of it: +1555…0001."""
    return number if len(number) < 10 else f"{number[:5]}…{number[-4:]}"


def format_ratio(ratio: float) -> str:
    """0.2345 -> "23.5%" (error rates travel as errors/requests)."""
    if 0 < ratio < 0.001:
        return "<0.1%"
    return f"{ratio * 100:.1f}%"


# --- splitting ---------------------------------------------------------------------------


def split_message(text: str, limit: int = MAX_MESSAGE_CHARS, *, tag: str | None = None) -> list[str]:
    """Split `text` at line boundaries into parts of at most `limit` characters, in order.

    Each part of a split text ends with a "(2/3)" marker, followed by `tag` when the part does
    not already show it, so every message can be matched to its incident. A single line longer
    than a part is cut at a space where possible.
    """
    if text_length(text) <= limit:
        return [text]
    digits = 1
    while True:
        widest_marker = _marker(10**digits - 1, 10**digits - 1, tag)
        room = limit - text_length(widest_marker) - 1  # -1: the newline before the marker
        if room < 2:  # a part must hold at least one character of any width
            raise ValueError(f"limit {limit} leaves no room for text beside the part marker")
        chunks = _pack(text, room)
        # More parts than the reserved marker width (e.g. 10 parts with room for "(9/9)"): redo.
        if len(str(len(chunks))) <= digits:
            break
        digits += 1
    total = len(chunks)
    return [
        f"{chunk}\n{_marker(i, total, tag if tag and tag not in chunk else None)}"
        for i, chunk in enumerate(chunks, start=1)
    ]


def text_length(text: str) -> int:
    """Length in UTF-16 code units: never less than the number of characters, so a part within
    this length is within Twilio's limit however it counts (an emoji is 2 units)."""
    return sum(_char_length(c) for c in text)


def _char_length(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def _marker(index: int, total: int, tag: str | None) -> str:
    return f"({index}/{total}) {tag}" if tag else f"({index}/{total})"


def _pack(text: str, room: int) -> list[str]:
    """Whole sections (blank-line separated) where they fit, else their lines, else cut lines."""
    blocks: list[str] = []
    for block in (b.strip("\n") for b in text.split("\n\n")):
        if text_length(block) <= room:
            blocks.append(block)
        else:
            lines = [piece for line in block.split("\n") for piece in _cut_line(line, room)]
            blocks.extend(_join(lines, "\n", room))
    return [chunk for chunk in _join([b for b in blocks if b.strip()], "\n\n", room) if chunk.strip()]


def _join(pieces: list[str], separator: str, room: int) -> list[str]:
    """Greedily join pieces (each within `room`) into as few chunks within `room` as possible."""
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        candidate = f"{current}{separator}{piece}" if current else piece
        if current and text_length(candidate) > room:
            chunks.append(current)
            candidate = piece
        current = candidate
    if current:
        chunks.append(current)
    return chunks


def _cut_line(line: str, room: int) -> Iterator[str]:
    while text_length(line) > room:
        end, used = 0, 0
        while used + _char_length(line[end]) <= room:
            used += _char_length(line[end])
            end += 1
        space = line.rfind(" ", 0, end)
        cut = space if space > room // 2 else end
        yield line[:cut].rstrip()
        line = line[cut:].lstrip()
    yield line


# --- helpers -----------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()
