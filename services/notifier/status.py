"""Twilio's status callbacks: what became of each message we sent (delivered, read, failed...).

Each callback is verified like a reply, recorded per MessageSid in KV (`status.<sid>`, the
furthest status only, since callbacks can arrive out of order) and counted in
`oncall_whatsapp_messages_total{outcome="status_<status>[_<error code>]"}`. It is never a reply:
nothing is published for the diagnoser.

WhatsApp usually reports a closed 24-hour window (63016) here rather than in the answer to the
send; the person then gets the template invitation, after Twilio has had its answer.
"""

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from services.contracts import streams
from services.notifier import delivery, metrics, records
from services.notifier.delivery import Channel, SendError
from services.notifier.settings import NotifierSettings
from services.notifier.webhook import EMPTY_TWIML, STATUS_PATH, Form, TwilioRequests
from services.runtime.bus import Bus

log = logging.getLogger("oncall.notifier.status")

CHANNEL: Final = "whatsapp"
FAILED: Final = frozenset({"failed", "undelivered"})

Endpoint = Callable[[Request], Awaitable[Response]]


# --- decisions (pure) ---------------------------------------------------------------------


def reported_status(form: Form, now: float) -> records.DeliveryStatus | None:
    status = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
    if not status:
        return None
    return records.DeliveryStatus(status=status, error_code=form.get("ErrorCode") or None, updated_at=now)


def status_outcome(status: records.DeliveryStatus) -> str:
    """`status_read`, `status_failed_63016`: the error code says why a message did not arrive."""
    if status.status in FAILED and status.error_code:
        return f"status_{status.status}_{status.error_code}"
    return f"status_{status.status}"


def window_closed(status: records.DeliveryStatus) -> bool:
    return status.status in FAILED and status.error_code == str(delivery.WINDOW_CLOSED)


# --- the endpoint ---------------------------------------------------------------------------


def make_status_webhook(settings: NotifierSettings, bus: Bus, channel: Channel) -> Endpoint:
    twilio = TwilioRequests(settings, STATUS_PATH, lambda reason: _count(f"status_refused_{reason}"))

    async def status_webhook(request: Request) -> Response:
        form = await twilio.form(request)
        if isinstance(form, Response):
            return form
        sid = form.get("MessageSid", "")
        reported = reported_status(form, time.time())
        if not sid or reported is None:
            return twilio.refuse("bad_request", 400, "missing MessageSid or MessageStatus")
        try:
            stored = await bus.kv_update(
                streams.DELIVERIES,
                records.status_key(sid),
                records.DeliveryStatus,
                lambda current: records.advance_status(current, reported),
            )
        except Exception:
            log.exception("could not record the status of %s", sid)
            return twilio.refuse("unavailable", 503, "temporarily unavailable, try again")
        if stored is not reported:  # a repeat, or older news than what is recorded
            return Response(EMPTY_TWIML, media_type="text/xml")
        _count(status_outcome(reported))
        if reported.status in FAILED:
            log.error(
                "message %s %s: Twilio error %s", sid, reported.status, reported.error_code or "none given"
            )
        else:
            log.info("message %s %s", sid, reported.status)
        # After the response: sending the template can take longer than Twilio waits.
        invitation = BackgroundTask(invite_late, bus, channel, sid) if window_closed(reported) else None
        return Response(EMPTY_TWIML, media_type="text/xml", background=invitation)

    return status_webhook


async def invite_late(bus: Bus, channel: Channel, message_sid: str) -> None:
    """The template for the person a message of ours could not reach (63016 after the send)."""
    try:
        sent = await records.sent_message(bus, message_sid)
        if sent is None:
            log.warning("63016 for message %s, which is not ours or has expired: nobody invited", message_sid)
            return
        await delivery.invite(
            bus,
            channel,
            sent.recipient,
            sent.notification,
            sent.incident_id,
            sent.invite,
            raise_if_busy=False,
        )
    except SendError as exc:
        _count(delivery.failure_outcome(exc), channel.name)
        log.error("could not invite the recipient of %s with the template: %s", message_sid, exc)
    except Exception:  # nobody awaits a background task: say it here
        log.exception("could not invite the recipient of %s with the template", message_sid)


def _count(outcome: str, channel: str = CHANNEL) -> None:
    metrics.whatsapp_sends.labels(channel=channel, outcome=outcome).inc()
