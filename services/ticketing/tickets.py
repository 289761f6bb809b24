"""Ticket logic: a TicketRequested becomes one Jira issue (or a failure in plain words), once per request."""

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from services.contracts import streams, subjects
from services.contracts.models import TicketCreated, TicketFailed, TicketRequested
from services.runtime import metrics
from services.runtime.bus import Bus
from services.ticketing import adf
from services.ticketing.jira import JiraClient, JiraError, JiraUser

log = logging.getLogger("oncall.ticketing")

NOT_CONFIGURED = "Jira is not configured: set JIRA_URL, JIRA_EMAIL, JIRA_API_TOKEN and JIRA_PROJECT_KEY"
# Jira's summary limit; Alertmanager's notifier truncates the same way (maxSummaryLenRunes).
MAX_SUMMARY_CHARS = 255
MAX_LABEL_CHARS = 255
BASE_LABEL = "oncall-agent"
MAX_CANDIDATES_LISTED = 5
# NATS KV keys: [-_=.a-zA-Z0-9] in dot-separated, non-empty tokens.
_NATS_KEY = re.compile(r"[-_=a-zA-Z0-9]+(\.[-_=a-zA-Z0-9]+)*")
_NOT_KEY_CHARS = re.compile(r"[^-_=a-zA-Z0-9]+")


@dataclass(frozen=True)
class Assignment:
    """Who the ticket goes to; `account_id` None = unassigned, with `note` saying why."""

    account_id: str | None = None
    display_name: str | None = None
    note: str | None = None


# --- the bus handler ---------------------------------------------------------------------------


async def handle_ticket_request(
    req: TicketRequested, bus: Bus, jira: JiraClient | None, project_key: str | None, issue_type: str
) -> TicketCreated | TicketFailed:
    """Open the ticket unless this request already has one, then publish the outcome.

    A redelivered or replayed request finds its ticket in KV and is answered without calling Jira.
    A transient Jira error propagates so the consumer redelivers with backoff.
    """
    key = delivery_key(req.request_id)
    done, _ = await bus.kv_get(streams.DELIVERIES, key, TicketCreated)
    if done is not None:
        result: TicketCreated | TicketFailed = done
        outcome = "duplicate"
    else:
        try:
            result = await open_ticket(req, jira, project_key, issue_type)
        except JiraError:
            metrics.tickets.labels(outcome="transient_error").inc()
            raise
        if isinstance(result, TicketCreated):
            created = result
            # Keep a ticket stored by a concurrent delivery rather than overwrite it.
            result = (
                await bus.kv_update(
                    streams.DELIVERIES, key, TicketCreated, lambda current: None if current else created
                )
                or created
            )
        outcome = "created" if isinstance(result, TicketCreated) else "failed"
    token = key.removeprefix("ticket.")
    if isinstance(result, TicketCreated):
        await bus.publish_event(subjects.TICKETS_CREATED, result, msg_id=f"ticket-created-{token}")
    else:
        await bus.publish_event(subjects.TICKETS_FAILED, result, msg_id=f"ticket-failed-{token}")
    metrics.tickets.labels(outcome=outcome).inc()
    return result


def delivery_key(request_id: str) -> str:
    """KV key of a request's ticket. An id outside NATS's key alphabet is sanitised and given a hash
    suffix, so two different ids never share a key."""
    if _NATS_KEY.fullmatch(request_id) and len(request_id) <= 128:
        return f"ticket.{request_id}"
    readable = _NOT_KEY_CHARS.sub("_", request_id)[:64]
    return f"ticket.{readable}-{hashlib.sha256(request_id.encode()).hexdigest()[:16]}"


# --- opening a ticket -------------------------------------------------------------------------


async def open_ticket(
    req: TicketRequested, jira: JiraClient | None, project_key: str | None, issue_type: str
) -> TicketCreated | TicketFailed:
    """Create the Jira issue for `req`. Permanent Jira errors come back as TicketFailed; transient
    ones (429, 5xx, network) raise JiraError."""
    if jira is None or not project_key:
        return TicketFailed(request_id=req.request_id, incident_id=req.incident_id, reason=NOT_CONFIGURED)
    try:
        assignment = await resolve_assignee(jira, project_key, req.assignee)
        issue = await jira.create_issue(issue_fields(req, project_key, issue_type, assignment))
    except JiraError as exc:
        if exc.transient:
            raise
        log.warning("ticket for request %s refused by Jira: %s", req.request_id, exc)
        return TicketFailed(
            request_id=req.request_id,
            incident_id=req.incident_id,
            reason=f"Jira did not create the ticket: {exc.message}",
        )
    log.info("created %s for incident %s (request %s)", issue.key, req.incident_id, req.request_id)
    return TicketCreated(
        request_id=req.request_id,
        incident_id=req.incident_id,
        key=issue.key,
        url=jira.browse_url(issue.key),
        assignee_name=assignment.display_name,
        assignee_account_id=assignment.account_id,
        note=assignment.note,
    )


async def resolve_assignee(jira: JiraClient, project_key: str, wanted: str | None) -> Assignment:
    """The asked-for person as a Jira accountId. A failed lookup leaves the ticket unassigned
    rather than lose it; only transient errors propagate."""
    name = (wanted or "").strip()
    if not name:
        return Assignment()
    try:
        users = await jira.find_assignable_users(project_key, name)
    except JiraError as exc:
        if exc.transient:
            raise
        return Assignment(
            note=f"Could not look up '{name}' in Jira ({exc.message}); the ticket is unassigned."
        )
    return choose_assignee(name, users, project_key)


def choose_assignee(wanted: str, users: Sequence[JiraUser], project_key: str) -> Assignment:
    """One match wins. Among several, an exact email, full name or first name (case-insensitive)
    wins if it singles one person out; otherwise nobody is guessed."""
    if not users:
        return Assignment(
            note=f"Nobody called '{wanted}' can be assigned in {project_key}; the ticket is unassigned."
        )
    if len(users) == 1:
        return _assigned(users[0])
    folded = wanted.casefold()
    tiers = (
        [u for u in users if u.email and u.email.casefold() == folded],
        [u for u in users if u.display_name.casefold() == folded],
        [u for u in users if _first_name(u) == folded],
    )
    for tier in tiers:
        if len(tier) == 1:
            return _assigned(tier[0])
        if tier:
            return _ambiguous(wanted, tier, project_key)
    return _ambiguous(wanted, users, project_key)


def _first_name(user: JiraUser) -> str:
    words = user.display_name.split()
    return words[0].casefold() if words else ""


def _assigned(user: JiraUser) -> Assignment:
    return Assignment(account_id=user.account_id, display_name=user.display_name or user.account_id)


def _ambiguous(wanted: str, candidates: Sequence[JiraUser], project_key: str) -> Assignment:
    names = [u.display_name or u.account_id for u in candidates[:MAX_CANDIDATES_LISTED]]
    more = len(candidates) - len(names)
    listed = ", ".join(names) + (f" and {more} more" if more > 0 else "")
    return Assignment(
        note=f"Several people called '{wanted}' can be assigned in {project_key} ({listed}); "
        "the ticket is unassigned."
    )


def issue_fields(
    req: TicketRequested, project_key: str, issue_type: str, assignment: Assignment
) -> dict[str, Any]:
    """The `fields` of the create call. Users are referenced by accountId only: Jira Cloud rejects `name`."""
    fields: dict[str, Any] = {
        "project": {"key": project_key},
        "issuetype": {"name": issue_type},
        "summary": summary_for(req),
        "description": adf.diagnosis_description(req),
        "labels": [BASE_LABEL, _label(f"incident-{req.incident_id}")],
    }
    if assignment.account_id:
        fields["assignee"] = {"accountId": assignment.account_id}
    return fields


def summary_for(req: TicketRequested) -> str:
    """`[P2] <title>` on one line (Jira rejects newlines) within Jira's 255 characters."""
    summary = " ".join(f"[{req.priority}] {req.title}".split())
    if len(summary) > MAX_SUMMARY_CHARS:
        summary = summary[: MAX_SUMMARY_CHARS - 1] + "…"
    return summary


def _label(value: str) -> str:
    # Jira labels cannot contain spaces and are at most 255 characters.
    return "-".join(value.split())[:MAX_LABEL_CHARS]
