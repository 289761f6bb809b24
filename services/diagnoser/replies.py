"""Rule-based understanding of a human's WhatsApp reply (used when no model is configured)."""

import re
from dataclasses import dataclass
from typing import Literal

from services.contracts.models import Priority

IntentKind = Literal["ticket", "silence", "unsilence", "ack", "resolve", "status", "help"]

_TICKET = re.compile(r"\b(jira|ticket|task|issue)\b", re.I)
_ASSIGNEE = re.compile(
    r"\bassign(?:ed|ee)?\s*(?:it\s+|this\s+)?(?:to\s+|:\s*)(?P<name>[^\W\d_][\w.'\-]*(?:\s+[^\W\d_][\w.'\-]*)?)",
    re.I,
)
_NOT_A_NAME = {"with", "and", "priority", "please", "as", "for", "p1", "p2", "p3", "p4"}
_NEW_TICKET = re.compile(r"\b(new|another|separate|second)\s+(jira\s+)?(ticket|task|issue)\b", re.I)
_PRIORITY = re.compile(r"\b(?:priority\s*)?P([1-4])\b", re.I)
_UNSILENCE = re.compile(r"\b(unsilence|un-silence|unmute|remove (the )?silence)\b", re.I)
_SILENCE = re.compile(r"\b(silence|mute|snooze)\b", re.I)
_DURATION = re.compile(
    r"(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>m|min|mins|minutes?|h|hr|hrs|hours?|d|days?)\b", re.I
)
_ACK = re.compile(r"^\s*(ack|acknowledged?|on it|taking (it|this)|mine)\b", re.I)
_RESOLVE = re.compile(r"\b(resolve[ds]?|fixed|close (it|this|the incident))\b", re.I)
_STATUS = re.compile(r"\b(status|error rate|how (is|are) (it|things))\b|\bnow\?*\s*$", re.I)

DEFAULT_SILENCE_MINUTES = 120
HELP_TEXT = (
    "I can do these (reply to the incident message, or include its #tag):\n"
    "- *create jira task and assign to Ravi* (optionally *priority P1*)\n"
    "- *silence for 2h* / *unsilence*\n"
    "- *ack*: you take the incident\n"
    "- *status*: the current error rate\n"
    "- *resolve*: close the incident\n"
    "- *help*: this list"
)


@dataclass(frozen=True)
class Intent:
    kind: IntentKind
    assignee: str | None = None
    priority: Priority | None = None
    minutes: int | None = None
    new_ticket: bool = False


def parse_reply(text: str) -> Intent:
    """The first rule that matches wins; the order puts the most specific first."""
    if _TICKET.search(text):
        return Intent(
            "ticket",
            assignee=assignee_in(text),
            priority=priority_in(text),
            new_ticket=bool(_NEW_TICKET.search(text)),
        )
    if _UNSILENCE.search(text):
        return Intent("unsilence")
    if _SILENCE.search(text):
        return Intent("silence", minutes=minutes_in(text) or DEFAULT_SILENCE_MINUTES)
    if _ACK.search(text):
        return Intent("ack")
    if _RESOLVE.search(text):
        return Intent("resolve")
    if _STATUS.search(text.strip()):
        return Intent("status")
    return Intent("help")


def assignee_in(text: str) -> str | None:
    match = _ASSIGNEE.search(text)
    if not match:
        return None
    # Stop at the first filler word: "assign to ravi with priority P1" -> "ravi".
    name_words: list[str] = []
    for word in match.group("name").split():
        if word.lower() in _NOT_A_NAME:
            break
        name_words.append(word)
    return " ".join(name_words).strip(".,!?'\"") or None


def priority_in(text: str) -> Priority | None:
    match = _PRIORITY.search(text)
    if not match:
        return None
    value = f"P{match.group(1)}"
    return value if value in ("P1", "P2", "P3", "P4") else None  # type: ignore[return-value]


def minutes_in(text: str) -> int | None:
    """ "2h", "90 minutes", "1.5 hours", "1 day" -> minutes."""
    match = _DURATION.search(text)
    if not match:
        return None
    amount = float(match.group("n"))
    unit = match.group("unit").lower()
    factor = 1 if unit.startswith("m") else 60 if unit.startswith("h") else 24 * 60
    return max(1, round(amount * factor))
