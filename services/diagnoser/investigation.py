"""The model loop: evidence first, then the model with tools, until send_diagnosis."""

import asyncio
import json
import logging
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from services.contracts import tools
from services.contracts.models import AlertGroup, Diagnosis, SendDiagnosisArgs
from services.diagnoser.evidence import Evidence, result_for_model
from services.diagnoser.model import ModelClient, ModelError
from services.diagnoser.prompts import DIAGNOSIS_SYSTEM_PROMPT, alert_message
from services.diagnoser.toolcalls import ToolCaller, call_key

log = logging.getLogger("oncall.diagnoser.model")

FORCE_DIAGNOSIS = {"type": "function", "function": {"name": tools.SEND_DIAGNOSIS.name}}
READ_TOOL_NAMES = frozenset(spec.name for spec in tools.READ_TOOLS)


def evidence_messages(evidence: Evidence) -> list[dict[str, Any]]:
    """The gathered evidence as if the model had called the tools itself: it reads them as tool
    results (data), not as instructions from the user."""
    calls = [
        {
            "id": f"evidence_{index}",
            "type": "function",
            "function": {"name": item.tool, "arguments": json.dumps(item.args)},
        }
        for index, item in enumerate(evidence.items)
    ]
    messages: list[dict[str, Any]] = [{"role": "assistant", "content": None, "tool_calls": calls}]
    for call, item in zip(calls, evidence.items, strict=True):
        spec = tools.TOOLS_BY_NAME[item.tool]
        messages.append(
            {
                "role": "tool",
                "tool_call_id": call["id"],
                "content": result_for_model(item.result, spec.max_output_chars),
            }
        )
    if evidence.memory:  # the agent's own records, not a tool: given as the alert is, in a user turn
        messages.append({"role": "user", "content": f"Incident memory:\n{evidence.memory}"})
    return messages


async def run_read_tools(
    caller: ToolCaller,
    calls: list[dict[str, Any]],
    allowed: Collection[str],
    cache: dict[str, str],
    incident_id: str,
) -> list[dict[str, Any]]:
    """Execute the model's tool calls concurrently (each is a NATS request, all in flight at once);
    answer unknown tools and bad arguments with an error the model can read."""

    async def one(call: dict[str, Any]) -> dict[str, Any]:
        name = call["function"]["name"]
        content: str
        if name not in allowed:
            content = json.dumps({"error": f"unknown or unavailable tool {name!r}"})
        else:
            try:
                args = json.loads(call["function"]["arguments"] or "{}")
                if not isinstance(args, dict):
                    raise ValueError("arguments must be a JSON object")
                spec = tools.TOOLS_BY_NAME[name]
                args = spec.args_model.model_validate(args).model_dump(exclude_none=True)
            except (ValueError, ValidationError) as exc:
                content = json.dumps({"error": f"invalid arguments: {exc}"})
            else:
                key = call_key(name, args)
                if key not in cache:
                    result = await caller.call(name, args, incident_id)
                    cache[key] = result_for_model(result, spec.max_output_chars)
                content = cache[key]
        return {"role": "tool", "tool_call_id": call["id"], "content": content}

    return list(await asyncio.gather(*(one(call) for call in calls)))


class ModelDidNotConclude(Exception):
    """The model kept investigating without sending a diagnosis; the message says how long."""


@dataclass
class Investigation:
    diagnosis: Diagnosis
    messages: list[dict[str, Any]]
    model_calls: int
    tokens: int


async def diagnose_with_model(
    model: ModelClient,
    caller: ToolCaller,
    group: AlertGroup,
    incident_id: str,
    evidence: Evidence,
    max_rounds: int,
    token_budget: int,
) -> Investigation:
    """Raises ModelError or ModelDidNotConclude: the caller then falls back to the rules.

    The model is forced to conclude (tool_choice on send_diagnosis) in the last round, or as soon
    as the incident's token budget is spent."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": DIAGNOSIS_SYSTEM_PROMPT},
        {"role": "user", "content": alert_message(group, incident_id)},
        *evidence_messages(evidence),
    ]
    cache: dict[str, str] = {}
    offered = tools.diagnosis_tools()
    tokens = 0
    for round_number in range(1, max_rounds + 1):
        forced = round_number == max_rounds or tokens >= token_budget
        reply = await model.complete(messages, offered, FORCE_DIAGNOSIS if forced else "auto")
        tokens += reply.tokens
        messages.append(reply.message)
        calls = reply.message.get("tool_calls") or []
        final = next((c for c in calls if c["function"]["name"] == tools.SEND_DIAGNOSIS.name), None)
        if final is not None:
            diagnosis = parse_diagnosis(final["function"]["arguments"])
            return Investigation(diagnosis, messages, round_number, tokens)
        if forced:
            break
        if not calls:
            # Text instead of a tool call: ask once more for the structured answer.
            messages.append({"role": "user", "content": "Conclude now by calling send_diagnosis."})
            continue
        messages += await run_read_tools(caller, calls, READ_TOOL_NAMES, cache, incident_id)
    raise ModelDidNotConclude(f"no diagnosis after {round_number} rounds and {tokens} tokens")


def compact(messages: list[dict[str, Any]], keep_last: int = 6, max_chars: int = 600) -> list[dict[str, Any]]:
    """Bounds what is kept in KV: tool outputs older than the last few are cut to a summary."""
    cut_before = len(messages) - keep_last
    compacted = []
    for index, message in enumerate(messages):
        content = message.get("content")
        old = index < cut_before and message.get("role") == "tool"
        if old and isinstance(content, str) and len(content) > max_chars:
            cut = f" …[{len(content) - max_chars} chars cut]"
            message = {**message, "content": content[:max_chars] + cut}
        compacted.append(message)
    return compacted


def parse_diagnosis(arguments: str) -> Diagnosis:
    try:
        args = SendDiagnosisArgs.model_validate_json(arguments or "{}")
    except ValidationError as exc:
        problem = exc.errors()[0]["msg"]
        reason = f"invalid diagnosis: {problem}"
        raise ModelError(f"invalid send_diagnosis arguments: {problem}", reason) from exc
    return Diagnosis(**args.model_dump(), method="model")
