"""A human's turn: what they asked for becomes an answer and, for write actions, requests for
the other services. Write actions exist only here, on an authenticated human's words."""

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from services.contracts import tools
from services.contracts.models import (
    Conversation,
    HumanReplied,
    SilenceMatcher,
    SilenceRequested,
    TicketRequested,
)
from services.contracts.tool_results import ErrorRateResult
from services.contracts.tools import CreateJiraTicketArgs, SilenceAlertArgs
from services.diagnoser.costs import Spend
from services.diagnoser.investigation import READ_TOOL_NAMES, run_read_tools
from services.diagnoser.model import ModelClient, ModelError
from services.diagnoser.prompts import HUMAN_TURN_SYSTEM_PROMPT, incident_context
from services.diagnoser.replies import HELP_TEXT, not_understood, parse_reply
from services.diagnoser.settings import DiagnoserSettings
from services.diagnoser.toolcalls import ToolCaller
from services.runtime.text import format_duration

log = logging.getLogger("oncall.diagnoser.turns")

MAX_TURN_ROUNDS = 4

JIRA_NOT_CONFIGURED = "Jira is not configured (set JIRA_URL, JIRA_EMAIL, JIRA_API_TOKEN and JIRA_PROJECT_KEY)"
ALERTMANAGER_NOT_CONFIGURED = "Alertmanager is not configured (set ALERTMANAGER_URL)"


@dataclass(frozen=True)
class Systems:
    """Which of the systems that write actions need are configured, so that an action that
    cannot be done is refused with the reason at once instead of promised first."""

    jira: bool = True
    alertmanager: bool = True

    @classmethod
    def from_settings(cls, settings: DiagnoserSettings) -> "Systems":
        # Only the settings every service gets (the ConfigMap): the Jira token is given to the
        # ticketing pods alone, which still report it missing themselves.
        return cls(
            jira=settings.jira_configured,
            alertmanager=settings.alertmanager_configured,
        )


@dataclass
class TurnOutcome:
    answer: str = ""
    tickets: list[TicketRequested] = field(default_factory=list)
    silences: list[SilenceRequested] = field(default_factory=list)
    acknowledge: bool = False
    resolve: bool = False
    notes: list[str] = field(default_factory=list)
    spend: Spend | None = None  # the model's tokens for this turn (None: the rules answered)

    @property
    def follow_up_expected(self) -> bool:
        """A ticket or silence request is answered again, with the reply's MessageSid, by the
        service that carries it out (created, failed, or a question); nothing else is."""
        return bool(self.tickets or self.silences)


def silence_matchers(conversation: Conversation) -> list[SilenceMatcher]:
    """The group's labels select exactly this incident's alerts."""
    labels = conversation.group_labels or {
        k: v
        for k, v in (conversation.alerts[0].labels if conversation.alerts else {}).items()
        if k in ("alertname", "service")
    }
    return [SilenceMatcher(name=k, value=v) for k, v in sorted(labels.items())]


class NotConfigured(Exception):
    """The action needs a system that is not configured; the message says which and how."""


def perform(
    outcome: TurnOutcome,
    conversation: Conversation,
    reply: HumanReplied,
    name: str,
    args: BaseModel,
    systems: Systems = Systems(),
) -> str:
    """Turns one write action into a request (at most one of each kind per human message) and
    returns the note for the human. Raises NotConfigured, requesting nothing, when the system
    the action needs is not configured."""
    request_id = f"{reply.message_sid}-{name}"
    title = f"*{conversation.title}*"
    refusal = _refusal(name, systems)
    if refusal is not None:
        raise NotConfigured(refusal)
    if isinstance(args, CreateJiraTicketArgs):
        if not outcome.tickets:
            diagnosis = conversation.diagnosis
            outcome.tickets.append(
                TicketRequested(
                    request_id=request_id,
                    incident_id=conversation.incident_id,
                    requested_by=reply.profile_name or reply.sender,
                    title=conversation.title,
                    summary=args.summary or conversation.title,
                    priority=args.priority or (diagnosis.priority if diagnosis else "P2"),
                    assignee=args.assignee,
                    new_ticket=args.new_ticket,
                    diagnosis=diagnosis,
                    service=conversation.service,
                    generator_url=conversation.generator_url,
                    runbook_url=conversation.runbook_url,
                    in_reply_to=reply.message_sid,
                )
            )
        who = f", assigned to {args.assignee}" if args.assignee else ""
        note = f"Creating the Jira ticket{who}. I'll confirm with the link."
    elif name in (tools.SILENCE_ALERT.name, tools.UNSILENCE_ALERT.name):
        create = name == tools.SILENCE_ALERT.name
        minutes = args.duration_minutes if isinstance(args, SilenceAlertArgs) else 0
        if not outcome.silences:
            outcome.silences.append(
                SilenceRequested(
                    request_id=request_id,
                    incident_id=conversation.incident_id,
                    requested_by=reply.sender,
                    action="create" if create else "expire",
                    matchers=silence_matchers(conversation),
                    duration_seconds=max(60, minutes * 60),
                    comment=f"Silenced from WhatsApp by {reply.sender}, incident #{conversation.incident_id}",
                    in_reply_to=reply.message_sid,
                )
            )
        note = (
            f"Silencing {title} for {format_duration(minutes * 60)}."
            if create
            else f"Removing the silence on {title}."
        )
    elif name == tools.ACKNOWLEDGE_INCIDENT.name:
        outcome.acknowledge = True
        note = f"{reply.profile_name or reply.sender} has taken {title}."
    elif name == tools.RESOLVE_INCIDENT.name:
        outcome.resolve = True
        note = f"Resolving {title} as asked by {reply.profile_name or reply.sender}."
    else:  # pragma: no cover - every write tool is handled above
        raise ValueError(name)
    outcome.notes.append(note)
    return note


def _refusal(name: str, systems: Systems) -> str | None:
    if name == tools.CREATE_JIRA_TICKET.name and not systems.jira:
        return f"I can't create a Jira ticket: {JIRA_NOT_CONFIGURED}."
    if name == tools.SILENCE_ALERT.name and not systems.alertmanager:
        return f"I can't silence: {ALERTMANAGER_NOT_CONFIGURED}."
    if name == tools.UNSILENCE_ALERT.name and not systems.alertmanager:
        return f"I can't unsilence: {ALERTMANAGER_NOT_CONFIGURED}."
    return None


async def rules_turn(
    caller: ToolCaller, conversation: Conversation, reply: HumanReplied, systems: Systems = Systems()
) -> TurnOutcome:
    intent = parse_reply(reply.body)
    outcome = TurnOutcome()
    action: tuple[str, BaseModel] | None = None
    if intent.kind == "ticket":
        assignee = intent.assignee
        if assignee and conversation.service and assignee.lower() == conversation.service.lower():
            assignee = None  # "a ticket for checkout" names the service, not a person
        args = CreateJiraTicketArgs(assignee=assignee, priority=intent.priority, new_ticket=intent.new_ticket)
        action = (tools.CREATE_JIRA_TICKET.name, args)
    elif intent.kind == "silence":
        action = (tools.SILENCE_ALERT.name, SilenceAlertArgs(duration_minutes=intent.minutes or 120))
    elif intent.kind == "unsilence":
        action = (tools.UNSILENCE_ALERT.name, tools.NoArgs())
    elif intent.kind == "ack":
        action = (tools.ACKNOWLEDGE_INCIDENT.name, tools.NoArgs())
    elif intent.kind == "resolve":
        action = (tools.RESOLVE_INCIDENT.name, tools.NoArgs())
    elif intent.kind == "status":
        result = await caller.call(
            tools.COMPUTE_ERROR_RATE.name, {"service": conversation.service}, conversation.incident_id
        )
        outcome.answer = status_text(conversation, result.data if result.ok else None, result)
    elif intent.kind == "help":
        outcome.answer = HELP_TEXT
    else:
        outcome.answer = not_understood(reply.body)
    if action is not None:
        try:
            perform(outcome, conversation, reply, *action, systems)
        except NotConfigured as exc:
            outcome.answer = str(exc)
    outcome.answer = outcome.answer or "\n".join(outcome.notes)
    return outcome


def status_text(conversation: Conversation, data: Any, result: Any) -> str:
    head = f"*{conversation.title}* is {conversation.status}."
    if conversation.acked_by:
        head += f" Taken by {conversation.acked_by}."
    if conversation.ticket_key:
        head += f" Ticket: {conversation.ticket_key}."
    if isinstance(data, ErrorRateResult) and data.error_rate is not None:
        return f"{head} Error rate now: {data.error_rate:.1%}."
    if isinstance(data, ErrorRateResult):
        return f"{head} No traffic in the last minute, so no error rate."
    reason = result.error.message if getattr(result, "error", None) else "unknown"
    return f"{head} I could not read the error rate: {reason}"


WRITE_TOOL_NAMES = frozenset(spec.name for spec in tools.WRITE_TOOLS)
ANSWER_IN_WORDS = "Answer the engineer now in one or two plain sentences, using the tool results above."


def has_words(text: str) -> bool:
    """False for what a small model says when it has nothing to say: "", "{}", "[]", "null"."""
    return any(ch.isalpha() for ch in text) and text.strip("`\n ").lower() not in ("null", "none")


async def model_turn(
    model: ModelClient,
    caller: ToolCaller,
    conversation: Conversation,
    reply: HumanReplied,
    systems: Systems = Systems(),
) -> TurnOutcome:
    """Raises ModelError on failure; the caller falls back to rules_turn."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": HUMAN_TURN_SYSTEM_PROMPT},
        {"role": "user", "content": incident_context(conversation)},
        {"role": "user", "content": f"Engineer ({reply.sender}): {reply.body}"},
    ]
    offered = tools.human_turn_tools()
    cache: dict[str, str] = {}
    spend = Spend(model.prices)
    outcome = TurnOutcome(spend=spend)
    deadline = model.deadline()  # the turn's model time, every round and retry included
    nudged = False
    for _ in range(MAX_TURN_ROUNDS):
        answered = await model.complete(messages, offered, "auto", deadline)
        spend.add(answered.prompt_tokens, answered.completion_tokens)
        message = answered.message
        messages.append(message)
        calls = message.get("tool_calls") or []
        if not calls:
            content = (message.get("content") or "").strip()
            if not has_words(content) and not outcome.notes and not nudged:
                # A small model sometimes answers a tool result with "{}": asked once more in
                # plain words (the prompt's prefix is reused, so this costs only the answer).
                nudged = True
                messages.append({"role": "user", "content": ANSWER_IN_WORDS})
                continue
            if not has_words(content) and not outcome.notes:
                # Nothing was done (a write leaves a note) and nothing said: the rules answer.
                raise ModelError(f"the model answered without words: {content[:40]!r}", reason="no_words")
            words = content if has_words(content) else "\n".join(outcome.notes)
            outcome.answer = words or not_understood(reply.body)
            return outcome
        write_calls = [c for c in calls if c["function"]["name"] in WRITE_TOOL_NAMES]
        read_calls = [c for c in calls if c not in write_calls]
        results = {c["id"]: _write_call(outcome, conversation, reply, c, systems) for c in write_calls}
        results |= {
            m["tool_call_id"]: m
            for m in await run_read_tools(
                caller, read_calls, READ_TOOL_NAMES, cache, conversation.incident_id
            )
        }
        # Tool messages in the order of the calls, as the API expects.
        messages += [results[c["id"]] for c in calls]
    outcome.answer = "\n".join(outcome.notes) or "I could not finish that; try `help`."
    return outcome


def _write_call(
    outcome: TurnOutcome,
    conversation: Conversation,
    reply: HumanReplied,
    call: dict[str, Any],
    systems: Systems,
) -> dict[str, Any]:
    name = call["function"]["name"]
    try:
        args = tools.TOOLS_BY_NAME[name].args_model.model_validate_json(call["function"]["arguments"] or "{}")
        note = perform(outcome, conversation, reply, name, args, systems)
        content = json.dumps({"ok": True, "done": note})
    except ValidationError as exc:
        content = json.dumps({"error": f"invalid arguments: {exc.errors()[0]['msg']}"})
    except NotConfigured as exc:
        # Told to the model as a refusal it must pass on; kept as the answer if it says nothing.
        outcome.notes.append(str(exc))
        content = json.dumps({"ok": False, "error": str(exc)})
    return {"role": "tool", "tool_call_id": call["id"], "content": content}
