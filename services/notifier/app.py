"""Notifier wiring: bus events -> WhatsApp (or the console), and Twilio's two webhook routes."""

import logging

from starlette.routing import BaseRoute, Route

from services.contracts import consumers
from services.contracts.models import (
    IncidentDiagnosed,
    IncidentResolved,
    NotifyText,
    TicketCreated,
    TicketFailed,
)
from services.notifier.console import ConsoleChannel
from services.notifier.delivery import Channel
from services.notifier.inbound import make_webhook
from services.notifier.notifications import Notifier
from services.notifier.status import make_status_webhook
from services.notifier.webhook import REPLY_PATH, STATUS_PATH
from services.notifier.whatsapp import WhatsAppClient
from services.runtime.bus import subscribe_durable
from services.runtime.service import ServiceContext, ServiceParts

log = logging.getLogger("oncall.notifier")


def wire(ctx: ServiceContext) -> ServiceParts:
    settings = ctx.settings
    console_mode = not settings.twilio_configured
    channel: Channel = ConsoleChannel(ctx.broker) if console_mode else WhatsAppClient.from_settings(settings)
    if console_mode:
        log.info("Twilio not configured: notifications are printed here (console channel)")
    else:
        if not settings.user_whatsapp_numbers:
            log.warning("USER_WHATSAPP_NUMBER is empty: nobody will receive notifications")
        if not settings.public_base_url:
            log.warning(
                "PUBLIC_BASE_URL is unset: WhatsApp replies will be refused (403), no delivery reports"
            )
        if not settings.twilio_template_sid:
            log.warning("TWILIO_TEMPLATE_SID is unset: people silent for 24 hours cannot be reached")

    notifier = Notifier(ctx.bus, channel, settings.user_whatsapp_numbers, console_mode)
    bus, broker = ctx.bus, ctx.broker
    subscribe_durable(broker, bus, consumers.NOTIFIER_DIAGNOSED, IncidentDiagnosed, notifier.on_diagnosed)
    subscribe_durable(broker, bus, consumers.NOTIFIER_RESOLVED, IncidentResolved, notifier.on_resolved)
    subscribe_durable(broker, bus, consumers.NOTIFIER_TEXT, NotifyText, notifier.on_text)
    subscribe_durable(
        broker, bus, consumers.NOTIFIER_TICKET_CREATED, TicketCreated, notifier.on_ticket_created
    )
    subscribe_durable(broker, bus, consumers.NOTIFIER_TICKET_FAILED, TicketFailed, notifier.on_ticket_failed)

    routes: list[BaseRoute] = [
        Route(REPLY_PATH, make_webhook(settings, bus), methods=["POST"]),
        Route(STATUS_PATH, make_status_webhook(settings, bus, channel), methods=["POST"]),
    ]
    return ServiceParts(routes=routes)
