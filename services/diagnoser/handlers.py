"""The diagnoser's handlers: alert groups in, diagnoses and answers out, state in KV."""

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from services.contracts import streams, subjects
from services.contracts.models import (
    AlertGroup,
    Conversation,
    Diagnosis,
    FeedbackRecord,
    HumanReplied,
    HumanTurn,
    IncidentDiagnosed,
    IncidentResolved,
    NotifyText,
    incident_tag,
    incident_tag_in,
)
from services.diagnoser import conversation as conv
from services.diagnoser import feedback, flapping, memory, metrics, open_incidents
from services.diagnoser.claims import unverified_claims, with_claims_checked
from services.diagnoser.costs import Spend
from services.diagnoser.dedupe import OnePerKey
from services.diagnoser.evidence import Evidence, error_rate_of, gather_evidence, summarize
from services.diagnoser.investigation import (
    Accounting,
    Investigation,
    ModelDidNotConclude,
    compact,
    diagnose_with_model,
)
from services.diagnoser.model import ModelClient, ModelError, reason_of
from services.diagnoser.notices import slow_notice
from services.diagnoser.rules import rule_based_diagnosis
from services.diagnoser.toolcalls import INCIDENT_DEADLINE, ToolCaller
from services.diagnoser.turns import Systems, TurnOutcome, model_turn, rules_turn
from services.runtime.bus import Bus
from services.runtime.timeline import timeline_of

log = logging.getLogger("oncall.diagnoser")

NO_MODEL = "no model configured"
NO_OPEN_INCIDENT = (
    "I have no open incident to act on. To act on an older one, start your reply with its #tag."
)


@dataclass
class Diagnoser:
    bus: Bus
    caller: ToolCaller
    model: ModelClient | None
    max_rounds: int
    token_budget: int
    systems: Systems = field(default_factory=Systems)
    investigating: OnePerKey = field(default_factory=OnePerKey)
    model_budget_seconds: float = 150.0
    slow_notice_seconds: float = 0.0  # 0: no "still investigating" notice
    flap_policy: flapping.FlapPolicy = field(default_factory=flapping.FlapPolicy)
    cost_limit_usd: float = 0.0  # per incident; 0: no limit

    # --- alerts ---------------------------------------------------------------------

    async def on_alert_firing(self, group: AlertGroup) -> None:
        # One investigation per incident: the group's other webhooks wait for its diagnosis.
        async with self.investigating.holding(group.effective_incident_id):
            await self._on_alert_firing(group)

    async def _on_alert_firing(self, group: AlertGroup) -> None:
        incident_id = group.effective_incident_id
        current, _ = await self.bus.kv_get(streams.CONVERSATIONS, incident_id, Conversation)
        if current is not None and current.status == "resolved":
            log.info("incident %s is resolved; ignoring a late firing notification", incident_id)
            return
        if current is not None and not group.force and not conv.needs_diagnosis(current, group):
            if conv.alerts_changed(current, group):  # more of the same: keep the list, tell nobody
                await self.bus.kv_update(
                    streams.CONVERSATIONS,
                    incident_id,
                    Conversation,
                    lambda existing: conv.with_alerts(existing, group) if existing else None,
                )
            # Alertmanager's repeat, or a redelivery after the diagnosis was stored: make sure it
            # was published (same id: dropped by JetStream if it was) and stop.
            await self._publish_diagnosis(current)
            return
        if current is None and not group.force:
            flap = await flapping.on_firing(self.bus, group, incident_id, self.flap_policy)
            if flap.action == "announce" and flap.record is not None:
                await flapping.announce(self.bus, flap.record, incident_id, self.flap_policy)
            if flap.action != "diagnose":  # flapping: one message, then counted silently
                return
        await self._diagnose(group, incident_id, current)

    async def _diagnose(self, group: AlertGroup, incident_id: str, current: Conversation | None) -> None:
        log.info("investigating incident %s: %s", incident_id, group.title)
        # One deadline for the incident: the evidence's retries and every model attempt within it.
        started = time.monotonic()
        deadline = started + self.model_budget_seconds
        INCIDENT_DEADLINE.set(deadline)
        evidence = await gather_evidence(self.caller, group, incident_id)
        recalled = await memory.recall(self.bus, group, evidence, incident_id)
        evidence.memory = recalled.for_model
        rules = rule_based_diagnosis(group, evidence)
        llm_messages: list[dict[str, Any]] = []
        tokens = 0
        diagnosis = None
        fallback_reason = NO_MODEL
        seen_revision = current.diagnosis_revision if current else 0
        account: Accounting | None = None  # what the model spent, stored even when it failed
        if self.model is not None:
            account = Accounting(Spend(self.model.prices))
            try:
                investigation = await self._with_slow_notice(
                    diagnose_with_model(
                        self.model,
                        self.caller,
                        group,
                        incident_id,
                        evidence,
                        self.max_rounds,
                        self.token_budget,
                        deadline,
                        account,
                        self.cost_limit_usd,
                        (current.cost_usd or 0.0) if current else 0.0,
                    ),
                    group.title,
                    incident_id,
                    seen_revision + 1,
                    rules,
                    started,
                )
                diagnosis, llm_messages, tokens = (
                    checked(investigation, evidence, rules, self.model.model),
                    investigation.messages,
                    investigation.tokens,
                )
                metrics.model_calls.observe(investigation.model_calls)
                metrics.claims_unverified.inc(len(diagnosis.unverified))
            except (ModelError, ModelDidNotConclude) as exc:
                log.warning("model failed for incident %s, using rules: %s", incident_id, exc)
                metrics.llm_failures.labels(reason=exc.__class__.__name__).inc()
                fallback_reason = f"the model at {self.model.host} failed ({reason_of(exc)})"
        if diagnosis is None:
            diagnosis = rules
            diagnosis.fallback_reason = fallback_reason
        summary, rate = summarize(evidence), error_rate_of(evidence)
        kept_messages = compact(llm_messages)

        written: list[Conversation] = []  # what `store` last wrote: ours, if kv_update returns it

        def store(existing: Conversation | None) -> Conversation | None:
            if existing is not None and existing.diagnosis_revision > seen_revision:
                return None  # another replica stored a diagnosis meanwhile: publish that one
            base = existing or conv.new_conversation(group, incident_id)
            updated = conv.with_diagnosis(base, group, diagnosis, summary, rate, kept_messages, tokens)
            if account is not None:
                spend, loops = account.spend, [loop.describe() for loop in account.loops.found]
                updated = conv.with_investigation_usage(
                    updated, spend.tokens_in, spend.tokens_out, spend.cost_usd, loops, account.forced_by
                )
            written.append(memory.with_recalled(updated, recalled))
            return written[-1]

        await open_incidents.opened(self.bus, incident_id)  # first: the index may name more, never fewer
        stored = await self.bus.kv_update(streams.CONVERSATIONS, incident_id, Conversation, store)
        assert stored is not None
        await memory.remember(self.bus, stored)
        if written and stored is written[-1]:  # ours, not another replica's: counted once, when published
            metrics.diagnoses.labels(method=diagnosis.method).inc()
            if stored.seen_before:
                metrics.repeats.inc()
        await self._publish_diagnosis(stored)

    async def _with_slow_notice(
        self,
        investigating: Coroutine[Any, Any, Investigation],
        title: str,
        incident_id: str,
        revision: int,
        first_look: Diagnosis,
        started: float,
    ) -> Investigation:
        """The model's investigation; when it takes longer than slow_notice_seconds, the rules'
        first look is sent meanwhile, saying that the model is still working."""
        task = asyncio.ensure_future(investigating)
        try:
            if self.slow_notice_seconds > 0 and self.model is not None:
                done, _ = await asyncio.wait({task}, timeout=self.slow_notice_seconds)
                if not done:
                    waited = time.monotonic() - started
                    note = slow_notice(
                        title, incident_id, revision, self.model.model, self.model.host, waited, first_look
                    )
                    await self.bus.publish_event(subjects.NOTIFY_TEXT, note, msg_id=note.notification_id)
                    metrics.slow_notices.inc()
            return await task
        finally:
            task.cancel()  # only when this handler is cancelled: a finished task ignores it

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
            seen_before=conversation.seen_before,
        )
        await self.bus.publish_event(
            subjects.INCIDENTS_DIAGNOSED,
            event,
            msg_id=f"diagnosed-{conversation.incident_id}-{conversation.diagnosis_revision}",
        )

    async def on_alert_resolved(self, group: AlertGroup) -> None:
        incident_id = group.effective_incident_id

        def close(existing: Conversation | None) -> Conversation | None:
            if existing is None or existing.status == "resolved":
                return None
            return conv.resolved(existing)

        closed = await self.bus.kv_update(streams.CONVERSATIONS, incident_id, Conversation, close)
        await open_incidents.closed(self.bus, incident_id)  # also on a redelivery: after the close
        await flapping.on_resolved(self.bus, group)
        await memory.remember(self.bus, closed, ended_at=memory.ended(group))
        if closed is None:
            log.info("resolved notification for unknown incident %s: nothing to tell", incident_id)
            return
        await self._publish_resolved(closed)

    async def _publish_resolved(self, closed: Conversation) -> None:
        event = IncidentResolved(
            incident_id=closed.incident_id,
            title=closed.title,
            started_at=min((a.starts_at for a in closed.alerts if a.starts_at), default=closed.opened_at),
            resolved_at=closed.resolved_at or closed.updated_at,
            ticket_key=closed.ticket_key,
            ticket_url=closed.ticket_url,
            timeline=timeline_of(closed),
        )
        await self.bus.publish_event(
            subjects.INCIDENTS_RESOLVED, event, msg_id=f"resolved-{closed.incident_id}"
        )

    # --- human turns ------------------------------------------------------------------

    async def on_human_reply(self, reply: HumanReplied) -> None:
        named = incident_named(reply)
        conversation = await self._incident_for(named)
        if conversation is None:
            unknown = f"I know no incident {incident_tag(named)}." if named else NO_OPEN_INCIDENT
            await self._answer(reply, None, unknown)
            return
        if conv.has_turn(conversation, reply.message_sid):
            log.info("reply %s already handled", reply.message_sid)
            return
        outcome = await self._feedback(conversation, reply) or await self._turn(conversation, reply)
        # Publish first, record the turn last: a redelivery re-publishes under the same ids
        # (dropped by JetStream) and the notifier/ticketing keep their own idempotency keys.
        for requested in outcome.tickets:
            # One ticket per problem: the tickets of earlier incidents with the same signature.
            ticket = await memory.with_related_tickets(self.bus, conversation, requested)
            await self.bus.publish_event(
                subjects.TICKETS_REQUESTED, ticket, msg_id=f"ticket-requested-{ticket.request_id}"
            )
        for silence in outcome.silences:
            await self.bus.publish_event(
                subjects.SILENCES_REQUESTED, silence, msg_id=f"silence-{silence.request_id}"
            )
        await self._answer(reply, conversation.incident_id, outcome.answer, outcome.follow_up_expected)
        turn = HumanTurn(
            message_sid=reply.message_sid, sender=reply.sender, text=reply.body, answer=outcome.answer
        )
        who = reply.profile_name or reply.sender

        def record(existing: Conversation | None) -> Conversation | None:
            if existing is None:
                return None
            updated = conv.with_turn(existing, turn)
            if outcome.spend is not None:
                spent = outcome.spend
                updated = conv.with_model_usage(updated, spent.tokens_in, spent.tokens_out, spent.cost_usd)
            if outcome.acknowledge:
                updated = conv.acknowledged(updated, who)
            if outcome.resolve and updated.status != "resolved":
                updated = conv.resolved(updated)
            return updated

        stored = await self.bus.kv_update(
            streams.CONVERSATIONS, conversation.incident_id, Conversation, record
        )
        if outcome.resolve and stored is not None:
            await open_incidents.closed(self.bus, stored.incident_id)
            await memory.remember(self.bus, stored)
            await self._publish_resolved(stored)

    async def _feedback(self, conversation: Conversation, reply: HumanReplied) -> TurnOutcome | None:
        """ "right", "wrong: the cause was X", 👍, 👎: recorded and acknowledged in one line."""
        said = feedback.parse(reply.body)
        if said is None:
            return None
        verdict, correction = said
        record = FeedbackRecord(
            verdict=verdict,
            by=reply.profile_name or reply.sender,
            correction=correction,
            message_sid=reply.message_sid,
        )
        await feedback.record(self.bus, conversation.incident_id, record)
        return TurnOutcome(answer=feedback.acknowledgement(conversation, record))

    async def _turn(self, conversation: Conversation, reply: HumanReplied) -> TurnOutcome:
        if self.model is not None:
            try:
                return await model_turn(self.model, self.caller, conversation, reply, self.systems)
            except ModelError as exc:
                log.warning("model failed on a human turn, using rules: %s", exc)
                metrics.llm_failures.labels(reason="human_turn").inc()
        return await rules_turn(self.caller, conversation, reply, self.systems)

    async def _answer(
        self, reply: HumanReplied, incident_id: str | None, text: str, follow_up_expected: bool = False
    ) -> None:
        note = NotifyText(
            notification_id=f"answer-{reply.message_sid}",
            incident_id=incident_id,
            text=text,
            in_reply_to=reply.message_sid,
            follow_up_expected=follow_up_expected,
        )
        await self.bus.publish_event(subjects.NOTIFY_TEXT, note, msg_id=f"answer-{reply.message_sid}")

    async def _incident_for(self, named: str | None) -> Conversation | None:
        """The incident the reply names, else the newest open one (every on-call number is paged
        for every incident, so that is the sender's newest open incident). A NATS failure raises,
        for a redelivery: it is never taken for "no open incident"."""
        if named:
            found, _ = await self.bus.kv_get(streams.CONVERSATIONS, named, Conversation)
            return found
        return await open_incidents.newest_open(self.bus)


def incident_named(reply: HumanReplied) -> str | None:
    """Which incident a reply is about, the same on every channel: the one its channel matched
    (the WhatsApp message swipe-replied to, `oncall reply --incident`), else a tag typed in the
    text (`#a1b2c3 status`); None means the newest open one."""
    explicit = (reply.incident_id or "").strip().lstrip("#")
    return explicit or incident_tag_in(reply.body)


def checked(investigation: Investigation, evidence: Evidence, rules: Diagnosis, model: str) -> Diagnosis:
    """The model's diagnosis with its claims checked against the evidence and every tool result
    it read (claims.py), and the model named."""
    seen = [
        m["content"]
        for m in investigation.messages
        if m.get("role") == "tool" and isinstance(m.get("content"), str)
    ]
    diagnosis = investigation.diagnosis
    unverified = unverified_claims(diagnosis, evidence, seen)
    return with_claims_checked(diagnosis, unverified, rules).model_copy(update={"model": model})
