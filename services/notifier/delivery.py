"""Sending one notification to the on-call people: once per recipient, whatever is replayed.

Idempotency lives in KV `oncall_deliveries` (see `records`): each part of a notification to a
person is leased, sent, then recorded with its MessageSid, so a redelivered or re-published
event sends nothing twice and two deliveries racing each other do not both send. When a send's
outcome is unknown (the notifier died during it, or Twilio's answer was lost or too slow), the
lease stays; the delivery that later takes it over first asks Twilio for the message (its list
of messages to that person since the first attempt, matched on the part's exact text, which
carries the incident tag and the part marker) and sends only when Twilio has none. Every
MessageSid is recorded with its notification, person and incident: a swipe-reply finds its
incident that way, and a late "outside the 24-hour window" its invitation.

A person whose 24-hour WhatsApp window is closed (Twilio 63016) cannot get our free text; they
get the approved template instead, once per notification, inviting them to reply.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from services.contracts import streams
from services.contracts.models import incident_tag
from services.contracts.settings import normalize_phone
from services.notifier import messages, metrics, records
from services.runtime.bus import Bus, PermanentError
from services.runtime.outbound import OutboundError

log = logging.getLogger("oncall.notifier")

# Recipient used in console mode when no USER_WHATSAPP_NUMBER is configured.
CONSOLE_RECIPIENT: Final = "console"
# A send lease nobody renewed for this long was abandoned (its holder renews it every quarter of
# it while sending, however long Twilio takes): longer than Twilio needs to act on a request
# already received, so the message the dead holder sent is in Twilio's list when it is asked.
# ONCALL_ACK_WAIT_SECONDS replaces it, as it replaces the consumers' ack wait: both say how long
# a silent worker is taken to be dead.
SEND_LEASE_SECONDS: Final = 30.0
# Twilio: "outside the allowed window", the person has not written to us for 24 hours.
WINDOW_CLOSED: Final = 63016


class SendError(OutboundError):
    """A channel could not send. `permanent`: retrying the same message cannot succeed
    (bad number, rejected body); otherwise it may (rate limit, outage, timeout). `status` is
    the HTTP status Twilio answered, None when no answer came; `code` Twilio's error code."""

    def __init__(
        self,
        permanent: bool,
        code: int | None,
        message: str,
        status: int | None = None,
        retry_after: float | None = None,
    ):
        super().__init__("Twilio", status, message, not permanent, retry_after)
        self.code = code

    @property
    def permanent(self) -> bool:
        return not self.transient

    def __str__(self) -> str:
        return f"{'permanent' if self.permanent else 'transient'} send error {self.code}: {self.message}"


@dataclass(frozen=True)
class Thread:
    """The human reply a message answers (its MessageSid), and whether more answers to it follow:
    `oncall reply` waits for the last one."""

    in_reply_to: str
    follow_up_expected: bool = False


class Channel(Protocol):
    """Where messages go: WhatsApp through Twilio, or the console in local mode."""

    name: str  # the `channel` label of the metrics

    async def send(self, to: str, body: str, thread: Thread | None = None) -> str:
        """Send `body` to `to` and return the message's id (a Twilio MessageSid). `thread`:
        the reply it answers, for channels that can show it."""
        ...

    async def send_template(self, to: str, invitation: str) -> str:
        """Send the approved template carrying `invitation`; return the message's id."""
        ...

    async def find_sent(self, to: str, body: str, since: float) -> list[str]:
        """The ids, newest first, of the messages with exactly `body` sent to `to` at or after
        `since` (epoch seconds): asked before resending a message whose first send has an
        unknown outcome."""
        ...


@dataclass(frozen=True)
class Notification:
    key: str  # idempotency key: the same key is delivered once
    incident_id: str | None
    text: str
    headline: str  # one line naming what it is about, for the template when the window is closed
    requested_recipients: list[str] | None = None  # None = every on-call number
    in_reply_to: str | None = None  # the MessageSid of the human reply this answers
    follow_up_expected: bool = False  # more answers to that reply will follow

    @property
    def invitation(self) -> str:
        return messages.invitation(self.incident_id, self.headline)

    def thread(self, part: int, parts: int) -> Thread | None:
        """What part `part` of `parts` says of the reply it answers: final only on the last part
        of the last answer."""
        if self.in_reply_to is None:
            return None
        return Thread(self.in_reply_to, self.follow_up_expected or part < parts)


def recipients(
    on_call: Sequence[str], console_mode: bool, requested: Sequence[str] | None = None
) -> list[str]:
    """Who receives a notification: every on-call number, or those of `requested` that are
    on call (the agent never messages a number outside USER_WHATSAPP_NUMBER).

    The console prints each message once, addressed to everyone it is for (any requested name
    is fine there: nothing is sent), or to "console" when nobody is configured."""
    if console_mode:
        chosen = list(dict.fromkeys(requested if requested is not None else on_call))
        return [", ".join(chosen) if chosen else CONSOLE_RECIPIENT]
    if requested is None:
        return list(on_call)
    wanted: list[str] = []
    for raw in requested:
        try:
            number = normalize_phone(raw)
        except ValueError:
            number = raw
        if number in on_call:
            wanted.append(number)
        else:
            log.warning("not sending to %s: not in USER_WHATSAPP_NUMBER", messages.mask_number(number))
    return list(dict.fromkeys(wanted))


def outcome_unknown(exc: SendError) -> bool:
    """No answer came (a timeout, a broken connection): Twilio may have created the message."""
    return not exc.permanent and exc.status is None


def failure_outcome(exc: SendError) -> str:
    """The `outcome` label of a failed send: Twilio's error code when final, so that 21211 (bad
    number) and 63016 (window closed) can be told apart on a dashboard."""
    if not exc.permanent:
        return "failed_transient"
    return f"failed_{exc.code}" if exc.code else "failed_permanent"


async def deliver(
    bus: Bus,
    channel: Channel,
    recipients: Sequence[str],
    note: Notification,
    *,
    lease_seconds: float = SEND_LEASE_SECONDS,
) -> None:
    """Send the notification to every recipient once. One bad number does not stop the others.

    Raises the first transient SendError after trying everyone (the consumer redelivers with
    backoff and only the missing sends are made); raises PermanentError when nobody could be
    reached and retrying cannot help (the event is dead-lettered, visibly).
    """
    if not note.text.strip():
        log.warning("notification %s has no text; nothing sent", note.key)
        return
    if not recipients:
        log.warning("notification %s has no recipients: set USER_WHATSAPP_NUMBER", note.key)
        return
    parts = messages.split_message(
        note.text, tag=incident_tag(note.incident_id) if note.incident_id else None
    )
    transient: SendError | None = None
    reached = 0
    for recipient in recipients:
        try:
            await _deliver_parts(bus, channel, recipient, note, parts, lease_seconds)
        except SendError as exc:
            metrics.whatsapp_sends.labels(channel=channel.name, outcome=failure_outcome(exc)).inc()
            who = messages.mask_number(recipient)
            if exc.permanent:
                log.error("%s to %s failed for good: %s", note.key, who, exc)
            else:
                log.warning("%s to %s failed, will retry: %s", note.key, who, exc)
                transient = transient or exc
        else:
            reached += 1
    if transient is not None:
        raise transient
    if not reached:
        raise PermanentError(f"{note.key}: no recipient could be reached")


async def _deliver_parts(
    bus: Bus, channel: Channel, recipient: str, note: Notification, parts: list[str], lease_seconds: float
) -> None:
    # In order, stopping at the first failure: part 3 must not arrive without part 2.
    for index, body in enumerate(parts, start=1):
        key = records.sent_key(note.key, recipient, index, len(parts))
        lease = await records.acquire(bus, key, lease_seconds)
        if lease is None:
            metrics.whatsapp_sends.labels(channel=channel.name, outcome="duplicate").inc()
            continue
        async with records.kept(bus, lease, lease_seconds):
            found = (
                await _sent_before(bus, channel, recipient, body, note.key, lease)
                if lease.uncertain
                else None
            )
            if found is not None:
                # The earlier attempt did send it: record that, send nothing.
                await _remember(bus, found, note.key, recipient, note.incident_id, note.invitation)
                await records.finish(bus, key, found.encode())
                metrics.whatsapp_sends.labels(channel=channel.name, outcome="reconciled").inc()
                log.info("%s (%d/%d) had been sent as %s", note.key, index, len(parts), found)
                continue
            try:
                sid = await channel.send(recipient, body, note.thread(index, len(parts)))
            except SendError as exc:
                if outcome_unknown(exc):
                    raise  # the lease stays: whoever takes it next asks Twilio first
                await records.release(bus, key)
                if exc.code != WINDOW_CLOSED:
                    raise
                # The later parts would be refused alike: one invitation stands for them all.
                metrics.whatsapp_sends.labels(channel=channel.name, outcome=failure_outcome(exc)).inc()
                log.warning("%s to %s: outside the 24-hour window", note.key, messages.mask_number(recipient))
                await invite(bus, channel, recipient, note.key, note.incident_id, note.invitation)
                return
            await _remember(bus, sid, note.key, recipient, note.incident_id, note.invitation)
            await records.finish(bus, key, sid.encode())
        metrics.whatsapp_sends.labels(channel=channel.name, outcome="sent").inc()
        log.info(
            "sent %s (%d/%d) to %s as %s", note.key, index, len(parts), messages.mask_number(recipient), sid
        )


async def invite(
    bus: Bus,
    channel: Channel,
    recipient: str,
    notification_key: str,
    incident_id: str | None,
    invitation: str,
    *,
    raise_if_busy: bool = True,
) -> None:
    """Send the template in place of a notification the person's closed window refused, once
    per notification and person: the send's own 63016 and Twilio's later status callback
    reporting it both land here. Raises SendError; with `raise_if_busy`, also while another
    worker is sending the same invitation (so that the consumer's redelivery checks it went out)."""
    key = records.invite_key(notification_key, recipient)
    outcome = await records.take_lease(bus, key, SEND_LEASE_SECONDS)
    if outcome == "done" or (outcome == "busy" and not raise_if_busy):
        return
    if outcome == "busy":
        raise SendError(permanent=False, code=None, message="the same invitation is being sent")
    try:
        sid = await channel.send_template(recipient, invitation)
    except SendError:
        await records.release(bus, key)
        raise
    await _remember(bus, sid, notification_key, recipient, incident_id, invitation)
    await records.finish(bus, key, sid.encode())
    metrics.whatsapp_sends.labels(channel=channel.name, outcome="template").inc()
    log.info(
        "invited %s with the template for %s as %s", messages.mask_number(recipient), notification_key, sid
    )


async def _sent_before(
    bus: Bus, channel: Channel, recipient: str, body: str, notification_key: str, lease: records.Lease
) -> str | None:
    """The message an earlier holder of `lease` sent, if Twilio has it: the newest with this text
    since the lease was first taken that is not recorded as another notification's (the same text
    can go out twice, for two notifications)."""
    for sid in await channel.find_sent(recipient, body, lease.since):
        owner = await records.sent_message(bus, sid)
        if owner is None or owner.notification == notification_key:
            return sid
    return None


async def _remember(
    bus: Bus, sid: str, notification_key: str, recipient: str, incident_id: str | None, invitation: str
) -> None:
    # Before the send is marked done: a reply to this message must find its incident.
    record = records.SentMessage(
        notification=notification_key, recipient=recipient, incident_id=incident_id, invite=invitation
    )
    await bus.kv_put_text(streams.DELIVERIES, records.sid_key(sid), record.model_dump_json())
