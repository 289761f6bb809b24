"""The Twilio webhook: a WhatsApp reply from an on-call person becomes `oncall.human.replied`.

The handler only verifies, matches the incident and publishes; it never waits for the model, so
Twilio gets its answer well within its 15 s. It matches only what it alone knows: the message of
ours the person swipe-replied to. A `#tag` typed in the text is matched by the diagnoser, the same
for every channel.

Twilio may deliver the same message twice. JetStream drops a repeated `Nats-Msg-Id` only within
the stream's duplicate window (10 min), so the webhook first claims `inbound.<MessageSid>` in KV
(kept 14 days): a later repeat finds the claim and is dropped. A publish that fails gives the
claim back, so Twilio's retry is published rather than lost.
"""

import logging
from collections.abc import Awaitable, Callable
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from services.contracts import subjects
from services.contracts.models import HumanReplied
from services.contracts.settings import normalize_phone
from services.notifier import metrics, records
from services.notifier.messages import mask_number
from services.notifier.settings import NotifierSettings
from services.notifier.webhook import REPLY_PATH, Form, TwilioRequests, twiml
from services.runtime.bus import Bus

log = logging.getLogger("oncall.notifier.inbound")

# Longer than claiming, matching and publishing can take (the publish times out after 5 s): a
# claim older than this was left by a notifier that died, and a retry takes it over.
INBOUND_LEASE_SECONDS: Final = 30.0
# The status of an inbound message; any other is one of our own messages' status callbacks.
RECEIVED: Final = "received"

Endpoint = Callable[[Request], Awaitable[Response]]


# --- decisions (pure) ---------------------------------------------------------------------


def is_status_callback(form: Form) -> bool:
    """A status callback of a message of ours (sent, delivered, read, failed...) posted here
    because a StatusCallback or the number's settings point at this URL: never a reply."""
    status = form.get("MessageStatus") or form.get("SmsStatus") or RECEIVED
    return status.lower() != RECEIVED


def allowed_sender(raw_from: str, on_call: list[str]) -> str | None:
    """The sender as E.164 when it may command the agent, else None."""
    try:
        sender = normalize_phone(raw_from)
    except ValueError:
        return None
    return sender if sender in on_call else None


def human_reply(form: Form, sender: str, incident_id: str | None) -> HumanReplied:
    return HumanReplied(
        message_sid=form["MessageSid"],
        sender=sender,
        body=form.get("Body", ""),
        channel="whatsapp",
        incident_id=incident_id,
        profile_name=form.get("ProfileName") or None,
    )


def reply_msg_id(message_sid: str) -> str:
    return f"reply-{message_sid}"


# --- the endpoint ---------------------------------------------------------------------------


def make_webhook(settings: NotifierSettings, bus: Bus) -> Endpoint:
    twilio = TwilioRequests(settings, REPLY_PATH, _count)
    on_call = list(settings.user_whatsapp_numbers)

    async def twilio_webhook(request: Request) -> Response:
        form = await twilio.form(request)
        if isinstance(form, Response):
            return form
        if is_status_callback(form):
            log.warning(
                "a status callback (%s) reached %s: point StatusCallback at /webhook/twilio/status",
                form.get("MessageStatus") or form.get("SmsStatus"),
                REPLY_PATH,
            )
            _count("status_callback")
            return twiml()
        sender = allowed_sender(form.get("From", ""), on_call)
        if sender is None:
            # Say nothing to strangers, not even that they are strangers.
            log.warning(
                "ignored a message from %s: not in USER_WHATSAPP_NUMBER", mask_number(form.get("From", "?"))
            )
            _count("unknown_sender")
            return twiml()
        if not form.get("MessageSid"):
            return twilio.refuse("bad_request", 400, "missing MessageSid")
        return await _accept(bus, twilio, form, sender)

    return twilio_webhook


async def _accept(bus: Bus, twilio: TwilioRequests, form: Form, sender: str) -> Response:
    sid = form["MessageSid"]
    key = records.inbound_key(sid)
    seen = records.InboundMessage(
        sender=sender, profile_name=form.get("ProfileName") or None, body=form.get("Body", "")
    )
    payload = seen.model_dump_json().encode()
    try:
        claim = await records.take_lease(bus, key, INBOUND_LEASE_SECONDS, payload)
    except Exception:
        log.exception("could not claim reply %s", sid)
        return twilio.refuse("unavailable", 503, "temporarily unavailable, try again")
    if claim == "done":
        log.info("reply %s was already accepted: dropped", sid)
        _count("duplicate")
        return twiml()
    if claim == "busy":
        # The first delivery may still fail and give the claim back: only a retry is safe.
        return twilio.refuse("in_flight", 503, "this message is being handled, try again")

    try:
        replied_to = form.get("OriginalRepliedMessageSid")
        by_sid = await records.incident_of_message(bus, replied_to) if replied_to else None
        reply = human_reply(form, sender, by_sid)
        ack = await bus.publish_event(subjects.HUMAN_REPLIED, reply, msg_id=reply_msg_id(sid))
    except Exception:
        # NATS is down or slow: 503 tells Twilio this failed, rather than a 500 or a lost reply.
        log.exception("could not publish reply %s", sid)
        await records.release(bus, key)
        return twilio.refuse("unavailable", 503, "temporarily unavailable, try again")
    try:
        await records.finish(bus, key, payload)
    except Exception:  # published: a retry after the lease expires is still caught by JetStream's window
        log.warning("could not mark reply %s as accepted", sid, exc_info=True)

    _count("duplicate" if ack.duplicate else "accepted")
    log.info(
        "reply %s from %s for incident %s",
        sid,
        mask_number(sender),
        reply.incident_id or "(its #tag, else the newest open)",
    )
    return twiml()


def _count(outcome: str) -> None:
    metrics.inbound_replies.labels(outcome=outcome).inc()
