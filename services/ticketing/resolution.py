"""An incident resolved: its ticket gets a comment saying when and after how long, and, when
JIRA_RESOLVE_TRANSITION names one, that workflow transition. An incident without a ticket: nothing.

Progress is kept in KV so that a redelivery (say after a 503 on the transition) neither comments twice
nor gives up on the transition.
"""

import logging
from collections.abc import Sequence

from services.contracts import streams
from services.contracts.models import IncidentResolved
from services.runtime.bus import Bus
from services.ticketing import comments, records
from services.ticketing.config import TicketingConfig
from services.ticketing.jira import JiraClient, JiraError, Transition
from services.ticketing.records import ResolutionProgress

log = logging.getLogger("oncall.ticketing.resolution")


async def handle_incident_resolved(
    event: IncidentResolved, bus: Bus, jira: JiraClient | None, config: TicketingConfig
) -> str | None:
    """Comment on (and transition) the incident's ticket; returns its key, None when there is none.
    Transient Jira errors raise for a redelivery; permanent ones are logged, as retrying cannot help."""
    if jira is None or not config.project_key:
        return None
    progress_key = records.resolution_key(event.incident_id)
    progress, _ = await bus.kv_get(streams.DELIVERIES, progress_key, ResolutionProgress)
    if progress is not None and progress.state == "done":
        return progress.ticket_key
    key = progress.ticket_key if progress else None
    try:
        key = key or await _ticket_key(event, bus, jira, config.project_key)
        if key is None:
            log.info("incident %s resolved without a ticket: nothing to update", event.incident_id)
            return None
        if progress is None:
            await jira.add_comment(key, comments.resolution(event))
            await records.put(bus, progress_key, ResolutionProgress(ticket_key=key, state="commented"))
        if config.resolve_transition:
            await transition_by_name(jira, key, config.resolve_transition)
    except JiraError as exc:
        if exc.transient:
            raise
        log.warning("Jira refused the resolution of incident %s (%s): %s", event.incident_id, key, exc)
        if key is None:
            return None
    await records.put(bus, progress_key, ResolutionProgress(ticket_key=key, state="done"))
    return key


async def _ticket_key(event: IncidentResolved, bus: Bus, jira: JiraClient, project_key: str) -> str | None:
    """KV first; then the key the conversation knew; then Jira by the incident's label."""
    recorded = await records.recorded_ticket(bus, event.incident_id)
    if recorded is not None:
        return recorded.key
    if event.ticket_key:
        return event.ticket_key
    return await records.find_by_label(jira, project_key, records.incident_label(event.incident_id))


async def transition_by_name(jira: JiraClient, key: str, name: str) -> bool:
    """Apply the transition called `name` if the issue's workflow offers it now. Not offered (already
    done, or another workflow) is logged, not an error: the comment says the incident is over."""
    available = await jira.transitions(key)
    chosen = pick_transition(available, name)
    if chosen is None:
        offered = ", ".join(t.name for t in available) or "none"
        log.warning("%s: no transition %r available (offered: %s); left as it is", key, name, offered)
        return False
    await jira.transition(key, chosen.id)
    log.info("%s: applied transition %r", key, chosen.name)
    return True


def pick_transition(available: Sequence[Transition], name: str) -> Transition | None:
    wanted = name.strip().casefold()
    return next((t for t in available if t.name.strip().casefold() == wanted), None)
