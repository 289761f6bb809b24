"""Pure changes to the conversation record kept in KV (applied with compare-and-set)."""

from typing import Any

from services.contracts.models import Alert, AlertGroup, Conversation, Diagnosis, HumanTurn, utc_now


def new_conversation(group: AlertGroup, incident_id: str) -> Conversation:
    return with_alerts(
        Conversation(
            incident_id=incident_id,
            group_key=group.group_key,
            title=group.title,
            service=group.service,
            severity=group.common_labels.get("severity"),
            group_labels=group.group_labels,
            generator_url=next((a.generator_url for a in group.alerts if a.generator_url), None),
            runbook_url=group.annotation("runbook_url"),
        ),
        group,
    )


def with_alerts(conversation: Conversation, group: AlertGroup) -> Conversation:
    return conversation.model_copy(
        update={
            "alerts": group.alerts,
            "firing_fingerprints": sorted({a.fingerprint for a in group.firing}),
            "truncated_alerts": group.truncated_alerts,
            "updated_at": utc_now(),
        }
    )


def picture(alerts: list[Alert]) -> set[tuple[str, str, str]]:
    """What a diagnosis depends on: which alert, on which service, how severe. One more pod failing
    the same way does not change it."""
    return {
        (a.labels.get("alertname", ""), a.labels.get("service", ""), a.labels.get("severity", ""))
        for a in alerts
        if a.status == "firing"
    }


def needs_diagnosis(conversation: Conversation, group: AlertGroup) -> bool:
    """A repeat is not diagnosed again, nor are more alerts of the same kind; a new alert name,
    service or severity in the group is."""
    if conversation.diagnosis is None:
        return True
    return not picture(group.alerts) <= picture(conversation.alerts)


def alerts_changed(conversation: Conversation, group: AlertGroup) -> bool:
    return sorted({a.fingerprint for a in group.firing}) != conversation.firing_fingerprints


def with_diagnosis(
    conversation: Conversation,
    group: AlertGroup,
    diagnosis: Diagnosis,
    evidence_summary: str,
    error_rate: float | None,
    llm_messages: list[dict[str, Any]],
    tokens: int,
) -> Conversation:
    updated = with_alerts(conversation, group)
    return updated.model_copy(
        update={
            "status": "diagnosed",
            "diagnosis": diagnosis,
            "diagnosis_revision": conversation.diagnosis_revision + 1,
            "evidence_summary": evidence_summary,
            "error_rate": error_rate,
            "llm_messages": llm_messages,
            "tokens_used": conversation.tokens_used + tokens,
        }
    )


def acknowledged(conversation: Conversation, by: str) -> Conversation:
    return conversation.model_copy(update={"acked_by": by, "updated_at": utc_now()})


def resolved(conversation: Conversation) -> Conversation:
    return conversation.model_copy(
        update={"status": "resolved", "resolved_at": utc_now(), "updated_at": utc_now()}
    )


def with_turn(conversation: Conversation, turn: HumanTurn) -> Conversation:
    if any(t.message_sid == turn.message_sid for t in conversation.turns):
        return conversation
    return conversation.model_copy(update={"turns": [*conversation.turns, turn], "updated_at": utc_now()})


def has_turn(conversation: Conversation, message_sid: str) -> bool:
    return any(t.message_sid == message_sid for t in conversation.turns)


def with_model_usage(
    conversation: Conversation, tokens_in: int, tokens_out: int, cost_usd: float | None
) -> Conversation:
    """The incident's model usage with one more investigation's or turn's added. The cost stays
    None until a price is configured: a sum of unknowns is not 0."""
    cost = conversation.cost_usd
    if cost_usd is not None:
        cost = (cost or 0.0) + cost_usd
    return conversation.model_copy(
        update={
            "tokens_in": conversation.tokens_in + tokens_in,
            "tokens_out": conversation.tokens_out + tokens_out,
            "cost_usd": cost,
        }
    )


def with_investigation_usage(
    conversation: Conversation,
    tokens_in: int,
    tokens_out: int,
    cost_usd: float | None,
    loops: list[str],
    forced_by: str | None,
) -> Conversation:
    """An investigation's usage added, its loops kept beside the earlier ones', and why its
    conclusion was forced (None: it was not): the latest diagnosis's reason, not an older one's."""
    updated = with_model_usage(conversation, tokens_in, tokens_out, cost_usd)
    return updated.model_copy(
        update={"model_loops": [*conversation.model_loops, *loops], "forced_conclusion": forced_by}
    )
