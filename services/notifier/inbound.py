"""The Twilio webhook: a WhatsApp reply from an on-call person becomes `oncall.human.replied`.

The handler only verifies, matches the incident and publishes; it never waits for the model, so
Twilio gets its answer well within its 15 s. It matches only what it alone knows: the message of
ours the person swipe-replied to. A `#tag` typed in the text is matched by the diagnoser, the same
for every channel.

Twilio may deliver the same message twice. The reply is published with `Nats-Msg-Id`
`reply-<MessageSid>`, so JetStream drops a repeat within the stream's duplicate window (10 min),
also one racing the first; once published, `inbound.<MessageSid>` is recorded in KV (kept 14 days)
for a repeat after that window.

While NATS is down the webhook answers 503 and records nothing, so Twilio's retry (configure it:
deploy/README.md) is published once NATS is back. Nothing may be recorded before the publish
succeeded: a claim written while NATS was away could land after it returned and turn every retry
away (the bug this replaced). A publish that timed out may still land when NATS returns; the
retry then is a duplicate JetStream drops, and is answered 200. Chosen over an on-disk spool:
the reply stays with Twilio until we have it, and a notifier replica on Kubernetes has no disk
that outlives it.
"""

import logging
from collections.abc import Awaitable, Callable
from typing import Final

from faststream.exceptions import IncorrectState
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
    if not _nats_connected(bus):
        # Not even a read: a request written now would be flushed when NATS returns.
        log.warning("NATS is unreachable: reply %s refused for Twilio to retry", sid)
        return twilio.refuse("unavailable", 503, "temporarily unavailable, try again")
    key = records.inbound_key(sid)
    seen = records.InboundMessage(
        sender=sender, profile_name=form.get("ProfileName") or None, body=form.get("Body", "")
    )
    try:
        if await records.inbound_accepted(bus, sid):
            log.info("reply %s was already accepted: dropped", sid)
            _count("duplicate")
            return twiml()
        replied_to = form.get("OriginalRepliedMessageSid")
        by_sid = await records.incident_of_message(bus, replied_to) if replied_to else None
        reply = human_reply(form, sender, by_sid)
        ack = await bus.publish_event(subjects.HUMAN_REPLIED, reply, msg_id=reply_msg_id(sid))
    except Exception:
        # NATS is down or slow: 503 tells Twilio this failed, rather than a 500 or a lost reply.
        log.exception("could not publish reply %s", sid)
        return twilio.refuse("unavailable", 503, "temporarily unavailable, try again")
    try:
        await records.finish(bus, key, seen.model_dump_json().encode())
    except Exception:  # published: a retry within 10 minutes is still dropped by JetStream
        log.warning("could not mark reply %s as accepted", sid, exc_info=True)

    _count("duplicate" if ack.duplicate else "accepted")
    log.info(
        "reply %s from %s for incident %s",
        sid,
        mask_number(sender),
        reply.incident_id or "(its #tag, else the newest open)",
    )
    return twiml()


def _nats_connected(bus: Bus) -> bool:
    try:
        return bool(bus.broker.connection.is_connected)
    except IncorrectState:  # never connected yet
        return False


def _count(outcome: str) -> None:
    metrics.inbound_replies.labels(outcome=outcome).inc()
