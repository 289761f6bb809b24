"""Where ticketing keeps what it did (KV `oncall_deliveries`) and how it finds its issues again in Jira
without KV (labels, like Alertmanager's Jira notifier).

Keys:
  ticket-intent.<request>    a create is about to be sent (written before the call)
  ticket.<request>           the request's outcome, a TicketCreated (written after)
  ticket.incident.<incident> the incident's ticket, an IncidentTicket
  ticket-resolved.<incident> how far the resolution comment and transition got

The incident's ticket has its home on its conversation (oncall_conversations, written by the diagnoser
from tickets.created), where `oncall inspect`, the resolution message and the model read it. Ticketing
keeps `ticket.incident.<incident>` all the same, for its own idempotency: it is written in the handler
that acted, before the outcome is published, whereas the conversation learns of the ticket only when
the diagnoser has consumed that outcome. A second request in between (a quick follow-up, a redelivery)
must find the ticket to comment on it rather than create another. It also keeps the priority last asked
for, which the conversation does not, and ticketing's NATS user cannot read the conversations.
"""

import asyncio
import hashlib
import logging
import re
from datetime import datetime, timedelta
from typing import Literal

import nats.js.errors
from pydantic import BaseModel, Field

from services.contracts import streams
from services.contracts.models import Priority, utc_now
from services.runtime.bus import Bus
from services.ticketing.jira import JiraClient

log = logging.getLogger("oncall.ticketing")

BASE_LABEL = "oncall-agent"
# As Alertmanager's notifier asks; newest first, so the first is the incident's current ticket.
SEARCH_MAX_RESULTS = 2
MAX_TOKEN_CHARS = 128
# A NATS key token, and also safe inside a Jira label (no spaces) and a quoted JQL string.
_TOKEN = re.compile(r"[-_=a-zA-Z0-9]+")
_NOT_TOKEN_CHARS = re.compile(r"[^-_=a-zA-Z0-9]+")


class TicketIntent(BaseModel):
    """A create is in flight: if no outcome follows, the issue may exist all the same."""

    state: Literal["creating"] = "creating"
    incident_id: str
    at: datetime = Field(default_factory=utc_now)


class IncidentTicket(BaseModel):
    """The incident's ticket; `priority` is the last one asked for, None when unknown."""

    key: str
    url: str
    priority: Priority | None = None


class ResolutionProgress(BaseModel):
    ticket_key: str
    state: Literal["commented", "done"]


# --- names (pure) ------------------------------------------------------------------------------


def token(value: str) -> str:
    """`value` as one NATS key token. Anything else (dots, spaces, too long) is sanitised and given a
    hash suffix, so two different values never share a token."""
    if _TOKEN.fullmatch(value) and len(value) <= MAX_TOKEN_CHARS:
        return value
    readable = _NOT_TOKEN_CHARS.sub("_", value)[:64]
    return f"{readable}-{hashlib.sha256(value.encode()).hexdigest()[:16]}"


def result_key(request_id: str) -> str:
    return f"ticket.{token(request_id)}"


def intent_key(request_id: str) -> str:
    return f"ticket-intent.{token(request_id)}"


def incident_key(incident_id: str) -> str:
    # Three tokens: never equal to a two-token result key, whatever the request id.
    return f"ticket.incident.{token(incident_id)}"


def resolution_key(incident_id: str) -> str:
    return f"ticket-resolved.{token(incident_id)}"


def incident_label(incident_id: str) -> str:
    return f"oncall-incident-{token(incident_id)}"


def request_label(request_id: str) -> str:
    """Names the issue one request created, so a redelivery finds it even among an incident's several."""
    return f"oncall-request-{token(request_id)}"


def label_jql(project_key: str, label: str) -> str:
    # Quoted: some project keys are JQL reserved words. Newest first: the incident's current ticket.
    return f"project = {jql_string(project_key)} AND labels = {jql_string(label)} ORDER BY created DESC"


def jql_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


# --- lookups -----------------------------------------------------------------------------------


async def recorded_ticket(bus: Bus, incident_id: str) -> IncidentTicket | None:
    ticket, _ = await bus.kv_get(streams.DELIVERIES, incident_key(incident_id), IncidentTicket)
    return ticket


async def find_by_label(jira: JiraClient, project_key: str, label: str) -> str | None:
    """The newest issue of the project with `label`, if any."""
    keys = await jira.search_issue_keys(label_jql(project_key, label), SEARCH_MAX_RESULTS)
    return keys[0] if keys else None


async def find_incident_ticket(
    bus: Bus, jira: JiraClient, project_key: str, incident_id: str
) -> IncidentTicket | None:
    """The incident's ticket from KV, else from Jira by label (KV lost, expired, or another install)."""
    recorded = await recorded_ticket(bus, incident_id)
    if recorded is not None:
        return recorded
    key = await find_by_label(jira, project_key, incident_label(incident_id))
    return IncidentTicket(key=key, url=jira.browse_url(key)) if key else None


async def put(bus: Bus, key: str, value: BaseModel) -> None:
    await bus.kv_put_text(streams.DELIVERIES, key, value.model_dump_json())


# --- the create intent -----------------------------------------------------------------------


async def claim_intent(bus: Bus, request_id: str, incident_id: str) -> TicketIntent | None:
    """Write the intent before a create; None when this caller wrote it, else the intent an earlier
    or concurrent delivery wrote (its create may have happened: look for it before another)."""
    kv = await bus.kv(streams.DELIVERIES)
    intent = TicketIntent(incident_id=incident_id)
    try:
        await kv.create(intent_key(request_id), intent.model_dump_json().encode())
    except nats.js.errors.KeyWrongLastSequenceError:
        found, _ = await bus.kv_get(streams.DELIVERIES, intent_key(request_id), TicketIntent)
        return found or intent  # deleted meanwhile (the create was refused): still look once
    return None


async def renew_intent(bus: Bus, request_id: str, seen: TicketIntent) -> bool:
    """Announce a create again, after the one `seen` announced was looked for long enough and not
    found. False when another delivery renewed it first (it creates; look for its issue instead)."""
    renewed = TicketIntent(incident_id=seen.incident_id)

    def change(current: TicketIntent | None) -> TicketIntent | None:
        return renewed if current is None or current.at == seen.at else None

    stored = await bus.kv_update(streams.DELIVERIES, intent_key(request_id), TicketIntent, change)
    return stored is renewed


async def wait_for_created(
    jira: JiraClient,
    project_key: str,
    label: str,
    intent: TicketIntent,
    settle_seconds: float,
    poll_seconds: float,
) -> str | None:
    """The issue an earlier create (announced by `intent`) made, looked for by its label until
    `settle_seconds` after that create: Jira's search finds a new issue only once its index has
    caught up, and the create may still be in flight in another worker. None: it was not made."""
    deadline = intent.at + timedelta(seconds=settle_seconds)
    while True:
        key = await find_by_label(jira, project_key, label)
        if key is not None:
            return key
        left = (deadline - utc_now()).total_seconds()
        if left <= 0:
            log.warning("no issue labelled %s within %.0fs of its create: creating it", label, settle_seconds)
            return None
        await asyncio.sleep(min(poll_seconds, left))
