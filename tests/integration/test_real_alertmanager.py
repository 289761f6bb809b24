"""A real Alertmanager (0.25, the Debian package) pages through the product as users run it:
`oncall up` in a child process, Alertmanager's webhook receiver pointing at its `/alerts`, and
the on-call people's WhatsApp (the Twilio fake) as the place where the outcome is read.

Alertmanager runs with group_wait 1s, group_interval 1s and repeat_interval 2s (an unchanged
group is re-sent every 3 s), so each step below takes a second or two of real time.
"""

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fakes import FakeTwilio
from integration.real_servers import (
    FAST,
    ON_CALL,
    BusWatch,
    Published,
    ServerProcess,
    Timing,
    Webhook,
    alert,
    metric_value,
    post_alerts,
    product_settings,
    running_alertmanager,
    until,
)
from support.processes import OncallProcess, oncall_up

from services.contracts import subjects
from services.contracts.models import Conversation

TOKEN = "am-to-oncall-s3cret"
STEP_TIMEOUT = 15.0  # one Alertmanager tick plus a rule-based diagnosis take ~1-2 s
QUIET_SECONDS = 1.5  # how long "nothing more happens" is watched: a diagnosis takes well under that

Message = dict[str, str]


def group_key(alertname: str, service: str) -> str:
    """Alertmanager's groupKey for the root route grouped by [alertname, service]."""
    return f'{{}}:{{alertname="{alertname}", service="{service}"}}'


def diagnoses(twilio: FakeTwilio, incident_id: str) -> list[Message]:
    return [m for m in twilio.messages if m["Body"].startswith(f"🚨 *Incident diagnosis* #{incident_id}")]


def resolutions(twilio: FakeTwilio, incident_id: str) -> list[Message]:
    return [m for m in twilio.messages if m["Body"].startswith(f"✅ *Resolved* #{incident_id}")]


def once_to_each_on_call_number(messages: list[Message]) -> bool:
    return sorted(m["To"] for m in messages) == sorted(f"whatsapp:{n}" for n in ON_CALL)


@dataclass
class Scene:
    """The product behind a real Alertmanager, seen on its bus and on the on-call people's WhatsApp."""

    oncall: OncallProcess
    am: ServerProcess
    bus: BusWatch
    twilio: FakeTwilio

    def explain(self) -> str:
        """What a failed wait prints: WhatsApp, and the product's and Alertmanager's own words."""
        sent = "\n".join(f"  {m['To']}: {m['Body'][:80]!r}" for m in self.twilio.messages)
        return (
            f"--- WhatsApp:\n{sent}\n--- oncall stderr:\n{self.oncall.stderr[-2500:]}\n"
            f"--- alertmanager:\n{self.am.logs[-2500:]}"
        )

    async def notified(
        self, key: str, subject: str = subjects.ALERTS_FIRING, change: str | None = None
    ) -> dict[str, Any]:
        """The first notification of this group stored in ONCALL_ALERTS (with this change kind)."""
        stored = await until(
            lambda: self.bus.stored_alerts(key, subject, change),
            STEP_TIMEOUT,
            f"{subject} {change or ''} for {key} in ONCALL_ALERTS",
            self.explain,
        )
        return stored[0]

    async def told(
        self, which: Callable[[FakeTwilio, str], list[Message]], incident_id: str
    ) -> list[Message]:
        """Waits until every on-call number got such a message about the incident."""
        return await until(
            lambda: m if len(m := which(self.twilio, incident_id)) >= len(ON_CALL) else None,
            STEP_TIMEOUT,
            f"{which.__name__} of #{incident_id} on WhatsApp",
            self.explain,
        )


@contextmanager
def behind_alertmanager(
    settings: dict[str, str],
    tmp_path: Path,
    bus: BusWatch,
    twilio: FakeTwilio,
    timing: Timing = FAST,
    **auth: Any,
) -> Iterator[Scene]:
    """`oncall up` with these settings, and an Alertmanager whose one receiver is its /alerts."""
    with oncall_up(settings, tmp_path) as oncall:
        webhook = Webhook("oncall-agent", oncall.url + "/alerts", **auth)
        with running_alertmanager([webhook], tmp_path, timing) as am:
            yield Scene(oncall, am, bus, twilio)


async def test_one_incident_per_alertmanager_group_from_first_firing_to_resolved(
    clean_bus: str, bus: BusWatch, twilio: FakeTwilio, tmp_path: Path
) -> None:
    settings = product_settings(clean_bus, twilio, tmp_path, INGEST_TOKEN=TOKEN)
    with behind_alertmanager(settings, tmp_path, bus, twilio, bearer=TOKEN) as scene:
        am = scene.am
        checkout, payments = group_key("HighErrorRate", "checkout"), group_key("HighErrorRate", "payments")

        def pod(service: str, n: int, starts_at: datetime, ends_at: datetime | None = None) -> dict[str, Any]:
            labels = {"alertname": "HighErrorRate", "service": service, "severity": "critical"}
            annotations = {"summary": f"5xx on {service}"}
            return alert({**labels, "instance": f"{service}-{n}"}, starts_at, ends_at, annotations)

        # (a) Two checkout pods and one payments pod start failing at once: Alertmanager sends one
        # notification per group, and each group becomes one incident ...
        started = datetime.now(UTC)
        post_alerts(
            am.url, [pod("checkout", 1, started), pod("checkout", 2, started), pod("payments", 1, started)]
        )
        first, other_first = await scene.notified(checkout), await scene.notified(payments)
        assert (len(first["alerts"]), len(other_first["alerts"])) == (2, 1)
        assert first["change"] == other_first["change"] == "new"
        incident, other = first["incident_id"], other_first["incident_id"]
        assert incident and other and incident != other
        # ... diagnosed once: each on-call number reads one diagnosis per incident.
        told = await scene.told(diagnoses, incident)
        assert once_to_each_on_call_number(told)
        assert "*HighErrorRate on checkout*" in told[0]["Body"] and "*Alerts firing:* 2" in told[0]["Body"]
        told_other = await scene.told(diagnoses, other)
        assert once_to_each_on_call_number(told_other)
        assert "*HighErrorRate on payments*" in told_other[0]["Body"]
        entry = await bus.group_entry(checkout)
        assert entry is not None and entry.incident_id == incident and len(entry.firing) == 2
        messages_after_diagnosis = len(twilio.messages)

        # (b) Alertmanager re-sends the unchanged group every repeat_interval. The product takes it
        # (a publish marked "repeat" with the first one's Nats-Msg-Id, which JetStream drops) and
        # diagnoses nothing again.
        repeat = await until(
            lambda: [p for p in bus.publishes(checkout) if p.body["change"] == "repeat"],
            STEP_TIMEOUT,
            "Alertmanager's repeat of the checkout group",
            scene.explain,
        )
        assert repeat[0].body["incident_id"] == incident
        assert repeat[0].msg_id == bus.publishes(checkout)[0].msg_id
        assert len(await bus.stored_alerts(checkout)) == 1
        assert metric_value(scene.oncall.url, "oncall_ingest_webhooks_total", outcome="duplicate") >= 1
        await asyncio.sleep(QUIET_SECONDS)
        assert len(twilio.messages) == messages_after_diagnosis, "a repeat was diagnosed again"

        # (c) A third checkout pod joins later: Alertmanager sends the changed group on its next
        # group_interval tick, and the product appends it to the same incident (one update at most).
        post_alerts(am.url, [pod("checkout", 3, datetime.now(UTC))])
        changed = await scene.notified(checkout, change="changed")
        assert changed["incident_id"] == incident and len(changed["alerts"]) == 3

        async def conversation_with_three_alerts() -> Conversation | None:
            found = await bus.conversation(incident)
            return found if found and len(found.firing_fingerprints) == 3 else None

        conversation = await until(conversation_with_three_alerts, STEP_TIMEOUT, "3 alerts", scene.explain)
        assert conversation.status == "diagnosed"
        entry = await bus.group_entry(checkout)
        assert entry is not None and entry.incident_id == incident and len(entry.firing) == 3
        if conversation.diagnosis_revision > 1:  # re-diagnosed: the update goes to each number once
            await until(
                lambda: len(diagnoses(twilio, incident)) >= 2 * len(ON_CALL), 10, "update", scene.explain
            )
            assert "*Alerts firing:* 3" in diagnoses(twilio, incident)[-1]["Body"]
        updates = Counter(m["To"] for m in diagnoses(twilio, incident))
        assert max(updates.values()) <= 2, f"more than one update for one new alert: {updates}"

        # (d) The pods recover: Alertmanager sends "resolved", the incident is closed, and each
        # on-call person is told once. The other group's incident stays open.
        ended = datetime.now(UTC) - timedelta(seconds=1)
        post_alerts(am.url, [pod("checkout", n, started, ended) for n in (1, 2, 3)])
        resolved = await scene.notified(checkout, subjects.ALERTS_RESOLVED)
        assert resolved["incident_id"] == incident and resolved["change"] == "resolved"
        assert {a["status"] for a in resolved["alerts"]} == {"resolved"}
        assert once_to_each_on_call_number(await scene.told(resolutions, incident))
        closed, still_open = await bus.conversation(incident), await bus.conversation(other)
        assert closed is not None and closed.status == "resolved"
        assert still_open is not None and still_open.status == "diagnosed"
        entry = await bus.group_entry(checkout)
        assert entry is not None and entry.status == "resolved"

        # The same group failing again afterwards is a new incident, diagnosed afresh.
        post_alerts(am.url, [pod("checkout", 1, datetime.now(UTC))])

        async def firing_as_another_incident() -> list[dict[str, Any]]:
            return [b for b in await bus.stored_alerts(checkout) if b["incident_id"] != incident]

        again = (await until(firing_as_another_incident, STEP_TIMEOUT, "firing again", scene.explain))[0]
        assert again["change"] == "new"
        assert once_to_each_on_call_number(await scene.told(diagnoses, again["incident_id"]))
        closed = await bus.conversation(incident)
        assert closed is not None and closed.status == "resolved"
        assert resolutions(twilio, other) == []
        assert Counter(m["To"] for m in diagnoses(twilio, incident)) == updates  # nothing more on the way


async def test_a_group_firing_again_after_a_timeout_resolution_pages_again(
    clean_bus: str, bus: BusWatch, twilio: FakeTwilio, tmp_path: Path
) -> None:
    settings = product_settings(clean_bus, twilio, tmp_path, INGEST_TOKEN=TOKEN)
    timing = Timing(resolve_timeout="3s")
    with behind_alertmanager(settings, tmp_path, bus, twilio, timing, bearer=TOKEN) as scene:
        key = group_key("QueueBacklog", "orders")
        # A sender that re-posts its active alerts with their start time and no endsAt, as
        # Prometheus does (startsAt = when the rule became active; endsAt = a validity horizon).
        backlog = alert(
            {"alertname": "QueueBacklog", "service": "orders"}, datetime.now(UTC), until_resolve_timeout=True
        )
        post_alerts(scene.am.url, [backlog])
        first = await scene.notified(key)
        incident = first["incident_id"]
        await scene.told(diagnoses, incident)

        # The sender goes quiet (cut off from Alertmanager): after resolve_timeout Alertmanager
        # resolves the group, and the on-call people are told it is over.
        await scene.told(resolutions, incident)

        # The sender is back and the problem never went away: it re-posts the same alert, and
        # Alertmanager notifies the group as firing again, with the alert's original startsAt.
        post_alerts(scene.am.url, [backlog])

        def firing_after_resolution() -> list[Published]:
            history = [p for p in bus.published if p.body["groupKey"] == key]
            seen = [p.subject for p in history]
            if subjects.ALERTS_RESOLVED not in seen:
                return []
            return [
                p
                for p in history[seen.index(subjects.ALERTS_RESOLVED) :]
                if p.subject == subjects.ALERTS_FIRING
            ]

        refired = (await until(firing_after_resolution, STEP_TIMEOUT, "firing again", scene.explain))[0]
        assert refired.body["change"] == "new"
        assert refired.body["alerts"][0]["startsAt"] == first["alerts"][0]["startsAt"]
        # Firing again after "resolved" is a new incident (DESIGN.md: an incident = one group
        # from first firing to resolved), and the on-call people must hear about it.
        assert refired.body["incident_id"] != incident, "the resolved incident's id was reused"
        assert refired.msg_id != bus.publishes(key)[0].msg_id, "deduplicated against the first firing"
        await until(
            lambda: len([m for m in twilio.messages if "Incident diagnosis" in m["Body"]]) > len(ON_CALL),
            5,
            "a page for the group firing again",
            scene.explain,
        )


async def test_basic_auth_from_alertmanager_gets_through(
    clean_bus: str, bus: BusWatch, twilio: FakeTwilio, tmp_path: Path
) -> None:
    user, password = "alertmanager", "b4sic-s3cret"
    settings = product_settings(
        clean_bus, twilio, tmp_path, INGEST_BASIC_USER=user, INGEST_BASIC_PASSWORD=password
    )
    with behind_alertmanager(settings, tmp_path, bus, twilio, basic_auth=(user, password)) as scene:
        post_alerts(
            scene.am.url, [alert({"alertname": "DiskFull", "service": "inventory"}, datetime.now(UTC))]
        )
        incident = (await scene.notified(group_key("DiskFull", "inventory")))["incident_id"]
        assert once_to_each_on_call_number(await scene.told(diagnoses, incident))
        assert metric_value(scene.oncall.url, "oncall_ingest_rejected_total") == 0


async def test_a_receiver_with_a_wrong_token_is_refused_and_nobody_is_paged(
    clean_bus: str, bus: BusWatch, twilio: FakeTwilio, tmp_path: Path
) -> None:
    settings = product_settings(clean_bus, twilio, tmp_path, INGEST_TOKEN=TOKEN)
    with behind_alertmanager(settings, tmp_path, bus, twilio, bearer="an-old-token") as scene:
        post_alerts(
            scene.am.url, [alert({"alertname": "DiskFull", "service": "inventory"}, datetime.now(UTC))]
        )
        # Alertmanager logs why the notification failed (a 4xx is not retried within the cycle) ...
        failures = await until(
            lambda: [line for line in scene.am.logs.splitlines() if "Notify for alerts failed" in line],
            STEP_TIMEOUT,
            "Alertmanager logging the refused notification",
            scene.explain,
        )
        assert "unexpected status code 401" in failures[0], failures[0]
        # ... and the product counts what it refused, for an alert on its own metrics.
        assert metric_value(scene.oncall.url, "oncall_ingest_rejected_total", status="401") >= 1
        assert bus.published == [] and await bus.stored_alerts(group_key("DiskFull", "inventory")) == []
        assert twilio.messages == []
