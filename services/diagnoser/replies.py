"""Rule-based understanding of a human's WhatsApp reply (used when no model is configured)."""

import re
from dataclasses import dataclass
from typing import Literal

from services.contracts.models import Priority

IntentKind = Literal["ticket", "status", "help"]

_TICKET = re.compile(r"\b(jira|ticket|task|issue)\b", re.I)
_ASSIGNEE = re.compile(
    r"\bassign(?:ed|ee)?\s*(?:it\s+|this\s+)?(?:to\s+|:\s*)(?P<name>[^\W\d_][\w.'\-]*(?:\s+[^\W\d_][\w.'\-]*)?)",
    re.I,
)
_NOT_A_NAME = {"with", "and", "priority", "please", "as", "for", "p1", "p2", "p3", "p4"}
_PRIORITY = re.compile(r"\b(?:priority\s*)?P([1-4])\b", re.I)
_STATUS = re.compile(r"\b(status|error rate|how (is|are) (it|things)|now\??$)", re.I)

HELP_TEXT = (
    "I can do these (reply to the incident message, or include its #tag):\n"
    "- *create jira task and assign to Ravi* (optionally *priority P1*)\n"
    "- *status*: the current error rate\n"
    "- *help*: this list"
)


@dataclass(frozen=True)
class Intent:
    kind: IntentKind
    assignee: str | None = None
    priority: Priority | None = None


def parse_reply(text: str) -> Intent:
    if _TICKET.search(text):
        return Intent("ticket", assignee=assignee_in(text), priority=priority_in(text))
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
