"""Ticketing wiring: the durable consumers of ticket requests and of resolutions, and the one Jira client."""

import logging

from services.contracts import consumers
from services.contracts.models import IncidentResolved, TicketRequested
from services.runtime import bus
from services.runtime.service import ServiceContext, ServiceParts
from services.runtime.settings import Settings
from services.ticketing.config import TicketingConfig
from services.ticketing.jira import JiraClient
from services.ticketing.resolution import handle_incident_resolved
from services.ticketing.tickets import NOT_CONFIGURED, handle_ticket_request

log = logging.getLogger("oncall.ticketing")


def wire(ctx: ServiceContext) -> ServiceParts:
    config = TicketingConfig.from_settings(ctx.settings)  # a bad JIRA_PRIORITY_MAP stops the start here
    jira = jira_client(ctx.settings)
    if jira is None:
        log.warning("%s; ticket requests will be answered with that reason", NOT_CONFIGURED)

    async def on_ticket_requested(req: TicketRequested) -> None:
        await handle_ticket_request(req, ctx.bus, jira, config)

    async def on_incident_resolved(event: IncidentResolved) -> None:
        await handle_incident_resolved(event, ctx.bus, jira, config)

    bus.subscribe_durable(
        ctx.broker, ctx.bus, consumers.TICKETING_REQUESTED, TicketRequested, on_ticket_requested
    )
    bus.subscribe_durable(
        ctx.broker, ctx.bus, consumers.TICKETING_RESOLVED, IncidentResolved, on_incident_resolved
    )
    parts = ServiceParts()
    if jira is not None:
        parts.on_stop.append(jira.aclose)
    return parts


def jira_client(settings: Settings) -> JiraClient | None:
    if not settings.jira_configured:
        return None
    assert settings.jira_url and settings.jira_email and settings.jira_api_token  # jira_configured
    return JiraClient(settings.jira_url, settings.jira_email, settings.jira_api_token.get_secret_value())
