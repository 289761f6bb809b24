"""Twilio's status callbacks: what became of each message, recorded, counted, never a reply."""

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fakes import FakeTwilio
from notifier.twilio_posts import SENDER, STATUS_PATH, Webhook, status_form

from services.contracts import streams, subjects
from services.notifier import records
from services.notifier.delivery import Notification, deliver
from services.notifier.records import DeliveryStatus, advance_status
from services.notifier.settings import NotifierSettings
from services.notifier.status import status_outcome
from services.notifier.whatsapp import WhatsAppClient
from services.runtime import metrics
from services.runtime.bus import Bus

MakeSettings = Callable[..., NotifierSettings]
OpenTap = Callable[..., Any]  # the conftest's tap_events: subject -> Tap
TEMPLATE_SID = "HX" + "d" * 32


@pytest.fixture
def settings(make_settings: MakeSettings) -> NotifierSettings:
    return make_settings(TWILIO_TEMPLATE_SID=TEMPLATE_SID)


@pytest.fixture
async def webhook(settings: NotifierSettings, bus: Bus) -> Webhook:
    return Webhook(settings, bus)


def counted(outcome: str) -> float:
    labels = {"channel": "whatsapp", "outcome": outcome}
    return metrics.REGISTRY.get_sample_value("oncall_whatsapp_messages_total", labels) or 0.0


def new_sid() -> str:
    return "SM" + uuid.uuid4().hex


async def stored_status(bus: Bus, sid: str) -> DeliveryStatus | None:
    found, _ = await bus.kv_get(streams.DELIVERIES, records.status_key(sid), DeliveryStatus)
    return found


async def test_a_signed_callback_is_recorded_and_counted(webhook: Webhook, bus: Bus) -> None:
    sid = new_sid()
    before = counted("status_delivered")

    response = await webhook.post_status(status_form(sid, "delivered"))

    assert response.status_code == 200
    stored = await stored_status(bus, sid)
    assert stored is not None and stored.status == "delivered" and stored.error_code is None
    assert counted("status_delivered") - before == 1


async def test_a_failure_is_recorded_with_its_error_code(webhook: Webhook, bus: Bus) -> None:
    sid = new_sid()
    before = counted("status_undelivered_63024")

    await webhook.post_status(status_form(sid, "undelivered", ErrorCode="63024", ErrorMessage="Invalid"))

    stored = await stored_status(bus, sid)
    assert stored is not None and (stored.status, stored.error_code) == ("undelivered", "63024")
    assert counted("status_undelivered_63024") - before == 1


async def test_callbacks_out_of_order_keep_the_furthest_status(webhook: Webhook, bus: Bus) -> None:
    sid = new_sid()
    before = counted("status_sent")

    for status in ("read", "delivered", "sent", "read"):
        assert (await webhook.post_status(status_form(sid, status))).status_code == 200

    stored = await stored_status(bus, sid)
    assert stored is not None and stored.status == "read"
    assert counted("status_sent") == before  # no news, not counted


@pytest.mark.parametrize("signature", [None, "bm90IGEgc2lnbmF0dXJl"])
async def test_an_unsigned_or_badly_signed_callback_is_refused(
    webhook: Webhook, bus: Bus, signature: str | None
) -> None:
    sid = new_sid()

    response = await webhook.post_status(status_form(sid, "failed", ErrorCode="63016"), signature=signature)

    assert response.status_code == 403
    assert await stored_status(bus, sid) is None


async def test_the_signature_covers_the_status_path_not_the_reply_path(webhook: Webhook, bus: Bus) -> None:
    sid = new_sid()
    form = status_form(sid, "delivered")
    signed_for_replies = webhook.sign(webhook.public_url, form)

    response = await webhook.post_status(form, signature=signed_for_replies)

    assert response.status_code == 403
    assert webhook.public_base_url + STATUS_PATH != webhook.public_url


async def test_a_callback_is_never_published_as_a_reply(webhook: Webhook, tap_events: OpenTap) -> None:
    replies = await tap_events(subjects.HUMAN_REPLIED)

    # Even one carrying a Body and coming from an on-call number.
    form = status_form(new_sid(), "read", From=f"whatsapp:{SENDER}", Body="create jira task")
    response = await webhook.post_status(form)

    assert response.status_code == 200
    assert await replies.read(wait=0.3) == []


# --- 63016 reported after the send ---------------------------------------------------------------


async def test_a_closed_window_reported_later_gets_the_template_once(
    webhook: Webhook, bus: Bus, twilio: FakeTwilio, settings: NotifierSettings
) -> None:
    # WhatsApp takes both parts of a long diagnosis (201), then reports each failed: the window
    # was closed.
    text = "🚨 *Incident diagnosis* #5ca1ab\n" + "\n".join("evidence " * 20 for _ in range(12))
    diagnosis = Notification(f"diag.{uuid.uuid4().hex}", "5ca1ab", text, "HighErrorRate on checkout")
    await deliver(bus, WhatsAppClient.from_settings(settings), [SENDER], diagnosis)
    first, second = twilio.messages

    for part in (first, second):
        failed = status_form(
            part["sid"], "failed", ErrorCode="63016", ErrorMessage="Outside the allowed window"
        )
        assert (await webhook.post_status(failed)).status_code == 200

    _, _, template = twilio.messages  # one invitation for the whole notification
    assert template["To"] == f"whatsapp:{SENDER}"
    assert template["ContentSid"] == TEMPLATE_SID and "Body" not in template
    assert json.loads(template["ContentVariables"]) == {"1": "#5ca1ab HighErrorRate on checkout"}


async def test_a_closed_window_for_a_message_not_ours_invites_nobody(
    webhook: Webhook, twilio: FakeTwilio
) -> None:
    response = await webhook.post_status(status_form(new_sid(), "failed", ErrorCode="63016"))

    assert response.status_code == 200
    assert twilio.messages == []


# --- the pure decisions ---------------------------------------------------------------------


def test_outcome_labels() -> None:
    assert status_outcome(DeliveryStatus(status="read", updated_at=0)) == "status_read"
    assert (
        status_outcome(DeliveryStatus(status="failed", error_code="63016", updated_at=0))
        == "status_failed_63016"
    )
    assert status_outcome(DeliveryStatus(status="failed", updated_at=0)) == "status_failed"


def test_statuses_only_move_forward() -> None:
    def status(name: str) -> DeliveryStatus:
        return DeliveryStatus(status=name, updated_at=0)

    assert advance_status(None, status("sent")) == status("sent")
    assert advance_status(status("sent"), status("delivered")) == status("delivered")
    assert advance_status(status("read"), status("delivered")) is None
    assert advance_status(status("delivered"), status("delivered")) is None
    assert advance_status(status("sent"), status("failed")) == status("failed")
    assert advance_status(status("failed"), status("read")) is None
