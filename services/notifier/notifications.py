"""What the on-call people are told about each bus event, and to whom.

Every on-call number gets every diagnosis, resolution and outcome; an answer of the agent to one
person's reply goes to all of them too, headed by who asked what, so that the others see what
was done and by whom.
"""

from collections.abc import Sequence

from services.contracts.models import (
    IncidentDiagnosed,
    IncidentResolved,
    NotifyText,
    TicketCreated,
    TicketFailed,
)
from services.notifier import messages, records
from services.notifier.delivery import SEND_LEASE_SECONDS, Channel, Notification, deliver, recipients
from services.runtime.bus import Bus


# The diagnoser's `notification_id` for its answer to the reply with MessageSid <sid>.
def diagnosis_notification(event: IncidentDiagnosed) -> Notification:
    # A re-diagnosis (new revision) is news and is sent again.
    key = f"diag.{event.incident_id}.{event.revision}"
    return Notification(key, event.incident_id, messages.format_diagnosis(event), headline=event.title)


def resolved_notification(event: IncidentResolved) -> Notification:
    return Notification(
        f"resolved.{event.incident_id}",
        event.incident_id,
        messages.format_resolved(event),
        headline=f"resolved: {event.title}",
    )


def text_notification(event: NotifyText, asker: records.InboundMessage | None = None) -> Notification:
    text = messages.format_text(event)
    if asker is not None:
        text = messages.with_asker(text, asker.sender, asker.profile_name, asker.body)
    return Notification(
        f"text.{event.notification_id}",
        event.incident_id,
        text,
        headline=messages.first_line(event.text),
        requested_recipients=event.recipients,
        in_reply_to=event.in_reply_to,
        follow_up_expected=event.follow_up_expected,
    )


def ticket_created_notification(event: TicketCreated) -> Notification:
    return Notification(
        f"ticket.{event.request_id}",
        event.incident_id,
        messages.format_ticket_created(event),
        headline=f"Jira task {event.key} created",
        in_reply_to=event.in_reply_to,
    )


def ticket_failed_notification(event: TicketFailed) -> Notification:
    return Notification(
        f"ticketfail.{event.request_id}",
        event.incident_id,
        messages.format_ticket_failed(event),
        headline="Jira task not created",
        in_reply_to=event.in_reply_to,
    )


class Notifier:
    """The consumers' side: each bus event becomes one notification, delivered."""

    def __init__(
        self,
        bus: Bus,
        channel: Channel,
        on_call: Sequence[str],
        console_mode: bool,
        lease_seconds: float = SEND_LEASE_SECONDS,
    ):
        self._bus = bus
        self._channel = channel
        self._on_call = list(on_call)
        self._console_mode = console_mode
        self._lease_seconds = lease_seconds

    async def on_diagnosed(self, event: IncidentDiagnosed) -> None:
        await self._send(diagnosis_notification(event))

    async def on_resolved(self, event: IncidentResolved) -> None:
        await self._send(resolved_notification(event))

    async def on_text(self, event: NotifyText) -> None:
        asker = await records.inbound_message(self._bus, event.in_reply_to) if event.in_reply_to else None
        await self._send(text_notification(event, asker))

    async def on_ticket_created(self, event: TicketCreated) -> None:
        await self._send(ticket_created_notification(event))

    async def on_ticket_failed(self, event: TicketFailed) -> None:
        await self._send(ticket_failed_notification(event))

    async def _send(self, note: Notification) -> None:
        to = recipients(self._on_call, self._console_mode, note.requested_recipients)
        await deliver(self._bus, self._channel, to, note, lease_seconds=self._lease_seconds)
