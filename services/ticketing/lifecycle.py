"""One ticket per problem. A ticket request for an incident whose problem signature had tickets
before (`TicketRequested.related_tickets`, newest first, from the diagnoser's incident memory):

- the newest such ticket still open (its status category is not done): a comment on it, no new one;
- done less than ONCALL_REOPEN_DAYS ago: reopened (the first JIRA_REOPEN_TRANSITION its workflow
  offers) with a comment;
- done longer ago (or it cannot be reopened, or it is gone): a new ticket, linked to it with
  Jira's "Relates" link type ("relates to").

The incident then has that ticket as its own (records.incident_key), so its resolution comments
there, and a second request for the same incident is a follow-up on it.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from services.contracts.models import TicketCreated, TicketRequested, incident_tag
from services.runtime.text import clip
from services.ticketing import adf
from services.ticketing.adf import Node
from services.ticketing.config import TicketingConfig
from services.ticketing.jira import IssueState, JiraClient, JiraError
from services.ticketing.resolution import pick_transition

log = logging.getLogger("oncall.ticketing.lifecycle")

RELATES = "Relates"  # Jira's default link type: "relates to" both ways

Plan = Literal["comment", "reopen", "new"]


@dataclass(frozen=True)
class Repeat:
    """What to do for a repeat: comment on or reopen `key`, or create a new ticket related to it."""

    plan: Plan
    key: str
    state: IssueState | None


def plan_for(state: IssueState | None, now: datetime, reopen_days: float) -> Plan:
    if state is None:
        return "new"  # deleted, or no longer visible
    if state.category != "done":
        return "comment"
    done_at = state.category_changed
    if done_at is not None and now - done_at < timedelta(days=reopen_days):
        return "reopen"
    return "new"


async def repeat_of(req: TicketRequested, jira: JiraClient, config: TicketingConfig) -> Repeat | None:
    """None when the request names no earlier ticket of its problem."""
    if not req.related_tickets or req.new_ticket:
        return None
    key = req.related_tickets[0]
    try:
        state: IssueState | None = await jira.issue_state(key)
    except JiraError as exc:
        if exc.transient:
            raise
        log.warning("earlier ticket %s of incident %s unreadable (%s): a new one", key, req.incident_id, exc)
        state = None
    return Repeat(plan_for(state, datetime.now(UTC), config.reopen_days), key, state)


async def comment_or_reopen(
    req: TicketRequested, jira: JiraClient, config: TicketingConfig, repeat: Repeat
) -> tuple[str, str | None] | None:
    """Comment on (and, for "reopen", first reopen) the earlier ticket. Returns the note for the
    human and the ticket's status now; None when it could not be reopened (then: a new ticket)."""
    status = repeat.state.status if repeat.state else None
    if repeat.plan == "reopen":
        available = await jira.transitions(repeat.key)
        chosen = next(
            (t for name in config.reopen_transitions if (t := pick_transition(available, name))), None
        )
        if chosen is None:
            offered = ", ".join(t.name for t in available) or "none"
            log.warning("%s: no reopen transition (offered: %s); a new ticket instead", repeat.key, offered)
            return None
        await jira.transition(repeat.key, chosen.id)
        status = chosen.name
    await jira.add_comment(repeat.key, repeat_comment(req, repeat.plan))
    if repeat.plan == "reopen":
        return f"The problem came back: {repeat.key} was done recently, so it was reopened.", status
    return f"The problem came back while {repeat.key} is still open: the incident was added to it.", status


async def link_new(jira: JiraClient, new_key: str, repeat: Repeat) -> str:
    """Relate the new ticket to the earlier one; the note says so (or why not: it is not worth a
    second ticket or a failed request)."""
    try:
        await jira.link_issues(RELATES, new_key, repeat.key)
    except JiraError as exc:
        log.warning("could not link %s to %s: %s", new_key, repeat.key, exc)
        return f"Jira did not link it to the earlier ticket {repeat.key}: {exc.message}"
    return f"Linked to the earlier ticket {repeat.key} (relates to), done longer ago than reopening allows."


def repeat_comment(req: TicketRequested, plan: Plan) -> Node:
    tag = incident_tag(req.incident_id)
    verb = "reopened for" if plan == "reopen" else "also covers"
    lines = [f"The problem came back: incident {tag} ({req.title}). This ticket is {verb} it."]
    if req.diagnosis is not None:
        lines.append(f"Diagnosis: {clip(req.diagnosis.root_cause, 500)}")
    lines.append(f"Asked by {req.requested_by} from WhatsApp.")
    return adf.doc(*(adf.paragraph(adf.text(line)) for line in lines))


def repeat_outcome(
    req: TicketRequested, key: str, url: str, note: str, status: str | None, assignee: str | None
) -> TicketCreated:
    return TicketCreated(
        request_id=req.request_id,
        incident_id=req.incident_id,
        key=key,
        url=url,
        assignee_name=assignee,
        note=note,
        existing=True,
        status=status,
        in_reply_to=req.in_reply_to,
    )
