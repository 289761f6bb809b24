"""The diagnoser's handlers: alert groups in, diagnoses and answers out, state in KV."""

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from services.contracts import streams, subjects
from services.contracts.models import (
    AlertGroup,
    Conversation,
    HumanReplied,
    HumanTurn,
    IncidentDiagnosed,
    IncidentResolved,
    NotifyText,
    incident_id_for,
)
from services.diagnoser import conversation as conv
from services.diagnoser.evidence import error_rate_of, gather_evidence, summarize
from services.diagnoser.investigation import ModelDidNotConclude, diagnose_with_model
from services.diagnoser.model import ModelClient, ModelError
from services.diagnoser.rules import rule_based_diagnosis
from services.diagnoser.toolcalls import ToolCaller
from services.diagnoser.turns import TurnOutcome, model_turn, rules_turn
from services.runtime import metrics
from services.runtime.bus import Bus

log = logging.getLogger("oncall.diagnoser")


@dataclass
class Diagnoser:
    bus: Bus
    caller: ToolCaller
    model: ModelClient | None
    max_rounds: int
    in_flight: asyncio.Semaphore

    # --- alerts ---------------------------------------------------------------------

    async def on_alert_firing(self, group: AlertGroup) -> None:
        incident_id = group.incident_id or incident_id_for(group.group_key, _earliest(group))
        current, _ = await self.bus.kv_get(streams.CONVERSATIONS, incident_id, Conversation)
        if current is not None and current.status == "resolved":
            log.info("incident %s is resolved; ignoring a late firing notification", incident_id)
            return
        if current is not None and not conv.needs_diagnosis(current, group):
            # Alertmanager's repeat, or a redelivery after the diagnosis was stored: make sure it
            # was published (same id: dropped by JetStream if it was) and stop.
            await self._publish_diagnosis(current)
            return
        async with self.in_flight:
            await self._diagnose(group, incident_id, current)

    async def _diagnose(self, group: AlertGroup, incident_id: str, current: Conversation | None) -> None:
        log.info("investigating incident %s: %s", incident_id, group.title)
        evidence = await gather_evidence(self.caller, group, incident_id)
        llm_messages: list[dict[str, Any]] = []
        diagnosis = None
        if self.model is not None:
            try:
                diagnosis, llm_messages = await diagnose_with_model(
                    self.model, self.caller, group, incident_id, evidence, self.max_rounds
                )
            except (ModelError, ModelDidNotConclude) as exc:
                log.warning("model failed for incident %s, using rules: %s", incident_id, exc)
                metrics.llm_failures.labels(reason=exc.__class__.__name__).inc()
        if diagnosis is None:
            diagnosis = rule_based_diagnosis(group, evidence)
        summary, rate = summarize(evidence), error_rate_of(evidence)

        def store(existing: Conversation | None) -> Conversation | None:
            base = existing or current or conv.new_conversation(group, incident_id)
            if existing is not None and not conv.needs_diagnosis(existing, group):
                return None  # another replica stored a diagnosis for these alerts meanwhile
            return conv.with_diagnosis(base, group, diagnosis, summary, rate, llm_messages)

        stored = await self.bus.kv_update(streams.CONVERSATIONS, incident_id, Conversation, store)
        assert stored is not None
        metrics.diagnoses.labels(method=diagnosis.method).inc()
        await self._publish_diagnosis(stored)

    async def _publish_diagnosis(self, conversation: Conversation) -> None:
        if conversation.diagnosis is None:
            return
        event = IncidentDiagnosed(
            incident_id=conversation.incident_id,
            revision=conversation.diagnosis_revision,
            title=conversation.title,
            service=conversation.service,
            severity=conversation.severity,
            started_at=min((a.starts_at for a in conversation.alerts if a.starts_at), default=None),
            alert_count=len(conversation.alerts),
            truncated_alerts=conversation.truncated_alerts,
            error_rate=conversation.error_rate,
            generator_url=conversation.generator_url,
            runbook_url=conversation.runbook_url,
            diagnosis=conversation.diagnosis,
        )
        await self.bus.publish_event(
            subjects.INCIDENTS_DIAGNOSED,
            event,
            msg_id=f"diagnosed-{conversation.incident_id}-{conversation.diagnosis_revision}",
        )

    async def on_alert_resolved(self, group: AlertGroup) -> None:
        incident_id = group.incident_id or incident_id_for(group.group_key, _earliest(group))

        def close(existing: Conversation | None) -> Conversation | None:
            if existing is None or existing.status == "resolved":
                return None
            return conv.resolved(existing)

        closed = await self.bus.kv_update(streams.CONVERSATIONS, incident_id, Conversation, close)
        if closed is None:
            log.info("resolved notification for unknown incident %s: nothing to tell", incident_id)
            return
        event = IncidentResolved(
            incident_id=incident_id,
            title=closed.title,
            started_at=min((a.starts_at for a in closed.alerts if a.starts_at), default=closed.opened_at),
            resolved_at=closed.resolved_at or closed.updated_at,
            ticket_key=closed.ticket_key,
        )
        await self.bus.publish_event(subjects.INCIDENTS_RESOLVED, event, msg_id=f"resolved-{incident_id}")

    # --- human turns ------------------------------------------------------------------

    async def on_human_reply(self, reply: HumanReplied) -> None:
        conversation = await self._incident_for(reply)
        if conversation is None:
            await self._answer(reply, None, "I have no open incident to act on.")
            return
        if conv.has_turn(conversation, reply.message_sid):
            log.info("reply %s already handled", reply.message_sid)
            return
        outcome = await self._turn(conversation, reply)
        for index, ticket in enumerate(outcome.tickets):
            await self.bus.publish_event(
                subjects.TICKETS_REQUESTED, ticket, msg_id=f"ticket-requested-{reply.message_sid}-{index}"
            )
        await self._answer(reply, conversation.incident_id, outcome.answer)
        turn = HumanTurn(
            message_sid=reply.message_sid, sender=reply.sender, text=reply.body, answer=outcome.answer
        )
        await self.bus.kv_update(
            streams.CONVERSATIONS,
            conversation.incident_id,
            Conversation,
            lambda existing: conv.with_turn(existing, turn) if existing else None,
        )

    async def _turn(self, conversation: Conversation, reply: HumanReplied) -> TurnOutcome:
        if self.model is not None:
            try:
                return await model_turn(self.model, self.caller, conversation, reply)
            except ModelError as exc:
                log.warning("model failed on a human turn, using rules: %s", exc)
                metrics.llm_failures.labels(reason="human_turn").inc()
        return await rules_turn(self.caller, conversation, reply)

    async def _answer(self, reply: HumanReplied, incident_id: str | None, text: str) -> None:
        note = NotifyText(notification_id=f"answer-{reply.message_sid}", incident_id=incident_id, text=text)
        await self.bus.publish_event(subjects.NOTIFY_TEXT, note, msg_id=f"answer-{reply.message_sid}")

    async def _incident_for(self, reply: HumanReplied) -> Conversation | None:
        """The incident the reply names, else the newest open one (every on-call number is paged
        for every incident, so that is the sender's newest open incident)."""
        if reply.incident_id:
            found, _ = await self.bus.kv_get(streams.CONVERSATIONS, reply.incident_id, Conversation)
            return found
        kv = await self.bus.kv(streams.CONVERSATIONS)
        try:
            keys = await kv.keys()
        except Exception:  # nats-py raises NoKeysError on an empty bucket
            return None
        open_ones = []
        for key in keys:
            found, _ = await self.bus.kv_get(streams.CONVERSATIONS, key, Conversation)
            if found is not None and found.status != "resolved":
                open_ones.append(found)
        return max(open_ones, key=lambda c: c.opened_at, default=None)


def _earliest(group: AlertGroup) -> Any:
    starts = [a.starts_at for a in (group.firing or group.alerts) if a.starts_at is not None]
    return min(starts) if starts else None
