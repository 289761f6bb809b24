"""Notifier wiring: bus events -> WhatsApp (or the console), and the Twilio webhook route."""

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic import BaseModel
from starlette.routing import Route

from services.contracts import consumers
from services.contracts.models import (
    IncidentDiagnosed,
    IncidentResolved,
    NotifyText,
    TicketCreated,
    TicketFailed,
)
from services.notifier import delivery
from services.notifier.console import ConsoleChannel
from services.notifier.delivery import Channel, Notification
from services.notifier.inbound import WEBHOOK_PATH, make_webhook
from services.notifier.whatsapp import WhatsAppClient
from services.runtime.bus import subscribe_durable
from services.runtime.service import ServiceContext, ServiceParts

log = logging.getLogger("oncall.notifier")

E = TypeVar("E", bound=BaseModel)


def wire(ctx: ServiceContext) -> ServiceParts:
    settings = ctx.settings
    console_mode = not settings.twilio_configured
    channel: Channel = ConsoleChannel(ctx.broker) if console_mode else WhatsAppClient.from_settings(settings)
    on_call = list(settings.user_whatsapp_numbers)
    if console_mode:
        log.info("Twilio not configured: notifications are printed here (console channel)")
    else:
        if not on_call:
            log.warning("USER_WHATSAPP_NUMBER is empty: nobody will receive notifications")
        if not settings.public_base_url:
            log.warning("PUBLIC_BASE_URL is unset: WhatsApp replies will be refused (403)")

    def handler(build: Callable[[E], Notification]) -> Callable[[E], Awaitable[None]]:
        async def handle(event: E) -> None:
            note = build(event)
            to = delivery.recipients(on_call, console_mode, note.requested_recipients)
            await delivery.deliver(ctx.bus, channel, to, note.key, note.incident_id, note.text)

        return handle

    bus, broker = ctx.bus, ctx.broker
    subscribe_durable(
        broker, bus, consumers.NOTIFIER_DIAGNOSED, IncidentDiagnosed, handler(delivery.diagnosis_notification)
    )
    subscribe_durable(
        broker, bus, consumers.NOTIFIER_RESOLVED, IncidentResolved, handler(delivery.resolved_notification)
    )
    subscribe_durable(broker, bus, consumers.NOTIFIER_TEXT, NotifyText, handler(delivery.text_notification))
    subscribe_durable(
        broker,
        bus,
        consumers.NOTIFIER_TICKET_CREATED,
        TicketCreated,
        handler(delivery.ticket_created_notification),
    )
    subscribe_durable(
        broker,
        bus,
        consumers.NOTIFIER_TICKET_FAILED,
        TicketFailed,
        handler(delivery.ticket_failed_notification),
    )

    webhook = Route(WEBHOOK_PATH, make_webhook(settings, ctx.bus), methods=["POST"])
    return ServiceParts(routes=[webhook])
