"""Ticketing's settings, parsed once at wiring so that a bad value stops the service at start."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import get_args

from services.contracts.models import Priority
from services.ticketing.settings import TicketingSettings

PRIORITIES: tuple[Priority, ...] = get_args(Priority)
# What JIRA_PRIORITY_MAP defaults to: the names of Jira Cloud's default priority scheme.
DEFAULT_PRIORITY_NAMES: Mapping[Priority, str] = {"P1": "Highest", "P2": "High", "P3": "Medium", "P4": "Low"}
# How long after a create was sent its issue may still turn up in the label search: the create
# itself (the client's 10 s timeout, its retries of provably unprocessed answers within 30 s) plus
# the lag of Jira's search index behind its writes (seconds, at times a minute).
CREATE_SETTLE_SECONDS = 100.0
SEARCH_POLL_SECONDS = 3.0


@dataclass(frozen=True)
class TicketingConfig:
    project_key: str | None
    issue_type: str = "Task"
    # P1..P4 -> the Jira priority name; a priority left out is not sent (Jira's default applies).
    priority_names: Mapping[Priority, str] = field(default_factory=lambda: dict(DEFAULT_PRIORITY_NAMES))
    # Name of the workflow transition applied when the incident resolves; None = comment only.
    resolve_transition: str | None = None
    # One ticket per problem (lifecycle.py): transition names tried to reopen, and for how long.
    reopen_transitions: tuple[str, ...] = ("Reopen", "To Do")
    reopen_days: float = 7.0
    # A create whose outcome is unknown is looked for by its label this long before a second one.
    create_settle_seconds: float = CREATE_SETTLE_SECONDS
    search_poll_seconds: float = SEARCH_POLL_SECONDS

    @classmethod
    def from_settings(cls, settings: TicketingSettings) -> "TicketingConfig":
        return cls(
            project_key=settings.jira_project_key,
            issue_type=settings.jira_issue_type,
            priority_names=parse_priority_map(settings.jira_priority_map),
            resolve_transition=(settings.jira_resolve_transition or "").strip() or None,
            reopen_transitions=tuple(
                n.strip() for n in settings.jira_reopen_transition.split(",") if n.strip()
            ),
            reopen_days=settings.reopen_days,
        )


def parse_priority_map(text: str) -> dict[Priority, str]:
    """`"P1=Highest,P2=High"` -> {"P1": "Highest", "P2": "High"}. Empty = send no priority."""
    names: dict[Priority, str] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        ours, sep, theirs = (part.strip() for part in entry.partition("="))
        priority = next((p for p in PRIORITIES if p == ours.upper()), None)
        if not sep or not theirs or priority is None:
            raise ValueError(
                f"JIRA_PRIORITY_MAP: {entry!r} is not `<P1..P4>=<Jira priority name>`, "
                'e.g. "P1=Highest,P2=High,P3=Medium,P4=Low"'
            )
        if priority in names:
            raise ValueError(f"JIRA_PRIORITY_MAP: {priority} is mapped twice")
        names[priority] = theirs
    return names
