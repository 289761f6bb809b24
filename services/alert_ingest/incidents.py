"""Which incident an alert group belongs to: one incident per group from first firing to resolved."""

from collections import OrderedDict

from services.contracts.models import AlertChange, AlertGroup, GroupIndexEntry, incident_id_for

# Groups this replica remembers having indexed; beyond it the oldest are forgotten (a forgotten
# group costs one failed create, never a wrong answer).
RECENT_GROUPS = 10_000


class RecentGroups:
    """The group keys this process has indexed lately: for any other group a webhook is most
    likely its first, so the index entry is created without being read first."""

    def __init__(self, size: int = RECENT_GROUPS):
        self.size = size
        self._keys: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def add(self, key: str) -> None:
        self._keys[key] = None
        self._keys.move_to_end(key)
        if len(self._keys) > self.size:
            self._keys.popitem(last=False)


def firing_fingerprints(group: AlertGroup) -> list[str]:
    return sorted({a.fingerprint for a in group.firing})


def next_group_entry(current: GroupIndexEntry | None, group: AlertGroup) -> GroupIndexEntry | None:
    """The group index entry after this notification, or None when it stays as it is."""
    firing = firing_fingerprints(group)
    if group.firing:
        if current is not None and current.status == "open":
            return None if current.firing == firing else current.model_copy(update={"firing": firing})
        # First firing, or firing again after resolution: a new incident.
        return GroupIndexEntry(
            incident_id=new_incident_id(current, group),
            group_key=group.group_key,
            firing=firing,
            episode=current.episode + 1 if current is not None else 0,
        )
    if current is not None and current.status == "open":
        return current.model_copy(update={"status": "resolved", "firing": []})
    if current is None:
        # Resolved for a group we never saw firing (e.g. state lost): remember it as closed.
        return GroupIndexEntry(
            incident_id=incident_id_for(group.group_key, group.earliest_start()),
            group_key=group.group_key,
            status="resolved",
        )
    return None


def new_incident_id(resolved: GroupIndexEntry | None, group: AlertGroup) -> str:
    """Derived from the group and its first start, so replays land on the same incident; but an
    alert that fires again with its old startsAt after a timeout resolution (Prometheus re-sends
    its original startsAt) must still be a new incident: then the episode number tells them apart."""
    derived = incident_id_for(group.group_key, group.earliest_start())
    if resolved is None or resolved.incident_id != derived:
        return derived
    return incident_id_for(f"{group.group_key}#episode{resolved.episode + 1}", group.earliest_start())


def change_kind(before: GroupIndexEntry | None, after: GroupIndexEntry) -> AlertChange:
    """What this notification means for the incident, from the index before and after it."""
    if after.status == "resolved":
        return "resolved"
    if before is None or before.status == "resolved" or before.incident_id != after.incident_id:
        return "new"
    return "repeat" if before.firing == after.firing else "changed"
