"""The comments the agent adds to an incident's ticket, as ADF documents (pure functions)."""

from datetime import UTC, datetime

from services.contracts.models import IncidentResolved, TicketRequested, incident_tag
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
    return adf.doc(adf.paragraph(adf.text(resolution_text(event))))


def resolution_text(event: IncidentResolved) -> str:
    """ "Resolved after 1 h 23 min: from 06:02 to 07:25 UTC on 2024-05-01 (incident #a1b2c3)."."""
    tag = incident_tag(event.incident_id)
    end = _utc(event.resolved_at)
    if event.started_at is None:
        return f"Resolved at {end:%H:%M} UTC on {end:%Y-%m-%d} (incident {tag})."
    start = _utc(event.started_at)
    if start.date() == end.date():
        span = f"from {start:%H:%M} to {end:%H:%M} UTC on {end:%Y-%m-%d}"
    else:
        span = f"from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
    return f"Resolved after {format_duration((end - start).total_seconds())}: {span} (incident {tag})."


def format_duration(seconds: float) -> str:
    """Two units at most, the way people say it: "45 s", "23 min", "1 h 23 min", "2 d 3 h"."""
    total = max(0, int(seconds))
    if total < 60:
        return f"{total} s"
    minutes, hours, days = total // 60 % 60, total // 3600 % 24, total // 86400
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


def _utc(moment: datetime) -> datetime:
    # Alertmanager times carry an offset; a naive one can only be UTC.
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
