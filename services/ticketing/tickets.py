"""Ticket requests: one Jira issue per incident, a comment on it for every further request, a question
on WhatsApp when the assignee is ambiguous, and each outcome once, whatever gets redelivered.

Idempotency (keys in `records`): the request's outcome in KV answers a replay without Jira; the intent
written before a create lets a redelivery after a crash find the issue by its request label instead of
creating a second one.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from services.contracts import streams, subjects
from services.contracts.models import NotifyText, Priority, TicketCreated, TicketFailed, TicketRequested
from services.runtime.bus import Bus
from services.runtime.outbound import provably_unprocessed
from services.runtime.text import clip
from services.ticketing import adf, comments, lifecycle, metrics, records
from services.ticketing.assignees import Ambiguous, Assignment, choice_question, resolve_assignee
from services.ticketing.config import TicketingConfig
from services.ticketing.jira import JiraClient, JiraError
from services.ticketing.records import IncidentTicket, TicketIntent

log = logging.getLogger("oncall.ticketing")

NOT_CONFIGURED = "Jira is not configured: set JIRA_URL, JIRA_EMAIL, JIRA_API_TOKEN and JIRA_PROJECT_KEY"
# Jira's summary limit; Alertmanager's notifier truncates the same way (maxSummaryLenRunes).
MAX_SUMMARY_CHARS = 255

Outcome = TicketCreated | TicketFailed | NotifyText


# --- the bus handler ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Acted:
    ticket: IncidentTicket  # the incident's ticket as it now stands
    outcome: TicketCreated
    action: Literal["created", "commented", "recovered"]


class Refused(Exception):
    """Jira turned the request down for good; the message is the reason for the human."""


async def handle_ticket_request(
    req: TicketRequested, bus: Bus, jira: JiraClient | None, config: TicketingConfig
) -> Outcome:
    """Act on the request unless it already has its ticket, then publish the outcome.

    A transient Jira error propagates so the consumer redelivers with backoff.
    """
    done, _ = await bus.kv_get(streams.DELIVERIES, records.result_key(req.request_id), TicketCreated)
    if done is not None:
        await _publish(bus, done)  # the same Nats-Msg-Id: a no-op unless the first publish was lost
        metrics.tickets.labels(outcome="duplicate").inc()
        return done
    if jira is None or not config.project_key:
        outcome: Outcome = _failed(req, NOT_CONFIGURED)
        metrics.tickets.labels(outcome="failed").inc()
    else:
        try:
            outcome = await act(req, bus, jira, config.project_key, config)
        except JiraError:
            metrics.tickets.labels(outcome="transient_error").inc()
            raise
    await _publish(bus, outcome)
    return outcome


async def act(
    req: TicketRequested, bus: Bus, jira: JiraClient, project_key: str, config: TicketingConfig
) -> Outcome:
    """Ask who is meant, or create the incident's ticket, or comment on the one it has, and record it.
    Only transient Jira errors raise."""
    assignment = await resolve_assignee(jira, project_key, req.assignee)
    if isinstance(assignment, Ambiguous):
        metrics.tickets.labels(outcome="asked").inc()
        return NotifyText(
            notification_id=f"ticket-choice-{records.token(req.request_id)}",
            incident_id=req.incident_id,
            text=choice_question(assignment, req.new_ticket),
            in_reply_to=req.in_reply_to,  # final: the person answers with a new reply
        )
    try:
        acted = await _on_repeat(req, bus, jira, project_key, config, assignment)
        acted = acted or await _act_on_ticket(req, bus, jira, project_key, config, assignment)
        acted = await _linked(req, jira, acted)
    except JiraError as exc:  # a refused search
        if exc.transient:
            raise
        return _refused(req, f"Jira refused to look for the incident's ticket: {exc.message}")
    except Refused as exc:
        return _refused(req, str(exc))
    await records.put(bus, records.incident_key(req.incident_id), acted.ticket)
    # The outcome last: it marks the request done. Keep one a concurrent delivery stored first.
    stored = await bus.kv_update(
        streams.DELIVERIES,
        records.result_key(req.request_id),
        TicketCreated,
        lambda current: None if current else acted.outcome,
    )
    metrics.tickets.labels(outcome=acted.action).inc()
    return stored or acted.outcome


async def _act_on_ticket(
    req: TicketRequested,
    bus: Bus,
    jira: JiraClient,
    project_key: str,
    config: TicketingConfig,
    assignment: Assignment,
) -> Acted:
    intent, _ = await bus.kv_get(streams.DELIVERIES, records.intent_key(req.request_id), TicketIntent)
    if intent is not None:
        # An earlier delivery sent the create, and died or lost Jira's answer before recording it.
        recovered = await _recover(req, bus, jira, project_key, config, assignment, intent)
        if recovered is not None:
            return recovered
    existing = None
    if not req.new_ticket:
        existing = await records.find_incident_ticket(bus, jira, project_key, req.incident_id)
    if existing is not None:
        try:
            return await follow_up(req, jira, existing, assignment, config)
        except JiraError as exc:
            if exc.transient:
                raise
            raise Refused(f"Jira did not update {existing.key}: {exc.message}") from exc
    if intent is None:
        racing = await records.claim_intent(bus, req.request_id, req.incident_id)
        if racing is not None:  # another delivery is creating it right now
            recovered = await _recover(req, bus, jira, project_key, config, assignment, racing)
            if recovered is not None:
                return recovered
    try:
        return await create(req, jira, project_key, assignment, config)
    except JiraError as exc:
        if provably_unprocessed(exc):  # nothing was created: the next try need not look for it
            await bus.kv_delete(streams.DELIVERIES, records.intent_key(req.request_id))
        if exc.transient:
            raise  # after a lost answer the intent stays: the next delivery looks before creating
        await bus.kv_delete(streams.DELIVERIES, records.intent_key(req.request_id))  # nothing was created
        raise Refused(f"Jira did not create the ticket: {exc.message}") from exc


async def _recover(
    req: TicketRequested,
    bus: Bus,
    jira: JiraClient,
    project_key: str,
    config: TicketingConfig,
    assignment: Assignment,
    intent: TicketIntent,
) -> Acted | None:
    """The issue an earlier delivery's create made, looked for by the request's label as long as
    Jira's search may lag behind it; None when there is none and this caller renewed the intent,
    so that it creates the issue (a delivery that finds the intent renewed by another looks for
    that one's issue in turn)."""
    label = records.request_label(req.request_id)
    while True:
        key = await records.wait_for_created(
            jira, project_key, label, intent, config.create_settle_seconds, config.search_poll_seconds
        )
        if key is not None:
            break
        if await records.renew_intent(bus, req.request_id, intent):
            return None
        current, _ = await bus.kv_get(streams.DELIVERIES, records.intent_key(req.request_id), TicketIntent)
        if current is None:  # refused and given up meanwhile: announce ours
            current = await records.claim_intent(bus, req.request_id, req.incident_id)
            if current is None:
                return None
        intent = current
    log.info("found %s, created by an earlier delivery of request %s", key, req.request_id)
    ticket = IncidentTicket(key=key, url=jira.browse_url(key), priority=req.priority)
    return Acted(ticket, _created(req, ticket, assignment, [assignment.note]), "recovered")


# --- one ticket per problem (lifecycle.py) -------------------------------------------------------


async def _on_repeat(
    req: TicketRequested,
    bus: Bus,
    jira: JiraClient,
    project_key: str,
    config: TicketingConfig,
    assignment: Assignment,
) -> Acted | None:
    """A repeat of a known problem, without a ticket of its own yet: a comment on the earlier
    ticket while it is open, or reopened when done recently; None: the usual path (a new ticket)."""
    if not req.related_tickets or req.new_ticket:
        return None
    if await records.find_incident_ticket(bus, jira, project_key, req.incident_id) is not None:
        return None  # the incident has its ticket: a follow-up on that one
    repeat = await lifecycle.repeat_of(req, jira, config)
    if repeat is None or repeat.plan == "new":
        return None
    try:
        done = await lifecycle.comment_or_reopen(req, jira, config, repeat)
        if done is not None and assignment.account_id:
            await jira.assign(repeat.key, assignment.account_id)
    except JiraError as exc:
        if exc.transient:
            raise
        raise Refused(f"Jira did not update {repeat.key}: {exc.message}") from exc
    if done is None:
        return None
    note, status = done
    ticket = IncidentTicket(key=repeat.key, url=jira.browse_url(repeat.key), priority=req.priority)
    notes = " ".join(n for n in (note, assignment.note) if n)
    outcome = lifecycle.repeat_outcome(req, ticket.key, ticket.url, notes, status, assignment.display_name)
    return Acted(ticket, outcome, "commented")


async def _linked(req: TicketRequested, jira: JiraClient, acted: Acted) -> Acted:
    """A new ticket for a repeat of a problem whose ticket was done long ago relates to that one."""
    if acted.action != "created" or not req.related_tickets or req.new_ticket:
        return acted
    repeat = lifecycle.Repeat("new", req.related_tickets[0], None)
    note = await lifecycle.link_new(jira, acted.ticket.key, repeat)
    joined = " ".join(n for n in (acted.outcome.note, note) if n)
    return Acted(acted.ticket, acted.outcome.model_copy(update={"note": joined}), acted.action)


# --- creating ----------------------------------------------------------------------------------


async def create(
    req: TicketRequested, jira: JiraClient, project_key: str, assignment: Assignment, config: TicketingConfig
) -> Acted:
    """A new issue. When the priority field is not on the project's create screen, Jira answers 400 with
    errors.priority: the issue is then created without it, and the human told."""
    fields = issue_fields(req, project_key, config.issue_type, assignment, config.priority_names)
    notes = [assignment.note]
    try:
        issue = await jira.create_issue(fields)
    except JiraError as exc:
        if not (exc.status == 400 and "priority" in exc.field_errors and "priority" in fields):
            raise
        log.warning("Jira refused the priority of request %s (%s); creating without", req.request_id, exc)
        issue = await jira.create_issue({k: v for k, v in fields.items() if k != "priority"})
        notes.append(
            f"Jira refused the priority {fields['priority']['name']} "
            f"({exc.field_errors['priority']}), so the ticket has the project's default priority."
        )
    log.info("created %s for incident %s (request %s)", issue.key, req.incident_id, req.request_id)
    ticket = IncidentTicket(key=issue.key, url=jira.browse_url(issue.key), priority=req.priority)
    return Acted(ticket, _created(req, ticket, assignment, notes), "created")


def issue_fields(
    req: TicketRequested,
    project_key: str,
    issue_type: str,
    assignment: Assignment,
    priority_names: Mapping[Priority, str],
) -> dict[str, Any]:
    """The `fields` of the create call. Users are referenced by accountId only: Jira Cloud rejects `name`.
    The labels let the incident's ticket, and the request's, be found again without KV."""
    fields: dict[str, Any] = {
        "project": {"key": project_key},
        "issuetype": {"name": issue_type},
        "summary": summary_for(req),
        "description": adf.diagnosis_description(req),
        "labels": [
            records.BASE_LABEL,
            records.incident_label(req.incident_id),
            records.request_label(req.request_id),
        ],
    }
    if req.priority in priority_names:
        fields["priority"] = {"name": priority_names[req.priority]}
    if assignment.account_id:
        fields["assignee"] = {"accountId": assignment.account_id}
    return fields


def summary_for(req: TicketRequested) -> str:
    """`[P2] <title>` on one line (Jira rejects newlines) within Jira's 255 characters."""
    return clip(" ".join(f"[{req.priority}] {req.title}".split()), MAX_SUMMARY_CHARS)


# --- following up --------------------------------------------------------------------------------


async def follow_up(
    req: TicketRequested,
    jira: JiraClient,
    existing: IncidentTicket,
    assignment: Assignment,
    config: TicketingConfig,
) -> Acted:
    """The incident has its ticket: reassign it if someone was named, and comment who asked and what."""
    notes = [
        f"{existing.key} is already open for this incident, so the request was added to it as a comment "
        "(ask for a *new* ticket to open a separate one).",
        assignment.note,
    ]
    if assignment.account_id:
        try:
            await jira.assign(existing.key, assignment.account_id)
        except JiraError as exc:
            if exc.transient:
                raise
            notes.append(f"Jira did not assign it to {assignment.display_name}: {exc.message}")
            assignment = Assignment()
    changed_priority = None if existing.priority == req.priority else priority_label(req.priority, config)
    await jira.add_comment(existing.key, comments.follow_up(req, assignment.display_name, changed_priority))
    log.info("commented on %s for incident %s (request %s)", existing.key, req.incident_id, req.request_id)
    ticket = existing.model_copy(update={"priority": req.priority})
    return Acted(ticket, _created(req, ticket, assignment, notes, existing=True), "commented")


def priority_label(priority: Priority, config: TicketingConfig) -> str:
    name = config.priority_names.get(priority)
    return f"{priority} ({name})" if name else priority


# --- outcomes ------------------------------------------------------------------------------------


def _created(
    req: TicketRequested,
    ticket: IncidentTicket,
    assignment: Assignment,
    notes: list[str | None],
    existing: bool = False,
) -> TicketCreated:
    return TicketCreated(
        request_id=req.request_id,
        incident_id=req.incident_id,
        key=ticket.key,
        url=ticket.url,
        assignee_name=assignment.display_name,
        assignee_account_id=assignment.account_id,
        note=" ".join(note for note in notes if note) or None,
        existing=existing,
        in_reply_to=req.in_reply_to,
    )


def _failed(req: TicketRequested, reason: str) -> TicketFailed:
    return TicketFailed(
        request_id=req.request_id, incident_id=req.incident_id, reason=reason, in_reply_to=req.in_reply_to
    )


def _refused(req: TicketRequested, reason: str) -> TicketFailed:
    log.warning("ticket request %s refused by Jira: %s", req.request_id, reason)
    metrics.tickets.labels(outcome="failed").inc()
    return _failed(req, reason)


async def _publish(bus: Bus, outcome: Outcome) -> None:
    if isinstance(outcome, NotifyText):
        await bus.publish_event(subjects.NOTIFY_TEXT, outcome, msg_id=outcome.notification_id)
        return
    token = records.token(outcome.request_id)
    if isinstance(outcome, TicketCreated):
        await bus.publish_event(subjects.TICKETS_CREATED, outcome, msg_id=f"ticket-created-{token}")
    else:
        await bus.publish_event(subjects.TICKETS_FAILED, outcome, msg_id=f"ticket-failed-{token}")


async def report_given_up(req: TicketRequested, reason: str, bus: Bus) -> None:
    """The request was dead-lettered (Jira kept failing, or it could never succeed): the person who
    asked reads why, rather than "the ticket is being created" as the last word."""
    metrics.tickets.labels(outcome="failed").inc()
    await _publish(bus, _failed(req, f"I gave up after repeated failures: {reason}"))
