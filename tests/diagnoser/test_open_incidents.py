"""A reply that names no incident goes to the newest open one, found in the index of open incidents
(one KV key), not by listing every conversation; a NATS failure there means a redelivery, never
"I have no open incident to act on"."""

from datetime import UTC, datetime, timedelta
from typing import Any

import nats.errors
import pytest
from diagnoser_harness import Harness, alert_group
from nats.js.kv import KeyValue

from services.contracts import streams, subjects
from services.contracts.models import OPEN_INCIDENTS_KEY, AlertGroup, HumanReplied, OpenIncidents
from services.diagnoser.handlers import NO_OPEN_INCIDENT, Diagnoser
from services.diagnoser.open_incidents import MAX_OPEN, with_opened
from services.runtime import metrics

ON_CALL = "+15551230001"


def reply(text: str, sid: str) -> HumanReplied:
    return HumanReplied(message_sid=sid, sender=ON_CALL, body=text, channel="console")


def group(incident_id: str, status: str = "firing") -> AlertGroup:
    found = alert_group(incident_id=incident_id)
    found.group_key += f"-{incident_id}"
    if status == "resolved":
        found.status = "resolved"
        for alert in found.alerts:
            alert.status = "resolved"
    return found


async def open_incidents(harness: Harness, *ids: str) -> Diagnoser:
    diagnoser = harness.diagnoser()
    for incident_id in ids:
        await diagnoser.on_alert_firing(group(incident_id))
    return diagnoser


async def answers(harness: Harness, wait: float = 0.5) -> list[tuple[str | None, str]]:
    return [(m["incident_id"], m["text"]) for m in await harness.published(subjects.NOTIFY_TEXT, wait)]


def conversation_reads(op: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "oncall_kv_operations_total", {"bucket": streams.CONVERSATIONS.name, "op": op}
    )
    return value or 0.0


async def test_the_index_follows_incidents_opening_and_resolving(harness: Harness) -> None:
    diagnoser = await open_incidents(harness, "opn001", "opn002", "opn003")
    index, _ = await harness.bus.kv_get(streams.CONVERSATIONS, OPEN_INCIDENTS_KEY, OpenIncidents)
    assert index is not None and [e.incident_id for e in index.incidents] == ["opn001", "opn002", "opn003"]

    gets, lists = conversation_reads("get"), conversation_reads("keys")
    await diagnoser.on_human_reply(reply("help", "SMo1"))
    # The index, the newest conversation, and the read of the compare-and-set recording the turn,
    # however many incidents there are; no listing.
    assert (conversation_reads("get") - gets, conversation_reads("keys") - lists) == (3, 0)

    await diagnoser.on_alert_resolved(group("opn003", "resolved"))  # Alertmanager resolved it
    await diagnoser.on_human_reply(reply("help", "SMo2"))
    await diagnoser.on_human_reply(reply("resolve", "SMo3"))  # a person resolves opn002
    await diagnoser.on_human_reply(reply("help", "SMo4"))
    await diagnoser.on_alert_resolved(group("opn001", "resolved"))
    await diagnoser.on_human_reply(reply("help", "SMo5"))

    said = await answers(harness)
    assert [incident for incident, _ in said] == ["opn003", "opn002", "opn002", "opn001", None]
    assert said[-1][1] == NO_OPEN_INCIDENT
    index, _ = await harness.bus.kv_get(streams.CONVERSATIONS, OPEN_INCIDENTS_KEY, OpenIncidents)
    assert index is not None and index.incidents == []


async def test_a_repeat_or_a_redelivered_resolution_leaves_the_index_as_it_is(harness: Harness) -> None:
    diagnoser = await open_incidents(harness, "opn011")
    await diagnoser.on_alert_firing(group("opn011"))  # Alertmanager's repeat
    await diagnoser.on_alert_resolved(group("opn011", "resolved"))
    await diagnoser.on_alert_resolved(group("opn011", "resolved"))  # redelivered
    await diagnoser.on_alert_resolved(group("nope00", "resolved"))  # never seen
    index, _ = await harness.bus.kv_get(streams.CONVERSATIONS, OPEN_INCIDENTS_KEY, OpenIncidents)
    assert index is not None and index.incidents == []


async def test_a_nats_failure_while_matching_a_reply_is_redelivered_not_answered_no_open_incident(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The KV read of the index (or a listing of the bucket) fails once, as NATS does when it is
    briefly unavailable: the reply is not answered "no open incident" but handed back for a
    redelivery, which is answered for the open incident."""
    diagnoser = await open_incidents(harness, "opn021")
    failures: list[str] = []
    real_get, real_keys = KeyValue.get, KeyValue.keys

    async def flaky_get(self: KeyValue, key: str, *args: Any, **kwargs: Any) -> KeyValue.Entry:
        if key == OPEN_INCIDENTS_KEY and not failures:
            failures.append(key)
            raise nats.errors.TimeoutError
        return await real_get(self, key, *args, **kwargs)

    async def flaky_keys(self: KeyValue, *args: Any, **kwargs: Any) -> list[str]:
        if not failures:
            failures.append("keys")
            raise nats.errors.TimeoutError
        return await real_keys(self, *args, **kwargs)

    monkeypatch.setattr(KeyValue, "get", flaky_get)
    monkeypatch.setattr(KeyValue, "keys", flaky_keys)

    # The first delivery raises, so the durable consumer redelivers it (what a raising handler
    # gets: tests/runtime/test_bus.py), and says nothing meanwhile; the redelivery is answered.
    ack = reply("ack", "SMo21")
    with pytest.raises(nats.errors.TimeoutError):
        await diagnoser.on_human_reply(ack)
    assert failures and await answers(harness) == []
    await diagnoser.on_human_reply(ack)
    [(incident, text)] = await answers(harness)
    assert incident == "opn021" and "has taken" in text


def test_the_index_keeps_only_the_newest_open_incidents() -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    index: OpenIncidents | None = None
    for n in range(MAX_OPEN + 5):
        index = with_opened(index, f"inc{n:03d}", start + timedelta(minutes=n)) or index
    assert index is not None and len(index.incidents) == MAX_OPEN
    # The oldest five left the index (still reachable by #tag); the newest is last.
    assert index.incidents[0].incident_id == "inc005"
    assert index.incidents[-1].incident_id == f"inc{MAX_OPEN + 4:03d}"
