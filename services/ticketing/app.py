"""Ticketing wiring: the durable consumers of ticket requests and of resolutions, and the one Jira client."""

import logging

from services.contracts import consumers, subjects
from services.contracts.models import (
    IncidentResolved,
    NotifyText,
    TicketCreated,
    TicketFailed,
    TicketRequested,
)
from services.runtime.router import ServiceRouter
from services.runtime.service import Service, ServiceContext, ServiceParts
from services.ticketing.config import TicketingConfig
from services.ticketing.jira import JiraClient
from services.ticketing.resolution import handle_incident_resolved
from services.ticketing.settings import TicketingSettings
from services.ticketing.tickets import NOT_CONFIGURED, handle_ticket_request, report_given_up

log = logging.getLogger("oncall.ticketing")


def wire(ctx: ServiceContext[TicketingSettings]) -> ServiceParts:
    config = TicketingConfig.from_settings(ctx.settings)  # a bad JIRA_PRIORITY_MAP stops the start here
    jira = jira_client(ctx.settings)
    if jira is None:
        log.warning("%s; ticket requests will be answered with that reason", NOT_CONFIGURED)

    router = ServiceRouter(ctx.bus, ctx.service)
    router.publishes(subjects.TICKETS_CREATED, TicketCreated)
    router.publishes(subjects.TICKETS_FAILED, TicketFailed)
    router.publishes(subjects.NOTIFY_TEXT, NotifyText)

    async def on_given_up(req: TicketRequested, reason: str) -> None:
        await report_given_up(req, reason, ctx.bus)

    @router.durable(consumers.TICKETING_REQUESTED, on_dead_letter=on_given_up)
    async def on_ticket_requested(req: TicketRequested) -> None:
        await handle_ticket_request(req, ctx.bus, jira, config)

    @router.durable(consumers.TICKETING_RESOLVED)
    async def on_incident_resolved(event: IncidentResolved) -> None:
        await handle_incident_resolved(event, ctx.bus, jira, config)

    return ServiceParts(router=router, on_stop=[jira.aclose] if jira is not None else [])


def jira_client(settings: TicketingSettings) -> JiraClient | None:
    """None unless Jira is configured and this service has its token (given to ticketing alone)."""
    if not settings.jira_configured or not settings.jira_api_token:
        return None
    assert settings.jira_url and settings.jira_email  # jira_configured
    return JiraClient(settings.jira_url, settings.jira_email, settings.jira_api_token.get_secret_value())


SERVICE = Service(name="ticketing", settings=TicketingSettings, wire=wire)
