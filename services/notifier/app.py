"""Notifier wiring: bus events -> WhatsApp (or the console), and Twilio's two webhook routes."""

import logging

from starlette.routing import BaseRoute, Route

from services.contracts import consumers, subjects
from services.contracts.models import (
    HumanReplied,
    IncidentDiagnosed,
    IncidentResolved,
    NotifyText,
    TicketCreated,
    TicketFailed,
)
from services.notifier.console import ConsoleChannel
from services.notifier.delivery import SEND_LEASE_SECONDS, Channel
from services.notifier.inbound import make_webhook
from services.notifier.notifications import Notifier
from services.notifier.settings import NotifierSettings
from services.notifier.status import make_status_webhook
from services.notifier.webhook import REPLY_PATH, STATUS_PATH
from services.notifier.whatsapp import WhatsAppClient
from services.runtime.router import ServiceRouter
from services.runtime.service import Service, ServiceContext, ServiceParts

log = logging.getLogger("oncall.notifier")


def wire(ctx: ServiceContext[NotifierSettings]) -> ServiceParts:
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

    # A silent sender is given up on after as long as a silent consumer (ONCALL_ACK_WAIT_SECONDS).
    lease = ctx.bus.ack_wait_seconds or SEND_LEASE_SECONDS
    notifier = Notifier(ctx.bus, channel, settings.user_whatsapp_numbers, console_mode, lease)
    router = ServiceRouter(ctx.bus, ctx.service)
    router.publishes(subjects.HUMAN_REPLIED, HumanReplied)

    @router.durable(consumers.NOTIFIER_DIAGNOSED)
    async def on_diagnosed(event: IncidentDiagnosed) -> None:
        await notifier.on_diagnosed(event)

    @router.durable(consumers.NOTIFIER_RESOLVED)
    async def on_resolved(event: IncidentResolved) -> None:
        await notifier.on_resolved(event)

    @router.durable(consumers.NOTIFIER_TEXT)
    async def on_text(event: NotifyText) -> None:
        await notifier.on_text(event)

    @router.durable(consumers.NOTIFIER_TICKET_CREATED)
    async def on_ticket_created(event: TicketCreated) -> None:
        await notifier.on_ticket_created(event)

    @router.durable(consumers.NOTIFIER_TICKET_FAILED)
    async def on_ticket_failed(event: TicketFailed) -> None:
        await notifier.on_ticket_failed(event)

    routes: list[BaseRoute] = [
        Route(REPLY_PATH, make_webhook(settings, ctx.bus), methods=["POST"]),
        Route(STATUS_PATH, make_status_webhook(settings, ctx.bus, channel), methods=["POST"]),
    ]
    return ServiceParts(router=router, routes=routes)


def summary(settings: NotifierSettings) -> str:
    return "channel: " + (
        "WhatsApp via Twilio" if settings.twilio_configured else "console (no Twilio settings)"
    )


SERVICE = Service(name="notifier", settings=NotifierSettings, wire=wire, summary=summary)
