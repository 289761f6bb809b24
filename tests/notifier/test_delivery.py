"""Delivery: every on-call number gets each notification once, through Twilio or the console."""

import asyncio
import json
import logging
import uuid
from collections.abc import Callable

import pytest
from fakes import FakeTwilio
from faststream.nats import NatsBroker, TestNatsBroker

from services.contracts import subjects
from services.contracts.models import Diagnosis, IncidentDiagnosed, IncidentResolved, TicketFailed
from services.notifier import records
from services.notifier.app import wire
from services.notifier.console import ConsoleChannel
from services.notifier.delivery import CONSOLE_RECIPIENT, Notification, SendError, deliver, recipients
from services.notifier.notifications import Notifier
from services.notifier.records import incident_of_message, kv_key
from services.notifier.settings import NotifierSettings
from services.notifier.whatsapp import RetryPolicy, WhatsAppClient
from services.runtime import metrics
from services.runtime.bus import Bus, PermanentError
from services.runtime.service import ServiceContext

TEMPLATE_SID = "HX" + "b" * 32
# Retries of a send as the product makes them, only quicker: these tests are not about timing.
QUICK_RETRY = RetryPolicy(attempts=3, budget_seconds=2.0, first_wait_seconds=0.01, max_wait_seconds=0.02)


@pytest.fixture
def settings(make_settings: Callable[..., NotifierSettings]) -> NotifierSettings:
    return make_settings(TWILIO_TEMPLATE_SID=TEMPLATE_SID)


@pytest.fixture
def channel(settings: NotifierSettings) -> WhatsAppClient:
    return WhatsAppClient.from_settings(settings, retry=QUICK_RETRY)


@pytest.fixture
def on_call(settings: NotifierSettings) -> list[str]:
    assert len(settings.user_whatsapp_numbers) == 2
    return settings.user_whatsapp_numbers


def unique(prefix: str) -> str:
    # The nats-server lives for the whole session: keys must not collide between tests.
    return f"{prefix}.{uuid.uuid4().hex[:12]}"


def note(
    text: str, incident_id: str | None = "a1b2c3", key: str | None = None, headline: str = "HighErrorRate"
) -> Notification:
    return Notification(key or unique("diag"), incident_id, text, headline=headline)


def sends(outcome: str, channel: str = "whatsapp") -> float:
    labels = {"channel": channel, "outcome": outcome}
    return metrics.REGISTRY.get_sample_value("oncall_whatsapp_messages_total", labels) or 0.0


def addressees(twilio: FakeTwilio) -> list[str]:
    return [m["To"].removeprefix("whatsapp:") for m in twilio.messages]


async def test_every_on_call_number_gets_the_message(
    bus: Bus, twilio: FakeTwilio, channel: WhatsAppClient, on_call: list[str], settings: NotifierSettings
) -> None:
    await deliver(bus, channel, on_call, note("🚨 *Incident diagnosis* #a1b2c3"))

    assert sorted(addressees(twilio)) == sorted(on_call)
    assert {m["To"][:10] for m in twilio.messages} == {"whatsapp:+"}
    assert {m["From"] for m in twilio.messages} == {f"whatsapp:{settings.twilio_whatsapp_number}"}
    assert {m["Body"] for m in twilio.messages} == {"🚨 *Incident diagnosis* #a1b2c3"}
    # Twilio reports what became of each message to the status webhook.
    callback = "https://oncall.example.com/webhook/twilio/status"
    assert {m["StatusCallback"] for m in twilio.messages} == {callback}


async def test_without_a_public_url_no_status_callback_is_asked_for(
    bus: Bus, twilio: FakeTwilio, make_settings: Callable[..., NotifierSettings], on_call: list[str]
) -> None:
    channel = WhatsAppClient.from_settings(make_settings(PUBLIC_BASE_URL=None))

    await deliver(bus, channel, on_call[:1], note("hello"))

    assert "StatusCallback" not in twilio.messages[0]


async def test_a_replayed_notification_sends_nothing_twice(
    bus: Bus, twilio: FakeTwilio, channel: WhatsAppClient, on_call: list[str]
) -> None:
    first = note("first delivery")
    duplicates_before = sends("duplicate")

    await deliver(bus, channel, on_call, first)
    await deliver(bus, channel, on_call, first)

    assert sorted(addressees(twilio)) == sorted(on_call)
    assert sends("duplicate") - duplicates_before == len(on_call)


async def test_the_sid_of_each_message_leads_back_to_its_incident(
    bus: Bus, twilio: FakeTwilio, channel: WhatsAppClient, on_call: list[str]
) -> None:
    await deliver(bus, channel, on_call[:1], note("text #c0ffee", incident_id="c0ffee"))

    (message,) = twilio.messages
    assert await incident_of_message(bus, message["sid"]) == "c0ffee"
    assert await incident_of_message(bus, "SM" + "0" * 32) is None


async def test_a_bad_number_is_logged_and_counted_and_the_others_are_served(
    bus: Bus,
    twilio: FakeTwilio,
    channel: WhatsAppClient,
    on_call: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures_before = sends("failed_21211")
    twilio.fail_next(400, 21211, "The 'To' number is not a valid phone number.")  # the first recipient

    with caplog.at_level(logging.ERROR, logger="oncall.notifier"):
        await deliver(bus, channel, on_call, note("hello"))

    assert addressees(twilio) == [on_call[1]]
    assert len(twilio.requests) == 2  # a permanent error is not retried
    assert sends("failed_21211") - failures_before == 1
    (logged,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "failed for good" in logged and "21211" in logged and "+1555…0001" in logged
    assert on_call[0] not in logged  # numbers are masked in logs


async def test_nobody_reachable_is_dead_lettered(
    bus: Bus, twilio: FakeTwilio, channel: WhatsAppClient, on_call: list[str]
) -> None:
    twilio.fail_next(400, 63007, "Twilio could not find a Channel with the specified From address", times=2)

    with pytest.raises(PermanentError):
        await deliver(bus, channel, on_call, note("hello"))


@pytest.mark.parametrize(("status", "code"), [(429, 20429), (503, 20500)])
async def test_a_send_still_failing_after_its_retries_is_left_to_the_redelivery(
    bus: Bus, twilio: FakeTwilio, channel: WhatsAppClient, on_call: list[str], status: int, code: int
) -> None:
    resolved = note("resolved", key=unique("resolved"))
    twilio.fail_next(
        status, code, "try later", times=QUICK_RETRY.attempts, retry_after=0
    )  # the first recipient

    with pytest.raises(SendError) as raised:
        await deliver(bus, channel, on_call, resolved)
    assert not raised.value.permanent
    assert raised.value.code == code
    assert addressees(twilio) == [on_call[1]]  # the other was not held back

    await deliver(bus, channel, on_call, resolved)  # what the redelivery does

    assert sorted(addressees(twilio)) == sorted(on_call)


async def test_twilio_unreachable_is_transient(
    bus: Bus, make_settings: Callable[..., NotifierSettings], on_call: list[str]
) -> None:
    unreachable = WhatsAppClient.from_settings(make_settings(TWILIO_API_BASE_URL="http://127.0.0.1:9"))

    with pytest.raises(SendError) as raised:
        await deliver(bus, unreachable, on_call[:1], note("x", incident_id=None))

    assert not raised.value.permanent


async def test_a_long_text_arrives_in_ordered_parts_once(
    bus: Bus, twilio: FakeTwilio, channel: WhatsAppClient, on_call: list[str]
) -> None:
    text = "\n".join(f"{i:03d} " + "evidence " * 20 for i in range(30))  # ~5500 characters
    long = note(text)

    await deliver(bus, channel, on_call[:1], long)
    await deliver(bus, channel, on_call[:1], long)

    bodies = [m["Body"] for m in twilio.messages]
    assert len(bodies) == 4
    assert all(len(b) <= 1600 for b in bodies)
    assert [b.rsplit("\n", 1)[1] for b in bodies] == [f"({i}/4) #a1b2c3" for i in range(1, 5)]
    for message in twilio.messages:  # a reply to any part finds the incident
        assert await incident_of_message(bus, message["sid"]) == "a1b2c3"


async def test_a_second_delivery_racing_the_first_does_not_send_again(
    bus: Bus, make_settings: Callable[..., NotifierSettings], on_call: list[str]
) -> None:
    with FakeTwilio(delay_seconds=0.5) as slow:
        channel = WhatsAppClient.from_settings(make_settings(TWILIO_API_BASE_URL=slow.url))
        same = note("x")

        results = await asyncio.gather(
            deliver(bus, channel, on_call[:1], same),
            deliver(bus, channel, on_call[:1], same),
            return_exceptions=True,
        )

        assert len(slow.messages) == 1
    # The second waited for the first's lease and found the message sent.
    assert [r for r in results if isinstance(r, BaseException)] == []


# --- unknown outcomes: reconciled with Twilio before any resend ---------------------------------

# A lease as the product keeps it, only shorter: these tests are not about timing.
SHORT_LEASE = 1.0


async def test_an_answer_slower_than_the_client_timeout_is_not_sent_twice(
    bus: Bus, make_settings: Callable[..., NotifierSettings], on_call: list[str]
) -> None:
    with FakeTwilio(create_answer_seconds=1.5) as slow:
        settings = make_settings(TWILIO_API_BASE_URL=slow.url)
        assert settings.twilio_account_sid and settings.twilio_auth_token and settings.twilio_whatsapp_number
        impatient = WhatsAppClient(
            settings.twilio_account_sid,
            settings.twilio_auth_token.get_secret_value(),
            settings.twilio_whatsapp_number,
            slow.url,
            retry=QUICK_RETRY,
            timeout_seconds=0.5,
        )
        diagnosis = note("🚨 *Incident diagnosis* #a1b2c3", key=unique("diag"))

        with pytest.raises(SendError) as lost:
            await deliver(bus, impatient, on_call[:1], diagnosis, lease_seconds=SHORT_LEASE)
        assert lost.value.status is None and not lost.value.permanent  # no answer: unknown
        reconciled_before = sends("reconciled")
        await deliver(bus, impatient, on_call[:1], diagnosis, lease_seconds=SHORT_LEASE)  # the redelivery

        (sent,) = slow.messages
    assert sends("reconciled") - reconciled_before == 1
    assert await incident_of_message(bus, sent["sid"]) == "a1b2c3"  # a reply to it still finds its incident
    lists = [r for r in slow.requests if r.method == "GET"]
    assert lists and lists[0].arg("To") == f"whatsapp:{on_call[0]}"
    assert lists[0].arg("From") == f"whatsapp:{settings.twilio_whatsapp_number}"
    assert lists[0].arg("DateSent>") is not None


async def test_a_send_abandoned_after_twilio_took_it_is_found_not_resent(
    bus: Bus, twilio: FakeTwilio, channel: WhatsAppClient, on_call: list[str]
) -> None:
    diagnosis = note("🚨 *Incident diagnosis* #a1b2c3", key=unique("diag"))
    key = kv_key(f"sent.{diagnosis.key}.{on_call[0].removeprefix('+')}")
    # A notifier took the lease, Twilio accepted its message, and the notifier died.
    lease = await records.acquire(bus, key, SHORT_LEASE)
    assert lease is not None and not lease.uncertain
    await channel.send(on_call[0], diagnosis.text)

    await deliver(bus, channel, on_call[:1], diagnosis, lease_seconds=SHORT_LEASE)

    assert len(twilio.messages) == 1


async def test_a_send_abandoned_before_twilio_took_it_is_sent_once(
    bus: Bus, twilio: FakeTwilio, channel: WhatsAppClient, on_call: list[str]
) -> None:
    diagnosis = note("🚨 *Incident diagnosis* #a1b2c3", key=unique("diag"))
    key = kv_key(f"sent.{diagnosis.key}.{on_call[0].removeprefix('+')}")
    # The same message a day earlier, for another notification: not taken for this one.
    twilio_other = note(diagnosis.text, key=unique("diag"))
    await deliver(bus, channel, on_call[:1], twilio_other)
    assert await records.acquire(bus, key, SHORT_LEASE) is not None  # taken, then the holder died

    await deliver(bus, channel, on_call[:1], diagnosis, lease_seconds=SHORT_LEASE)

    assert len(twilio.messages) == 2


async def test_a_failed_send_releases_its_claim(
    bus: Bus, twilio: FakeTwilio, channel: WhatsAppClient, on_call: list[str]
) -> None:
    text = note("x", incident_id=None, key=unique("text"))
    twilio.fail_next(500, 20500, "Internal Server Error", times=QUICK_RETRY.attempts)

    with pytest.raises(SendError):
        await deliver(bus, channel, on_call[:1], text)
    await deliver(bus, channel, on_call[:1], text)  # at once: no lease left to wait for

    assert len(twilio.messages) == 1


# --- outside the 24-hour window ---------------------------------------------------------------


async def test_a_closed_window_gets_the_template_instead(
    bus: Bus, twilio: FakeTwilio, channel: WhatsAppClient, on_call: list[str]
) -> None:
    closed_before, templates_before = sends("failed_63016"), sends("template")
    twilio.fail_next(
        400, 63016, "Failed to send freeform message because you are outside the allowed window."
    )
    diagnosis = note(
        "🚨 *Incident diagnosis* #a1b2c3\n*HighErrorRate on checkout*", headline="HighErrorRate on checkout"
    )

    await deliver(bus, channel, on_call, diagnosis)

    template, regular = twilio.messages
    assert template["To"] == f"whatsapp:{on_call[0]}"
    assert template["ContentSid"] == TEMPLATE_SID
    assert "Body" not in template  # a Body beside the template would be refused again
    assert json.loads(template["ContentVariables"]) == {"1": "#a1b2c3 HighErrorRate on checkout"}
    assert regular["To"] == f"whatsapp:{on_call[1]}" and regular["Body"].startswith("🚨")
    assert sends("failed_63016") - closed_before == 1
    assert sends("template") - templates_before == 1
    # A reply to the template finds the incident.
    assert await incident_of_message(bus, template["sid"]) == "a1b2c3"


async def test_one_invitation_per_notification_and_person(
    bus: Bus, twilio: FakeTwilio, channel: WhatsAppClient, on_call: list[str]
) -> None:
    long = note("\n".join("evidence " * 20 for _ in range(30)))  # several parts
    refused = "Failed to send freeform message because you are outside the allowed window."

    twilio.fail_next(400, 63016, refused)  # part 1; the template then passes
    await deliver(bus, channel, on_call[:1], long)
    twilio.fail_next(400, 63016, refused)  # a replay: the window is still closed
    await deliver(bus, channel, on_call[:1], long)

    (template,) = twilio.messages
    assert template["ContentSid"] == TEMPLATE_SID


async def test_without_a_template_a_closed_window_is_a_counted_failure(
    bus: Bus, twilio: FakeTwilio, make_settings: Callable[..., NotifierSettings], on_call: list[str]
) -> None:
    channel = WhatsAppClient.from_settings(make_settings())  # no TWILIO_TEMPLATE_SID
    before = sends("failed_permanent")
    twilio.fail_next(400, 63016, "outside the allowed window")

    await deliver(bus, channel, on_call, note("hello"))

    assert addressees(twilio) == [on_call[1]]
    assert sends("failed_permanent") - before == 1


# --- recipients and the console -------------------------------------------------------------


def test_keys_are_valid_kv_keys_and_stay_distinct() -> None:
    assert kv_key("sent.diag.a1b2c3.2.15551230001") == "sent.diag.a1b2c3.2.15551230001"
    odd = kv_key("sent.text.from oncall reply: 1.15551230001")
    assert all(c.isalnum() or c in "-/_=." for c in odd)
    assert odd != kv_key("sent.text.from_oncall_reply__1.15551230001")
    empty_tokens = kv_key("sent.text..x.")
    assert ".." not in empty_tokens
    assert not empty_tokens.endswith(".")


def test_recipients(on_call: list[str]) -> None:
    assert recipients(on_call, console_mode=False) == on_call
    assert recipients([], console_mode=False) == []
    # An answer for one person goes to that person only, and never outside the on-call list.
    assert recipients(on_call, False, [f"whatsapp:{on_call[1]}"]) == [on_call[1]]
    assert recipients(on_call, False, ["+15559999999", "not a number"]) == []


def test_the_console_prints_each_message_once_for_everyone_it_is_for(on_call: list[str]) -> None:
    assert recipients(on_call, console_mode=True) == [", ".join(on_call)]
    assert recipients([], console_mode=True) == [CONSOLE_RECIPIENT]
    assert recipients(on_call, True, [on_call[1]]) == [on_call[1]]
    assert recipients([], True, ["+15559999999"]) == ["+15559999999"]


async def test_console_mode_prints_a_notification_once(
    bus: Bus, on_call: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    notifier = Notifier(bus, ConsoleChannel(bus.broker), on_call, console_mode=True)
    incident = uuid.uuid4().hex[:6]

    await notifier.on_resolved(IncidentResolved(incident_id=incident, title="HighErrorRate on checkout"))

    printed = capsys.readouterr().out
    assert printed.count(f"✅ *Resolved* #{incident}") == 1
    assert f"── WhatsApp to {on_call[0]}, {on_call[1]} ──" in printed


async def test_console_channel_prints_and_mirrors_on_nats(
    bus: Bus, capsys: pytest.CaptureFixture[str]
) -> None:
    mirrored = await bus.broker.connection.subscribe(subjects.CONSOLE_OUT)

    sid = await ConsoleChannel(bus.broker).send("+15551230001", "✅ *Resolved* #a1b2c3")

    printed = capsys.readouterr().out
    assert "── WhatsApp to +15551230001 ──" in printed
    assert "\n✅ *Resolved* #a1b2c3\n" in printed
    assert sid.startswith("CONSOLE")
    assert len(sid) == len("CONSOLE") + 28
    msg = await mirrored.next_msg(timeout=2)
    assert json.loads(msg.data) == {
        "to": "+15551230001",
        "body": "✅ *Resolved* #a1b2c3",
        "sid": sid,
        "in_reply_to": None,  # not an answer to anyone's reply
        "follow_up_expected": False,
    }
    await mirrored.unsubscribe()


# --- the wired service ----------------------------------------------------------------------


async def test_events_reach_whatsapp_once(
    bus: Bus, twilio: FakeTwilio, settings: NotifierSettings, on_call: list[str]
) -> None:
    """The wired service's handlers, run by FastStream's in-memory test broker (KV on the real
    bus): a diagnosis delivered twice (a replay with a new message id) and a ticket failure each
    reach every on-call number once."""
    parts = wire(ServiceContext(settings=settings, bus=bus))
    assert parts.router is not None
    broker = NatsBroker()
    broker.include_router(parts.router)
    incident = uuid.uuid4().hex[:6]  # KV outlives a test on the session's server
    event = IncidentDiagnosed(
        incident_id=incident,
        title="HighErrorRate on inventory",
        diagnosis=Diagnosis(root_cause="None cache entry", method="rules"),
    )
    failed = TicketFailed(
        request_id=f"req-{incident}", incident_id=incident, reason="Jira is not configured."
    )

    async with TestNatsBroker(broker) as in_memory:
        await in_memory.publish(event.to_bytes(), subjects.INCIDENTS_DIAGNOSED)
        await in_memory.publish(event.to_bytes(), subjects.INCIDENTS_DIAGNOSED)
        await in_memory.publish(failed.to_bytes(), subjects.TICKETS_FAILED)

    bodies = [m["Body"] for m in twilio.messages]
    assert len(bodies) == 2 * len(on_call)
    assert sum(b.startswith(f"🚨 *Incident diagnosis* #{incident}") for b in bodies) == len(on_call)
    assert sum(b.startswith(f"⚠️ *Jira task not created* #{incident}") for b in bodies) == len(on_call)
