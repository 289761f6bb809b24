"""diagnoser: wiring only; logic in handlers.py and the modules it uses."""

import asyncio
import functools

from services.contracts import consumers
from services.contracts.models import AlertGroup, HumanReplied, SilenceApplied, TicketCreated, TicketFailed
from services.diagnoser import outcomes
from services.diagnoser.handlers import Diagnoser
from services.diagnoser.model import ModelClient
from services.diagnoser.toolcalls import ToolCaller
from services.diagnoser.turns import Systems
from services.runtime.bus import subscribe_durable
from services.runtime.service import ServiceContext, ServiceParts


def wire(ctx: ServiceContext) -> ServiceParts:
    settings = ctx.settings
    model = ModelClient(settings) if settings.llm_configured else None
    diagnoser = Diagnoser(
        bus=ctx.bus,
        caller=ToolCaller(ctx.broker, timeout_seconds=settings.tool_timeout_seconds + 2),
        model=model,
        max_rounds=settings.max_rounds,
        token_budget=settings.token_budget,
        in_flight=asyncio.Semaphore(settings.max_concurrent_diagnoses),
        systems=Systems.from_settings(settings),
    )
    workers = settings.max_concurrent_diagnoses
    subscribe_durable(
        ctx.broker, ctx.bus, consumers.DIAGNOSER_ALERTS_FIRING, AlertGroup, diagnoser.on_alert_firing, workers
    )
    subscribe_durable(
        ctx.broker, ctx.bus, consumers.DIAGNOSER_ALERTS_RESOLVED, AlertGroup, diagnoser.on_alert_resolved
    )
    subscribe_durable(
        ctx.broker, ctx.bus, consumers.DIAGNOSER_HUMAN, HumanReplied, diagnoser.on_human_reply, 4
    )
    for spec, model_type, record in (
        (consumers.DIAGNOSER_TICKET_CREATED, TicketCreated, outcomes.record_ticket),
        (consumers.DIAGNOSER_TICKET_FAILED, TicketFailed, outcomes.record_ticket_failure),
        (consumers.DIAGNOSER_SILENCE_APPLIED, SilenceApplied, outcomes.record_silence),
    ):
        subscribe_durable(ctx.broker, ctx.bus, spec, model_type, functools.partial(record, ctx.bus))
    return ServiceParts(on_stop=[model.close] if model else [])
