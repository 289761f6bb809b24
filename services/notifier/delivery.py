"""Sending one notification to the on-call people: once per recipient, whatever is replayed.

Idempotency lives in KV `oncall_deliveries`: `sent.<notification key>.<recipient digits>` holds
the MessageSid once a part is sent, so a redelivered or re-published event sends nothing twice.
While a send is in flight the key holds a short lease instead, so two deliveries of the same
event racing each other do not both send. Every MessageSid also maps to its incident
(`sid.<MessageSid>`), which is how a swipe-reply on WhatsApp finds its incident.
"""

import hashlib
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import nats.js.errors
from nats.js.kv import KeyValue

from services.contracts import streams
from services.contracts.models import (
    IncidentDiagnosed,
    IncidentResolved,
    NotifyText,
    TicketCreated,
    TicketFailed,
    incident_tag,
)
from services.notifier import messages
from services.runtime import metrics
from services.runtime.bus import Bus, PermanentError
from services.runtime.settings import normalize_phone

log = logging.getLogger("oncall.notifier")

# Recipient used in console mode when no USER_WHATSAPP_NUMBER is configured.
CONSOLE_RECIPIENT: Final = "console"
# How long an in-flight send keeps its key; longer than a send can take (WhatsAppClient's
# HTTP timeout), shorter than the consumer's total redelivery backoff, so a sender that
# crashed mid-send is taken over by a later redelivery.
SEND_LEASE_SECONDS: Final = 60.0
_LEASE_PREFIX: Final = b"pending:"
_UNSAFE_KEY_CHARS = re.compile(r"[^-/_=a-zA-Z0-9]")


class SendError(Exception):
    """A channel could not send. `permanent`: retrying the same message cannot succeed
    (bad number, rejected body); otherwise it may (rate limit, outage, timeout)."""

    def __init__(self, permanent: bool, code: int | None, message: str):
        super().__init__(f"{'permanent' if permanent else 'transient'} send error {code}: {message}")
        self.permanent = permanent
        self.code = code
        self.message = message


class Channel(Protocol):
    """Where messages go: WhatsApp through Twilio, or the console in local mode."""

    name: str  # the `channel` label of the metrics

    async def send(self, to: str, body: str) -> str:
        """Send `body` to `to` and return the message's id (a Twilio MessageSid)."""
        ...


@dataclass(frozen=True)
class Notification:
    key: str  # idempotency key: the same key is delivered once
    incident_id: str | None
    text: str
    requested_recipients: list[str] | None = None  # None = every on-call number


def diagnosis_notification(event: IncidentDiagnosed) -> Notification:
    # A re-diagnosis (new revision) is news and is sent again.
    key = f"diag.{event.incident_id}.{event.revision}"
    return Notification(key, event.incident_id, messages.format_diagnosis(event))


def resolved_notification(event: IncidentResolved) -> Notification:
    return Notification(f"resolved.{event.incident_id}", event.incident_id, messages.format_resolved(event))


def text_notification(event: NotifyText) -> Notification:
    return Notification(
        f"text.{event.notification_id}", event.incident_id, messages.format_text(event), event.recipients
    )


def ticket_created_notification(event: TicketCreated) -> Notification:
    return Notification(
        f"ticket.{event.request_id}", event.incident_id, messages.format_ticket_created(event)
    )


def ticket_failed_notification(event: TicketFailed) -> Notification:
    return Notification(
        f"ticketfail.{event.request_id}", event.incident_id, messages.format_ticket_failed(event)
    )


def recipients(
    on_call: Sequence[str], console_mode: bool, requested: Sequence[str] | None = None
) -> list[str]:
    """Who receives a notification: every on-call number, or those of `requested` that are
    on call (the agent never messages a number outside USER_WHATSAPP_NUMBER). The console
    only prints, so there any requested name is fine, and with no numbers it prints once."""
    if requested is None:
        return list(on_call) or ([CONSOLE_RECIPIENT] if console_mode else [])
    if console_mode:
        return list(dict.fromkeys(requested))
    chosen: list[str] = []
    for raw in requested:
        try:
            number = normalize_phone(raw)
        except ValueError:
            number = raw
        if number in on_call:
            chosen.append(number)
        else:
            log.warning("not sending to %s: not in USER_WHATSAPP_NUMBER", mask_phone(number))
    return list(dict.fromkeys(chosen))


async def deliver(
    bus: Bus,
    channel: Channel,
    recipients: Sequence[str],
    notification_key: str,
    incident_id: str | None,
    text: str,
) -> None:
    """Send `text` to every recipient once. One bad number does not stop the others.

    Raises the first transient SendError after trying everyone (the consumer redelivers with
    backoff and only the missing sends are made); raises PermanentError when nobody could be
    reached and retrying cannot help (the event is dead-lettered, visibly).
    """
    if not text.strip():
        log.warning("notification %s has no text; nothing sent", notification_key)
        return
    if not recipients:
        log.warning("notification %s has no recipients: set USER_WHATSAPP_NUMBER", notification_key)
        return
    parts = messages.split_message(text, tag=incident_tag(incident_id) if incident_id else None)
    kv = await bus.kv(streams.DELIVERIES)
    transient: SendError | None = None
    reached: list[str] = []
    for recipient in recipients:
        try:
            await _deliver_parts(bus, kv, channel, recipient, notification_key, incident_id, parts)
        except SendError as exc:
            outcome = "failed_permanent" if exc.permanent else "failed_transient"
            metrics.whatsapp_sends.labels(channel=channel.name, outcome=outcome).inc()
            if exc.permanent:
                log.error("%s to %s failed for good: %s", notification_key, mask_phone(recipient), exc)
            else:
                log.warning("%s to %s failed, will retry: %s", notification_key, mask_phone(recipient), exc)
                transient = transient or exc
        else:
            reached.append(recipient)
    if transient is not None:
        raise transient
    if not reached:
        raise PermanentError(f"{notification_key}: no recipient could be reached")


async def _deliver_parts(
    bus: Bus,
    kv: KeyValue,
    channel: Channel,
    recipient: str,
    notification_key: str,
    incident_id: str | None,
    parts: list[str],
) -> None:
    # In order, stopping at the first failure: part 3 must not arrive without part 2.
    for index, body in enumerate(parts, start=1):
        key = sent_key(notification_key, recipient, index, len(parts))
        if not await _take_lease(bus, kv, key):
            metrics.whatsapp_sends.labels(channel=channel.name, outcome="duplicate").inc()
            continue
        try:
            sid = await channel.send(recipient, body)
        except SendError:
            await _release_lease(kv, key)
            raise
        if incident_id:
            # Before marking it sent: a reply to this message must find its incident.
            await kv.put(sid_key(sid), incident_id.encode())
        await kv.put(key, sid.encode())
        metrics.whatsapp_sends.labels(channel=channel.name, outcome="sent").inc()
        log.info(
            "sent %s (%d/%d) to %s as %s", notification_key, index, len(parts), mask_phone(recipient), sid
        )


async def _take_lease(bus: Bus, kv: KeyValue, key: str) -> bool:
    """True when this caller may send; False when it was already sent."""
    lease = _LEASE_PREFIX + repr(time.time()).encode()
    if await bus.claim(streams.DELIVERIES, key, lease):
        return True
    try:
        entry = await kv.get(key)
    except nats.js.errors.KeyNotFoundError as exc:  # released between our two calls
        raise SendError(permanent=False, code=None, message="delivery state changed, retrying") from exc
    value = entry.value or b""
    if not value.startswith(_LEASE_PREFIX):
        return False
    if time.time() - float(value.removeprefix(_LEASE_PREFIX)) < SEND_LEASE_SECONDS:
        raise SendError(permanent=False, code=None, message="another delivery of this message is in flight")
    try:  # the sender holding the lease died mid-send: take over
        await kv.update(key, lease, last=entry.revision)
    except nats.js.errors.KeyWrongLastSequenceError as exc:
        raise SendError(permanent=False, code=None, message="delivery state changed, retrying") from exc
    return True


async def _release_lease(kv: KeyValue, key: str) -> None:
    try:
        await kv.delete(key)
    except Exception:  # the lease expires on its own; the send error is what matters
        log.warning("could not release delivery lease %s", key, exc_info=True)


async def incident_of_message(bus: Bus, message_sid: str) -> str | None:
    """The incident a message we sent belongs to (None when unknown or expired)."""
    kv = await bus.kv(streams.DELIVERIES)
    try:
        entry = await kv.get(sid_key(message_sid))
    except nats.js.errors.KeyNotFoundError:
        return None
    return entry.value.decode() if entry.value else None


def sent_key(notification_key: str, recipient: str, part: int = 1, parts: int = 1) -> str:
    digits = re.sub(r"\D", "", recipient) or recipient
    key = f"sent.{notification_key}.{digits}"
    return kv_key(key if parts == 1 else f"{key}.part{part}")


def sid_key(message_sid: str) -> str:
    return kv_key(f"sid.{message_sid}")


def kv_key(raw: str) -> str:
    """A valid KV key for `raw`: KV keys allow only `[-/_=.a-zA-Z0-9]` and no empty tokens.
    When characters had to be replaced, a hash of the original keeps distinct inputs distinct."""
    cleaned = ".".join(t for t in (_UNSAFE_KEY_CHARS.sub("_", t) for t in raw.split(".")) if t)
    if cleaned == raw:
        return raw
    return f"{cleaned}.{hashlib.sha256(raw.encode()).hexdigest()[:12]}"


def mask_phone(number: str) -> str:
    """Enough of a number for a log line, not the whole of it."""
    return number if len(number) < 8 else f"{number[:3]}…{number[-4:]}"
