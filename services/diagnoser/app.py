"""diagnoser: wiring only; logic in handlers.py and the modules it uses."""

import logging

from services.contracts import consumers, subjects
from services.contracts.models import (
    AlertGroup,
    HumanReplied,
    IncidentDiagnosed,
    IncidentResolved,
    NotifyText,
    SilenceApplied,
    SilenceRequested,
    TicketCreated,
    TicketFailed,
    TicketRequested,
)
from services.diagnoser import flapping, given_up, outcomes
from services.diagnoser.handlers import Diagnoser
from services.diagnoser.model import ModelClient
from services.diagnoser.settings import DiagnoserSettings
from services.diagnoser.toolcalls import ToolCaller
from services.diagnoser.turns import Systems
from services.runtime.router import ServiceRouter
from services.runtime.service import Service, ServiceContext, ServiceParts

log = logging.getLogger("oncall.diagnoser")


def wire(ctx: ServiceContext[DiagnoserSettings]) -> ServiceParts:
    settings = ctx.settings
    priced = settings.price_input_per_1k_usd > 0 or settings.price_output_per_1k_usd > 0
    if settings.cost_limit_usd > 0 and not priced:
        log.warning(
            "ONCALL_COST_LIMIT_USD is set but no ONCALL_MODEL_PRICE_*_PER_1K_USD: the cost is unknown, "
            "so the limit never applies"
        )
    model = ModelClient(settings) if settings.llm_configured else None
    diagnoser = Diagnoser(
        bus=ctx.bus,
        caller=ToolCaller(ctx.broker, timeout_seconds=settings.tool_timeout_seconds + 2),
        model=model,
        max_rounds=settings.max_rounds,
        token_budget=settings.token_budget,
        systems=Systems.from_settings(settings),
        flap_policy=flapping.FlapPolicy(settings.flap_count, settings.flap_window_seconds),
        model_budget_seconds=settings.model_budget_seconds,
        slow_notice_seconds=settings.slow_notice_seconds,
        cost_limit_usd=settings.cost_limit_usd,
    )
    # Summaries of flapping groups once stable: nothing arrives on the bus to trigger them.
    watch_start, watch_stop = flapping.watcher(ctx.bus, diagnoser.flap_policy)
    router = ServiceRouter(ctx.bus, ctx.service)
    router.publishes(subjects.INCIDENTS_DIAGNOSED, IncidentDiagnosed)
    router.publishes(subjects.INCIDENTS_RESOLVED, IncidentResolved)
    router.publishes(subjects.NOTIFY_TEXT, NotifyText)
    router.publishes(subjects.TICKETS_REQUESTED, TicketRequested)
    router.publishes(subjects.SILENCES_REQUESTED, SilenceRequested)

    # ONCALL_MAX_CONCURRENT_DIAGNOSES is applied once, here: the firing consumer works on at most
    # this many alert groups at once, so it bounds every investigation (a first diagnosis, a
    # re-diagnosis when the group changes, a forced replay) and the model calls it makes. A
    # semaphore in the handler as well would only hold messages this replica pulled but could
    # not work on, which another replica could have taken.
    @router.durable(consumers.DIAGNOSER_ALERTS_FIRING, max_workers=settings.max_concurrent_diagnoses)
    async def on_alert_firing(group: AlertGroup) -> None:
        await diagnoser.on_alert_firing(group)

    @router.durable(consumers.DIAGNOSER_ALERTS_RESOLVED)
    async def on_alert_resolved(group: AlertGroup) -> None:
        await diagnoser.on_alert_resolved(group)

    async def on_reply_given_up(reply: HumanReplied, reason: str) -> None:
        await given_up.report_given_up(reply, reason, ctx.bus)

    @router.durable(consumers.DIAGNOSER_HUMAN, max_workers=4, on_dead_letter=on_reply_given_up)
    async def on_human_reply(reply: HumanReplied) -> None:
        await diagnoser.on_human_reply(reply)

    # Outcomes of the human's requests, recorded on the incident's conversation.
    @router.durable(consumers.DIAGNOSER_TICKET_CREATED)
    async def on_ticket_created(created: TicketCreated) -> None:
        await outcomes.record_ticket(ctx.bus, created)

    @router.durable(consumers.DIAGNOSER_TICKET_FAILED)
    async def on_ticket_failed(failed: TicketFailed) -> None:
        await outcomes.record_ticket_failure(ctx.bus, failed)

    @router.durable(consumers.DIAGNOSER_SILENCE_APPLIED)
    async def on_silence_applied(applied: SilenceApplied) -> None:
        await outcomes.record_silence(ctx.bus, applied)

    return ServiceParts(
        router=router, on_start=[watch_start], on_stop=[watch_stop, *([model.close] if model else [])]
    )


def summary(settings: DiagnoserSettings) -> str:
    return "diagnosis: " + (
        f"model {settings.openai_model}" if settings.llm_configured else "rule-based (no OPENAI_API_KEY)"
    )


SERVICE = Service(name="diagnoser", settings=DiagnoserSettings, wire=wire, summary=summary)
