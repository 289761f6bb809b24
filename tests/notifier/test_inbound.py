"""The Twilio webhook: signed replies from on-call people become `oncall.human.replied`."""

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fakes import FakeTwilio
from nats.aio.msg import Msg
from notifier.conftest import connected_bus
from notifier.twilio_posts import INTERNAL_BASE, SENDER, Webhook, status_form, twilio_form
from support.nats_node import RestartableNats

from services.contracts import streams, subjects
from services.contracts.models import HumanReplied
from services.notifier import inbound, records
from services.notifier.delivery import Notification, deliver
from services.notifier.inbound import allowed_sender, is_status_callback
from services.notifier.settings import NotifierSettings
from services.notifier.webhook import EMPTY_TWIML, MAX_FORM_BYTES, parse_form, signed_url
from services.notifier.whatsapp import WhatsAppClient
from services.runtime import metrics
from services.runtime.broker import make_broker
from services.runtime.bus import Bus

MakeSettings = Callable[..., NotifierSettings]
OpenTap = Callable[..., Any]  # the conftest's tap_events: subject -> Tap
STRANGER = "+15559990000"


@pytest.fixture
def settings(make_settings: MakeSettings) -> NotifierSettings:
    return make_settings()


@pytest.fixture
async def webhook(settings: NotifierSettings, bus: Bus) -> Webhook:
    return Webhook(settings, bus)


def replies_counted(outcome: str) -> float:
    return metrics.REGISTRY.get_sample_value("oncall_inbound_replies_total", {"outcome": outcome}) or 0.0


def decode(msgs: list[Msg]) -> list[HumanReplied]:
    return [HumanReplied.model_validate_json(m.data) for m in msgs]


# --- the story ------------------------------------------------------------------------------


async def test_a_signed_reply_is_published_and_answered_with_empty_twiml(
    webhook: Webhook, tap_events: OpenTap
) -> None:
    replies = await tap_events(subjects.HUMAN_REPLIED)
    form = twilio_form("create jira task and assign to Ravi")

    response = await webhook.post(form)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    assert response.text == EMPTY_TWIML == '<?xml version="1.0" encoding="UTF-8"?><Response />'
    (msg,) = await replies.read()
    assert msg.headers and msg.headers["Nats-Msg-Id"] == f"reply-{form['MessageSid']}"
    (reply,) = decode([msg])
    assert reply.message_sid == form["MessageSid"]
    assert reply.sender == SENDER
    assert reply.body == "create jira task and assign to Ravi"
    assert reply.channel == "whatsapp"
    assert reply.profile_name == "Alice"
    assert reply.incident_id is None  # the diagnoser picks the sender's newest open incident


async def test_a_swipe_reply_is_matched_to_the_incident_of_the_message_it_answers(
    webhook: Webhook, bus: Bus, twilio: FakeTwilio, settings: NotifierSettings, tap_events: OpenTap
) -> None:
    diagnosis = Notification(
        f"diag.{uuid.uuid4().hex}.1", "5ca1ab", "🚨 *Incident diagnosis* #5ca1ab", "title"
    )
    await deliver(bus, WhatsAppClient.from_settings(settings), [SENDER], diagnosis)
    (diagnosis_message,) = twilio.messages
    replies = await tap_events(subjects.HUMAN_REPLIED)

    response = await webhook.post(twilio_form("ACK", OriginalRepliedMessageSid=diagnosis_message["sid"]))

    assert response.status_code == 200
    (reply,) = decode(await replies.read())
    assert reply.incident_id == "5ca1ab"


async def test_a_typed_tag_is_left_to_the_diagnoser(webhook: Webhook, tap_events: OpenTap) -> None:
    replies = await tap_events(subjects.HUMAN_REPLIED)

    # A reply to a message we no longer know (expired) is matched by nothing the notifier knows;
    # the tag in the text is matched by the diagnoser, as for every channel (tests/diagnoser).
    unknown_sid = "SM" + "f" * 32
    await webhook.post(twilio_form("status of #A1B2C3 please", OriginalRepliedMessageSid=unknown_sid))

    (reply,) = decode(await replies.read())
    assert reply.incident_id is None
    assert reply.body == "status of #A1B2C3 please"


async def test_twilio_delivering_the_same_message_twice_publishes_it_once(
    webhook: Webhook, tap_events: OpenTap
) -> None:
    replies = await tap_events(subjects.HUMAN_REPLIED)
    form = twilio_form("status")
    duplicates_before = replies_counted("duplicate")

    first = await webhook.post(form)
    second = await webhook.post(form)

    assert (first.status_code, second.status_code) == (200, 200)
    assert len(await replies.read()) == 1
    assert replies_counted("duplicate") - duplicates_before == 1


async def test_a_repeat_after_the_jetstream_dedup_window_is_still_dropped(
    webhook: Webhook, tap_events: OpenTap, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Past the stream's duplicate window JetStream no longer knows the message id: as if every
    # publish carried a new one. Only the KV claim on the MessageSid stands.
    monkeypatch.setattr(inbound, "reply_msg_id", lambda sid: f"reply-{sid}-{uuid.uuid4().hex}")
    replies = await tap_events(subjects.HUMAN_REPLIED)
    form = twilio_form("create jira task and assign to Ravi")
    duplicates_before = replies_counted("duplicate")

    first = await webhook.post(form)
    second = await webhook.post(form)

    assert (first.status_code, second.status_code) == (200, 200)
    assert second.text == EMPTY_TWIML
    assert len(await replies.read()) == 1
    assert replies_counted("duplicate") - duplicates_before == 1


async def test_a_failed_publish_is_refused_so_that_the_retry_is_published(
    webhook: Webhook, bus: Bus, tap_events: OpenTap, monkeypatch: pytest.MonkeyPatch
) -> None:
    replies = await tap_events(subjects.HUMAN_REPLIED)
    form = twilio_form("status")
    publish = bus.publish_event
    failures = iter([ConnectionError("NATS went away")])

    async def flaky_publish(*args: Any, **kwargs: Any) -> Any:
        for exc in failures:
            raise exc
        return await publish(*args, **kwargs)

    monkeypatch.setattr(bus, "publish_event", flaky_publish)

    assert (await webhook.post(form)).status_code == 503
    assert (await webhook.post(form)).status_code == 200  # Twilio's retry

    (reply,) = decode(await replies.read())
    assert reply.message_sid == form["MessageSid"]


async def test_a_repeat_racing_the_first_publish_is_dropped_by_jetstream(
    webhook: Webhook, bus: Bus, tap_events: OpenTap
) -> None:
    replies = await tap_events(subjects.HUMAN_REPLIED)
    form = twilio_form("status")

    first, second = await asyncio.gather(webhook.post(form), webhook.post(form))

    assert (first.status_code, second.status_code) == (200, 200)
    assert len(await replies.read()) == 1


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(600):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("the NATS client did not change state")


async def test_a_reply_while_nats_is_down_is_refused_unrecorded_and_its_retry_is_published_once(
    settings: NotifierSettings, tmp_path: Path
) -> None:
    with RestartableNats(tmp_path / "nats") as server:
        bus = await connected_bus(server.url)
        try:
            webhook = Webhook(settings, bus)
            form = twilio_form("create jira task and assign to Ravi")
            server.stop()
            await until(lambda: not bus.broker.connection.is_connected)  # the client notices

            refused = await webhook.post(form)

            server.start()  # the same port and store: the client reconnects on its own
            await until(lambda: bus.broker.connection.is_connected)
            retried = await webhook.post(form)  # Twilio's retry
            again = await webhook.post(form)  # and a repeat of it
            stored = await bus.js.stream_info(streams.EVENTS.name)
            replies = await bus.js.pull_subscribe(subjects.HUMAN_REPLIED, stream=streams.EVENTS.name)
            published = await replies.fetch(10, timeout=1.0)
        finally:
            await bus.broker.stop()

    assert refused.status_code == 503
    assert (retried.status_code, again.status_code) == (200, 200)
    assert stored.state.messages == 1
    assert [HumanReplied.model_validate_json(m.data).message_sid for m in published] == [form["MessageSid"]]


async def test_a_claim_left_by_a_crashed_notifier_is_taken_over(
    webhook: Webhook, bus: Bus, tap_events: OpenTap
) -> None:
    replies = await tap_events(subjects.HUMAN_REPLIED)
    form = twilio_form("status")
    abandoned = records.pending_value(b"", now=0.0)  # taken long ago, never finished
    await bus.kv_put_text(
        records.streams.DELIVERIES, records.inbound_key(form["MessageSid"]), abandoned.decode()
    )

    response = await webhook.post(form)

    assert response.status_code == 200
    assert len(await replies.read()) == 1


async def test_a_status_callback_sent_here_is_not_a_reply(webhook: Webhook, tap_events: OpenTap) -> None:
    replies = await tap_events(subjects.HUMAN_REPLIED)
    before = replies_counted("status_callback")
    # As if the Twilio number's settings sent delivery reports to the reply URL; From is our number.
    form = status_form("SM" + uuid.uuid4().hex, "delivered", Body="")

    response = await webhook.post(form)

    assert response.status_code == 200
    assert await replies.read(wait=0.3) == []
    assert replies_counted("status_callback") - before == 1


async def test_a_stranger_gets_no_action_and_no_hint(webhook: Webhook, tap_events: OpenTap) -> None:
    replies = await tap_events(subjects.HUMAN_REPLIED)
    before = replies_counted("unknown_sender")

    response = await webhook.post(twilio_form("create jira task", sender=STRANGER))

    assert response.status_code == 200
    assert response.text == EMPTY_TWIML
    assert await replies.read(wait=0.3) == []
    assert replies_counted("unknown_sender") - before == 1


async def test_the_query_string_twilio_called_is_part_of_what_is_signed(
    webhook: Webhook, tap_events: OpenTap
) -> None:
    replies = await tap_events(subjects.HUMAN_REPLIED)

    response = await webhook.post(twilio_form(), query="source=whatsapp")

    assert response.status_code == 200
    assert len(await replies.read()) == 1


# --- refusals -------------------------------------------------------------------------------


async def test_no_signature_is_refused(webhook: Webhook, tap_events: OpenTap) -> None:
    replies = await tap_events(subjects.HUMAN_REPLIED)

    response = await webhook.post(twilio_form(), signature=None)

    assert response.status_code == 403
    assert "X-Twilio-Signature" in response.text
    assert await replies.read(wait=0.3) == []


@pytest.mark.parametrize(
    "signed_for",
    [
        "http://oncall.example.com/webhook/twilio",  # http where Twilio signed https
        f"{INTERNAL_BASE}/webhook/twilio",  # the Host we see behind the proxy
        "https://oncall.example.com/webhook/twilio?extra=1",  # another URL than the one called
    ],
)
async def test_a_signature_for_another_url_is_refused(
    webhook: Webhook, signed_for: str, tap_events: OpenTap
) -> None:
    replies = await tap_events(subjects.HUMAN_REPLIED)
    form = twilio_form()

    response = await webhook.post(form, signature=webhook.sign(signed_for, form))

    assert response.status_code == 403
    assert await replies.read(wait=0.3) == []


async def test_a_signature_made_with_another_token_is_refused(webhook: Webhook) -> None:
    form = twilio_form()

    response = await webhook.post(form, signature=webhook.sign(webhook.public_url, form, token="not-ours"))

    assert response.status_code == 403


async def test_an_altered_body_is_refused(webhook: Webhook, tap_events: OpenTap) -> None:
    replies = await tap_events(subjects.HUMAN_REPLIED)
    form = twilio_form("status")
    signature = webhook.sign(webhook.public_url, form)
    tampered = urlencode({**form, "Body": "create jira task and assign to Mallory"}).encode()

    response = await webhook.post(form, signature=signature, body=tampered)

    assert response.status_code == 403
    assert await replies.read(wait=0.3) == []


@pytest.mark.parametrize("unset", ["TWILIO_AUTH_TOKEN", "PUBLIC_BASE_URL"])
async def test_without_the_token_or_public_url_nothing_is_trusted(
    make_settings: MakeSettings, bus: Bus, unset: str
) -> None:
    webhook = Webhook(make_settings(**{unset: None}), bus)

    response = await webhook.post(twilio_form())

    assert response.status_code == 403
    assert "not configured" in response.text


async def test_an_oversized_body_is_refused_before_it_is_read(webhook: Webhook) -> None:
    form = twilio_form("x" * (MAX_FORM_BYTES + 1))

    response = await webhook.post(form)

    assert response.status_code == 413


async def test_nats_down_answers_503_so_twilio_can_retry(settings: NotifierSettings) -> None:
    # A bus whose broker never connected: every publish fails.
    bus = Bus(make_broker("nats://127.0.0.1:9", "test-notifier-down"))
    webhook = Webhook(settings, bus)

    response = await webhook.post(twilio_form())

    assert response.status_code == 503


# --- the pure decisions ---------------------------------------------------------------------


def test_the_signed_url_is_the_public_one() -> None:
    path = "/webhook/twilio"
    assert signed_url("https://oncall.example.com/", path) == "https://oncall.example.com/webhook/twilio"
    assert signed_url("https://x.io/base", path, "a=1&b=2") == "https://x.io/base/webhook/twilio?a=1&b=2"


def test_status_callbacks_are_told_from_replies() -> None:
    assert not is_status_callback(parse_form(urlencode(twilio_form()).encode()))
    assert not is_status_callback(parse_form(b"MessageSid=SM1&Body=hi"))  # no status at all
    for status in ("queued", "sent", "delivered", "read", "failed", "undelivered"):
        assert is_status_callback(parse_form(urlencode(status_form("SM1", status)).encode()))


def test_senders() -> None:
    on_call = [SENDER]
    assert allowed_sender(f"whatsapp:{SENDER}", on_call) == SENDER
    assert allowed_sender(SENDER, on_call) == SENDER
    assert allowed_sender(f"whatsapp:{STRANGER}", on_call) is None
    assert allowed_sender("messenger:12345", on_call) is None
    assert allowed_sender("", on_call) is None
