"""The Twilio webhook: a WhatsApp reply from an on-call person becomes `oncall.human.replied`.

The request is trusted only when `X-Twilio-Signature` matches the URL Twilio was told to call,
`PUBLIC_BASE_URL` + `/webhook/twilio` (never the Host we see: we sit behind proxies). The
handler only verifies, matches the incident and publishes; it never waits for the model, so
Twilio gets its answer well within its 15 s.
"""

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Final
from urllib.parse import parse_qsl

from starlette.datastructures import ImmutableMultiDict
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from services.contracts import subjects
from services.contracts.models import HumanReplied
from services.notifier.delivery import incident_of_message, mask_phone
from services.runtime import metrics
from services.runtime.bus import Bus
from services.runtime.settings import Settings, normalize_phone

log = logging.getLogger("oncall.notifier.inbound")

WEBHOOK_PATH: Final = "/webhook/twilio"
SIGNATURE_HEADER: Final = "X-Twilio-Signature"
# Twilio's form posts are a few KB; anything far bigger is not Twilio.
MAX_FORM_BYTES: Final = 64 * 1024
EMPTY_TWIML: Final = str(MessagingResponse())
NOT_CONFIGURED: Final = "Twilio webhook not configured: set TWILIO_AUTH_TOKEN and PUBLIC_BASE_URL"
# `#a1b2c3`, not inside a word or a longer hex run (incident ids are 6 hex characters).
_INCIDENT_TAG = re.compile(r"(?<![\w#])#([0-9a-fA-F]{6})(?![0-9a-zA-Z_])")

Form = ImmutableMultiDict[str, str]
Endpoint = Callable[[Request], Awaitable[Response]]


# --- decisions (pure) ---------------------------------------------------------------------


def parse_form(raw: bytes) -> Form:
    """The x-www-form-urlencoded body, blank values kept (they are signed too)."""
    return ImmutableMultiDict(parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=True))


def signed_url(public_base_url: str, query_string: str = "") -> str:
    """The URL Twilio signed: the configured public one, plus the query string it called with."""
    url = public_base_url.rstrip("/") + WEBHOOK_PATH
    return f"{url}?{query_string}" if query_string else url


def verify_signature(auth_token: str, url: str, params: Mapping[str, str], signature: str | None) -> bool:
    if not auth_token or not signature:
        return False
    return bool(RequestValidator(auth_token).validate(url, params, signature))


def allowed_sender(raw_from: str, on_call: list[str]) -> str | None:
    """The sender as E.164 when it may command the agent, else None."""
    try:
        sender = normalize_phone(raw_from)
    except ValueError:
        return None
    return sender if sender in on_call else None


def incident_tag_in(body: str) -> str | None:
    found = _INCIDENT_TAG.search(body)
    return found.group(1).lower() if found else None


def match_incident(incident_of_replied_message: str | None, body: str) -> str | None:
    """The message the person swiped-replied to wins, then a tag typed in the text; None lets
    the diagnoser pick the sender's newest open incident."""
    return incident_of_replied_message or incident_tag_in(body)


def human_reply(form: Form, sender: str, incident_id: str | None) -> HumanReplied:
    return HumanReplied(
        message_sid=form["MessageSid"],
        sender=sender,
        body=form.get("Body", ""),
        channel="whatsapp",
        incident_id=incident_id,
        replied_to_sid=form.get("OriginalRepliedMessageSid") or None,
        profile_name=form.get("ProfileName") or None,
    )


# --- the endpoint ---------------------------------------------------------------------------


def make_webhook(settings: Settings, bus: Bus) -> Endpoint:
    auth_token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else ""
    public_base_url = settings.public_base_url or ""
    on_call = list(settings.user_whatsapp_numbers)

    async def twilio_webhook(request: Request) -> Response:
        if not auth_token or not public_base_url:
            # Without the token nothing can be verified, and without the public URL nothing
            # can be verified correctly: refuse rather than trust.
            return _refuse("not_configured", 403, NOT_CONFIGURED)
        signature = request.headers.get(SIGNATURE_HEADER)
        if not signature:
            return _refuse("bad_signature", 403, f"missing {SIGNATURE_HEADER}")
        raw = await _read_body(request, MAX_FORM_BYTES)
        if raw is None:
            return _refuse("too_large", 413, f"body over {MAX_FORM_BYTES} bytes")
        form = parse_form(raw)
        url = signed_url(public_base_url, request.url.query)
        if not verify_signature(auth_token, url, form, signature):
            log.warning("rejected a webhook whose signature does not match %s (check PUBLIC_BASE_URL)", url)
            return _refuse("bad_signature", 403, f"invalid {SIGNATURE_HEADER}")

        sender = allowed_sender(form.get("From", ""), on_call)
        if sender is None:
            # Say nothing to strangers, not even that they are strangers.
            stranger = mask_phone(form.get("From", "?"))
            log.warning("ignored a message from %s: not in USER_WHATSAPP_NUMBER", stranger)
            metrics.inbound_replies.labels(outcome="unknown_sender").inc()
            return _twiml()
        if not form.get("MessageSid"):
            return _refuse("bad_request", 400, "missing MessageSid")

        try:
            replied_to = form.get("OriginalRepliedMessageSid")
            by_sid = await incident_of_message(bus, replied_to) if replied_to else None
            reply = human_reply(form, sender, match_incident(by_sid, form.get("Body", "")))
            # Twilio may deliver the same message twice: the JetStream dedup window drops the repeat.
            ack = await bus.publish_event(subjects.HUMAN_REPLIED, reply, msg_id=f"reply-{reply.message_sid}")
        except Exception:
            # NATS is down or slow: 503 tells Twilio this failed, rather than a 500 or a lost reply.
            log.exception("could not publish reply %s", form.get("MessageSid"))
            return _refuse("unavailable", 503, "temporarily unavailable, try again")

        metrics.inbound_replies.labels(outcome="duplicate" if ack.duplicate else "accepted").inc()
        incident = reply.incident_id or "(newest open)"
        log.info("reply %s from %s for incident %s", reply.message_sid, mask_phone(sender), incident)
        return _twiml()

    return twilio_webhook


def _twiml() -> Response:
    return Response(EMPTY_TWIML, media_type="text/xml")


def _refuse(outcome: str, status: int, reason: str) -> Response:
    metrics.inbound_replies.labels(outcome=outcome).inc()
    return PlainTextResponse(reason, status_code=status)


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is over `limit` bytes (read no further than that)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)
