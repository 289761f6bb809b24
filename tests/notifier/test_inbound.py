"""The Twilio webhook: signed replies from on-call people become `oncall.human.replied`."""

import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fakes import FakeTwilio
from nats.aio.msg import Msg
from twilio.request_validator import RequestValidator

from services.contracts import subjects
from services.contracts.models import HumanReplied
from services.notifier.app import wire
from services.notifier.delivery import deliver
from services.notifier.inbound import (
    EMPTY_TWIML,
    MAX_FORM_BYTES,
    allowed_sender,
    incident_tag_in,
    match_incident,
    signed_url,
)
from services.notifier.whatsapp import WhatsAppClient
from services.runtime import metrics
from services.runtime.broker import make_broker
from services.runtime.bus import Bus
from services.runtime.http import build_http_app
from services.runtime.service import ServiceContext
from services.runtime.settings import Settings

MakeSettings = Callable[..., Settings]
OpenTap = Callable[..., Any]  # the conftest's tap_events: subject -> Tap
SENDER = "+15551230001"  # on call in the conftest settings
STRANGER = "+15559990000"
# The address behind our proxy: what the request's Host says, never what Twilio signed.
INTERNAL_BASE = "http://notifier.oncall.svc:8080"


def twilio_form(body: str = "status", sender: str = SENDER, **extra: str) -> dict[str, str]:
    """A WhatsApp reply as Twilio posts it (external-apis.md §3.1)."""
    sid = "SM" + uuid.uuid4().hex
    return {
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ProfileName": "Alice",
        "MessageType": "text",
        "SmsSid": sid,
        "WaId": sender.removeprefix("+"),
        "SmsStatus": "received",
        "Body": body,
        "To": "whatsapp:+14155238886",
        "NumSegments": "1",
        "ReferralNumMedia": "0",
        "MessageSid": sid,
        "AccountSid": "AC" + "0123456789abcdef" * 2,
        "From": f"whatsapp:{sender}",
        "ApiVersion": "2010-04-01",
        **extra,
    }


class Webhook:
    """Posts forms to the notifier's routes as Twilio would, signed for `PUBLIC_BASE_URL`."""

    def __init__(self, settings: Settings, bus: Bus):
        parts = wire(ServiceContext(settings=settings, broker=bus.broker, bus=bus))
        app = build_http_app(parts.routes, lambda: (True, "ok"))
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=INTERNAL_BASE)
        self.token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else "unset"
        self.public_url = f"{settings.public_base_url}/webhook/twilio"

    def sign(self, url: str, form: dict[str, str], token: str | None = None) -> str:
        return str(RequestValidator(token or self.token).compute_signature(url, form))

    async def post(
        self,
        form: dict[str, str],
        signature: str | None = "auto",
        query: str = "",
        body: bytes | None = None,
    ) -> httpx.Response:
        if signature == "auto":
            signature = self.sign(self.public_url + (f"?{query}" if query else ""), form)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if signature is not None:
            headers["X-Twilio-Signature"] = signature
        content = body if body is not None else urlencode(form).encode()
        path = "/webhook/twilio" + (f"?{query}" if query else "")
        return await self.client.post(path, content=content, headers=headers)


@pytest.fixture
def settings(make_settings: MakeSettings) -> Settings:
    return make_settings()


@pytest.fixture
async def webhook(settings: Settings, bus: Bus) -> Webhook:
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
    assert reply.replied_to_sid is None


async def test_a_swipe_reply_is_matched_to_the_incident_of_the_message_it_answers(
    webhook: Webhook, bus: Bus, twilio: FakeTwilio, settings: Settings, tap_events: OpenTap
) -> None:
    await deliver(
        bus,
        WhatsAppClient.from_settings(settings),
        [SENDER],
        f"diag.{uuid.uuid4().hex}.1",
        "5ca1ab",
        "🚨 *Incident diagnosis* #5ca1ab",
    )
    (diagnosis_message,) = twilio.messages
    replies = await tap_events(subjects.HUMAN_REPLIED)

    response = await webhook.post(twilio_form("ACK", OriginalRepliedMessageSid=diagnosis_message["sid"]))

    assert response.status_code == 200
    (reply,) = decode(await replies.read())
    assert reply.incident_id == "5ca1ab"
    assert reply.replied_to_sid == diagnosis_message["sid"]


async def test_a_typed_tag_matches_its_incident(webhook: Webhook, tap_events: OpenTap) -> None:
    replies = await tap_events(subjects.HUMAN_REPLIED)

    # A reply to a message we no longer know (expired) falls back to the tag in the text.
    unknown_sid = "SM" + "f" * 32
    await webhook.post(twilio_form("status of #A1B2C3 please", OriginalRepliedMessageSid=unknown_sid))

    (reply,) = decode(await replies.read())
    assert reply.incident_id == "a1b2c3"
    assert reply.replied_to_sid == unknown_sid


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


async def test_nats_down_answers_503_so_twilio_can_retry(settings: Settings) -> None:
    # A bus whose broker never connected: every publish fails.
    bus = Bus(make_broker("nats://127.0.0.1:9", "test-notifier-down"))
    webhook = Webhook(settings, bus)

    response = await webhook.post(twilio_form())

    assert response.status_code == 503


# --- the pure decisions ---------------------------------------------------------------------


def test_the_signed_url_is_the_public_one() -> None:
    assert signed_url("https://oncall.example.com/") == "https://oncall.example.com/webhook/twilio"
    assert signed_url("https://x.io/base", "a=1&b=2") == "https://x.io/base/webhook/twilio?a=1&b=2"


def test_senders() -> None:
    on_call = [SENDER]
    assert allowed_sender(f"whatsapp:{SENDER}", on_call) == SENDER
    assert allowed_sender(SENDER, on_call) == SENDER
    assert allowed_sender(f"whatsapp:{STRANGER}", on_call) is None
    assert allowed_sender("messenger:12345", on_call) is None
    assert allowed_sender("", on_call) is None


@pytest.mark.parametrize(
    ("body", "tag"),
    [
        ("status #a1b2c3", "a1b2c3"),
        ("#A1B2C3: create jira task", "a1b2c3"),
        ("ack (#0f0f0f)", "0f0f0f"),
        ("create jira task", None),
        ("see #a1b2c3d4", None),  # longer than an incident id
        ("issue#a1b2c3", None),  # inside a word
        ("##a1b2c3", None),
        ("#a1b2", None),
    ],
)
def test_incident_tags_in_text(body: str, tag: str | None) -> None:
    assert incident_tag_in(body) == tag


def test_the_replied_message_wins_over_a_typed_tag() -> None:
    assert match_incident("5ca1ab", "status #a1b2c3") == "5ca1ab"
    assert match_incident(None, "status #a1b2c3") == "a1b2c3"
    assert match_incident(None, "status") is None
