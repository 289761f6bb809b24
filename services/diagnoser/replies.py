"""Rule-based understanding of a human's WhatsApp reply (used when no model is configured)."""

import re
from dataclasses import dataclass
from typing import Literal

from services.contracts.models import Priority

IntentKind = Literal["ticket", "silence", "unsilence", "ack", "resolve", "status", "help", "unknown"]

_TICKET = re.compile(r"\b(jira|ticket|task|issue)\b", re.I)
# One or two words of a name, "@" allowed in front: "Ravi", "ravi kumar", "@priya".
_NAME = r"@?(?P<name>[^\W\d_][\w.'\-]*(?:\s+[^\W\d_][\w.'\-]*)?)"
# "assign to ravi", "assign it to Priya", "assignee: ravi", "assign ravi", "reassign to ravi".
_ASSIGNEE = re.compile(
    r"\b(?:re)?assign(?:ed|ee)?\b\s*"
    r"(?:(?:it|this|that|the\s+(?:ticket|task|issue))\s+)?(?:to\b\s*|:\s*)?" + _NAME,
    re.I,
)
# "create a ticket for priya", "jira task for Ravi Kumar".
_TICKET_FOR = re.compile(r"\b(?:jira|ticket|task|issue)\b[^,;.!?]*?\bfor\s+" + _NAME, re.I)
# Words that end a name, or that are no name at all ("assign it to me", "a ticket for this").
_NOT_A_NAME = {
    "with", "and", "priority", "please", "as", "for", "to", "p1", "p2", "p3", "p4",
    "it", "this", "that", "the", "a", "an", "me", "us", "him", "her", "them", "someone", "somebody",
    "incident", "alert", "now", "asap", "today", "tomorrow", "new", "another",
}  # fmt: skip
_HELP = re.compile(r"^\s*(help|\?+|commands|menu|what can you do)\s*[?!.]*\s*$", re.I)
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
    "- *create jira task and assign to Ravi* (optionally *priority P1*), or *ticket for Ravi*\n"
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
    """The first rule that matches wins; the order puts the most specific first. Naming an
    assignee is asking for the incident's ticket ("assign it to priya"). What no rule
    understands is "unknown", told apart from asking for help."""
    if _TICKET.search(text) or assignee_in(text):
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
    if _HELP.search(text):
        return Intent("help")
    return Intent("unknown")


def not_understood(text: str) -> str:
    """The answer to a reply no rule understands: their words, then what can be said."""
    said = " ".join(text.split())
    head = f'I did not understand "{said}".' if said else "Your message had no text I could read."
    return f"{head}\n\n{HELP_TEXT}"


def assignee_in(text: str) -> str | None:
    """Who the ticket is for: "assign (it) to X" first, else "ticket for X"."""
    for pattern in (_ASSIGNEE, _TICKET_FOR):
        for match in pattern.finditer(text):
            name = _name_of(match.group("name"))
            if name:
                return name
    return None


def _name_of(words: str) -> str | None:
    # Stop at the first filler word: "assign to ravi with priority P1" -> "ravi".
    name_words: list[str] = []
    for word in words.split():
        if word.lower().strip(".,!?'\"") in _NOT_A_NAME:
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
