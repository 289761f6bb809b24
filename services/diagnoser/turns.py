"""A human's turn: what they asked for becomes an answer and, for write actions, requests
(ticket) for the other services. Write actions exist only here, on an authenticated human's words."""

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from services.contracts import tools
from services.contracts.models import Conversation, HumanReplied, TicketRequested
from services.contracts.tools import CreateJiraTicketArgs
from services.diagnoser.investigation import READ_TOOL_NAMES, run_read_tools
from services.diagnoser.model import ModelClient
from services.diagnoser.prompts import HUMAN_TURN_SYSTEM_PROMPT, incident_context
from services.diagnoser.replies import HELP_TEXT, parse_reply
from services.diagnoser.toolcalls import ToolCaller

log = logging.getLogger("oncall.diagnoser.turns")

MAX_TURN_ROUNDS = 4


@dataclass
class TurnOutcome:
    answer: str
    tickets: list[TicketRequested] = field(default_factory=list)


def ticket_request(
    conversation: Conversation, reply: HumanReplied, args: CreateJiraTicketArgs, index: int = 0
) -> TicketRequested:
    diagnosis = conversation.diagnosis
    return TicketRequested(
        request_id=f"{reply.message_sid}-{index}",
        incident_id=conversation.incident_id,
        requested_by=reply.sender,
        title=conversation.title,
        summary=args.summary or conversation.title,
        priority=args.priority or (diagnosis.priority if diagnosis else "P2"),
        assignee=args.assignee,
        diagnosis=diagnosis,
        service=conversation.service,
        generator_url=conversation.generator_url,
        runbook_url=conversation.runbook_url,
    )


def ticket_answer(args: CreateJiraTicketArgs) -> str:
    who = f", assigned to {args.assignee}" if args.assignee else ""
    return f"Creating the Jira ticket{who}. I'll confirm with the link."


async def rules_turn(caller: ToolCaller, conversation: Conversation, reply: HumanReplied) -> TurnOutcome:
    intent = parse_reply(reply.body)
    if intent.kind == "ticket":
        args = CreateJiraTicketArgs(assignee=intent.assignee, priority=intent.priority)
        return TurnOutcome(ticket_answer(args), [ticket_request(conversation, reply, args)])
    if intent.kind == "status":
        result = await caller.call(
            tools.COMPUTE_ERROR_RATE.name, {"service": conversation.service}, conversation.incident_id
        )
        return TurnOutcome(status_text(conversation, result.data if result.ok else None, result))
    return TurnOutcome(HELP_TEXT)


def status_text(conversation: Conversation, data: Any, result: Any) -> str:
    head = f"*{conversation.title}* is {conversation.status}."
    if isinstance(data, dict) and data.get("error_rate") is not None:
        return f"{head} Error rate now: {float(data['error_rate']):.1%}."
    if isinstance(data, dict):
        return f"{head} No traffic in the last minute, so no error rate."
    reason = result.error.message if getattr(result, "error", None) else "unknown"
    return f"{head} I could not read the error rate: {reason}"


async def model_turn(
    model: ModelClient, caller: ToolCaller, conversation: Conversation, reply: HumanReplied
) -> TurnOutcome:
    """Raises ModelError on failure; the caller falls back to rules_turn."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": HUMAN_TURN_SYSTEM_PROMPT},
        {"role": "user", "content": incident_context(conversation)},
        {"role": "user", "content": f"Engineer ({reply.sender}): {reply.body}"},
    ]
    offered = tools.human_turn_tools()
    cache: dict[str, str] = {}
    tickets: list[TicketRequested] = []
    notes: list[str] = []
    for _ in range(MAX_TURN_ROUNDS):
        message = await model.complete(messages, offered)
        messages.append(message)
        calls = message.get("tool_calls") or []
        if not calls:
            answer = (message.get("content") or "").strip()
            return TurnOutcome(answer or "\n".join(notes) or HELP_TEXT, tickets)
        write_calls = [c for c in calls if c["function"]["name"] == tools.CREATE_JIRA_TICKET.name]
        read_calls = [c for c in calls if c not in write_calls]
        for call in write_calls:
            content = _ticket_call(conversation, reply, call, len(tickets), tickets, notes)
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": content})
        messages += await run_read_tools(caller, read_calls, READ_TOOL_NAMES, cache, conversation.incident_id)
    return TurnOutcome("\n".join(notes) or "I could not finish that; try `help`.", tickets)


def _ticket_call(
    conversation: Conversation,
    reply: HumanReplied,
    call: dict[str, Any],
    index: int,
    tickets: list[TicketRequested],
    notes: list[str],
) -> str:
    try:
        args = CreateJiraTicketArgs.model_validate_json(call["function"]["arguments"] or "{}")
    except ValidationError as exc:
        return json.dumps({"error": f"invalid arguments: {exc.errors()[0]['msg']}"})
    if tickets:  # one ticket per human message, however often the model asks
        return json.dumps({"ok": True, "note": "already requested"})
    tickets.append(ticket_request(conversation, reply, args, index))
    notes.append(ticket_answer(args))
    return json.dumps({"ok": True, "note": "ticket requested; the ticketing service confirms to the human"})
