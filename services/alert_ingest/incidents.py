"""Which incident an alert group belongs to: one incident per group from first firing to resolved."""

from datetime import datetime

from services.contracts.models import AlertGroup, GroupIndexEntry, incident_id_for


def earliest_start(group: AlertGroup) -> datetime | None:
    starts = [a.starts_at for a in (group.firing or group.alerts) if a.starts_at is not None]
    return min(starts) if starts else None


def next_group_entry(current: GroupIndexEntry | None, group: AlertGroup) -> GroupIndexEntry | None:
    """The group index entry after this notification, or None when it stays as it is."""
    if group.firing:
        if current is not None and current.status == "open":
            return None
        # First firing, or firing again after resolution: a new incident.
        return GroupIndexEntry(
            incident_id=incident_id_for(group.group_key, earliest_start(group)), group_key=group.group_key
        )
    if current is not None and current.status == "open":
        return current.model_copy(update={"status": "resolved"})
    if current is None:
        # Resolved for a group we never saw firing (e.g. state lost): remember it as closed.
        return GroupIndexEntry(
            incident_id=incident_id_for(group.group_key, earliest_start(group)),
            group_key=group.group_key,
            status="resolved",
        )
    return None
