"""The index of open incidents (KV `oncall_conversations[open-incidents]`): how a reply that names no
incident finds the newest open one with two reads instead of listing every conversation.

A NATS failure here raises: the durable consumer redelivers the reply, which is never answered with
"no open incident" because the index could not be read.
"""

from datetime import datetime

from services.contracts import streams
from services.contracts.models import OPEN_INCIDENTS_KEY, Conversation, OpenIncident, OpenIncidents, utc_now
from services.runtime.bus import Bus

# A reply without a #tag goes to the newest open incident, so the index needs only the newest few.
# Bounded small because every incident opened rewrites the key under compare-and-set: at 1,000
# entries (73 KB) one read-modify-write cost 3 ms of CPU and doubled the diagnoser's CPU per incident
# in a 500/s storm; at 50 it costs 0.25 ms. Incidents dropped from it stay reachable by their #tag.
MAX_OPEN = 50


def with_opened(index: OpenIncidents | None, incident_id: str, at: datetime) -> OpenIncidents | None:
    """`index` with the incident in it; None when it already is (nothing to write)."""
    known = index.incidents if index else []
    if any(entry.incident_id == incident_id for entry in known):
        return None
    opened = [*known, OpenIncident(incident_id=incident_id, opened_at=at)]
    return OpenIncidents(incidents=opened[-MAX_OPEN:])


def without(index: OpenIncidents | None, incident_id: str) -> OpenIncidents | None:
    """`index` without the incident; None when it is not in it (nothing to write)."""
    if index is None or not any(entry.incident_id == incident_id for entry in index.incidents):
        return None
    return OpenIncidents(incidents=[e for e in index.incidents if e.incident_id != incident_id])


async def opened(bus: Bus, incident_id: str) -> None:
    at = utc_now()
    await bus.kv_update(
        streams.CONVERSATIONS,
        OPEN_INCIDENTS_KEY,
        OpenIncidents,
        lambda index: with_opened(index, incident_id, at),
    )


async def closed(bus: Bus, incident_id: str) -> None:
    await bus.kv_update(
        streams.CONVERSATIONS, OPEN_INCIDENTS_KEY, OpenIncidents, lambda index: without(index, incident_id)
    )


async def newest_open(bus: Bus) -> Conversation | None:
    """The newest incident whose conversation is stored and not resolved, None when there is none."""
    index, _ = await bus.kv_get(streams.CONVERSATIONS, OPEN_INCIDENTS_KEY, OpenIncidents)
    for entry in sorted(index.incidents if index else [], key=lambda e: e.opened_at, reverse=True):
        found, _ = await bus.kv_get(streams.CONVERSATIONS, entry.incident_id, Conversation)
        if found is not None and found.status != "resolved":
            return found
    return None
