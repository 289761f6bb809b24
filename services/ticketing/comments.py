"""The comments the agent adds to an incident's ticket, as ADF documents (pure functions)."""

from services.contracts.models import IncidentResolved, TicketRequested, incident_tag
from services.runtime.text import format_duration
from services.runtime.timeline import render
from services.runtime.times import as_utc
from services.ticketing import adf
from services.ticketing.adf import Node


def follow_up(req: TicketRequested, assignee: str | None, priority: str | None) -> Node:
    """A repeated request on the incident's ticket: who asked, and what they asked to change."""
    changes = [
        f"Assigned to {assignee}." if assignee else "",
        f"Priority asked: {priority}." if priority else "",
    ]
    blocks = [
        adf.paragraph(
            adf.text(
                f"{req.requested_by} asked again for a ticket for incident {incident_tag(req.incident_id)} "
                "from WhatsApp; this ticket already covers it."
            )
        )
    ]
    if any(changes):
        blocks.append(adf.bullet_list(change for change in changes if change))
    return adf.doc(*blocks)


def resolution(event: IncidentResolved) -> Node:
    """When and after how long, then the incident's timeline: fired, diagnosed, each reply and
    action, resolved (an older event without one: the sentence alone)."""
    blocks = [adf.paragraph(adf.text(resolution_text(event)))]
    if event.timeline:
        blocks += [adf.heading("Timeline (UTC)", 3), adf.bullet_list(render(event.timeline))]
    return adf.doc(*blocks)


def resolution_text(event: IncidentResolved) -> str:
    """ "Resolved after 1 h 23 min: from 06:02 to 07:25 UTC on 2024-05-01 (incident #a1b2c3)."."""
    tag = incident_tag(event.incident_id)
    end = as_utc(event.resolved_at)
    if event.started_at is None:
        return f"Resolved at {end:%H:%M} UTC on {end:%Y-%m-%d} (incident {tag})."
    start = as_utc(event.started_at)
    if start.date() == end.date():
        span = f"from {start:%H:%M} to {end:%H:%M} UTC on {end:%Y-%m-%d}"
    else:
        span = f"from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
    return f"Resolved after {format_duration((end - start).total_seconds())}: {span} (incident {tag})."
