"""The model loop: evidence first, then the model with tools, until send_diagnosis."""

import asyncio
import json
import logging
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from pydantic import ValidationError

from services.contracts import tools
from services.contracts.models import AlertGroup, Diagnosis, SendDiagnosisArgs
from services.contracts.tool_results import StackFrame
from services.diagnoser import metrics
from services.diagnoser.costs import Prices, Spend, over_limit
from services.diagnoser.evidence import Evidence, result_for_model
from services.diagnoser.loops import LoopWatch, loop_note
from services.diagnoser.model import ASK_TO_CONCLUDE, ModelClient, ModelError, diagnosis_call
from services.diagnoser.prompts import DIAGNOSIS_SYSTEM_PROMPT, alert_message
from services.diagnoser.toolcalls import ToolCaller, call_key

log = logging.getLogger("oncall.diagnoser.model")

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
        checked = validated_call(call, allowed)
        content: str
        if isinstance(checked, str):
            content = checked
        else:
            name, args = checked
            key = call_key(name, args)
            if key not in cache:
                result = await caller.call(name, args, incident_id)
                cache[key] = result_for_model(result, tools.TOOLS_BY_NAME[name].max_output_chars)
            content = cache[key]
        return {"role": "tool", "tool_call_id": call["id"], "content": content}

    return list(await asyncio.gather(*(one(call) for call in calls)))


def validated_call(call: dict[str, Any], allowed: Collection[str]) -> tuple[str, dict[str, Any]] | str:
    """The call's tool and arguments as its args model reads them (defaults filled in, so that
    equal calls compare equal), or the error the model is answered with."""
    name = call["function"]["name"]
    if name not in allowed:
        return json.dumps({"error": f"unknown or unavailable tool {name!r}"})
    try:
        args = json.loads(call["function"]["arguments"] or "{}")
        if not isinstance(args, dict):
            raise ValueError("arguments must be a JSON object")
        args = tools.TOOLS_BY_NAME[name].args_model.model_validate(args).model_dump(exclude_none=True)
    except (ValueError, ValidationError) as exc:
        return json.dumps({"error": f"invalid arguments: {exc}"})
    return name, args


class ModelDidNotConclude(Exception):
    """The model kept investigating without sending a diagnosis; the message says how long."""


@dataclass
class Accounting:
    """What an investigation spent, the loops it made and why its conclusion was forced: kept by
    the caller whether or not the model concluded (a failed investigation was paid for too)."""

    spend: Spend = field(default_factory=lambda: Spend(Prices()))
    loops: LoopWatch = field(default_factory=LoopWatch)
    forced_by: str | None = None

    def force(self, reason: str) -> None:
        if self.forced_by is None:  # the first reason is the one that forced it
            self.forced_by = reason
            metrics.forced_conclusions.labels(reason=reason).inc()


def force_reason(
    calls_made: int,
    max_rounds: int,
    tokens: int,
    token_budget: int,
    cost_usd: float | None,
    cost_limit_usd: float,
) -> str | None:
    """Why the next model call must be the conclusion, if it must."""
    if calls_made + 1 >= max_rounds:
        return "rounds"
    if tokens >= token_budget:
        return "tokens"
    if over_limit(cost_usd, cost_limit_usd):
        return "cost"
    return None


@dataclass
class Investigation:
    diagnosis: Diagnosis
    messages: list[dict[str, Any]]
    model_calls: int
    tokens: int


REPAIR_ROUNDS = 1


async def diagnose_with_model(
    model: ModelClient,
    caller: ToolCaller,
    group: AlertGroup,
    incident_id: str,
    evidence: Evidence,
    max_rounds: int,
    token_budget: int,
    deadline: float | None = None,
    account: Accounting | None = None,
    cost_limit_usd: float = 0.0,
    earlier_cost_usd: float = 0.0,
) -> Investigation:
    """Raises ModelError or ModelDidNotConclude: the caller then falls back to the rules.

    The model is forced to conclude (ModelClient.conclude) in the last round, or as soon as the
    investigation's token budget or the incident's cost limit (`earlier_cost_usd` is what its
    earlier investigations cost) is spent, or at its second loop of tool calls (the first is
    answered with a note, loops.py). A send_diagnosis with invalid or truncated arguments is sent
    back once with the problem (a repair round); a second invalid one ends it. What it spent is
    added to `account` as it goes."""
    account = account if account is not None else Accounting(Spend(model.prices))
    deadline = deadline if deadline is not None else model.deadline()
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": DIAGNOSIS_SYSTEM_PROMPT},
        {"role": "user", "content": alert_message(group, incident_id)},
        *evidence_messages(evidence),
    ]
    cache: dict[str, str] = {}
    offered = tools.diagnosis_tools()
    tokens = 0
    calls_made = 0
    repairs_left = REPAIR_ROUNDS
    forced = False
    offered_last = False  # whether the previous request offered `offered` (its prompt is cached)
    while calls_made < max_rounds + REPAIR_ROUNDS:
        spent_usd = account.spend.cost_usd
        incident_usd = None if spent_usd is None else spent_usd + earlier_cost_usd
        reason = force_reason(calls_made, max_rounds, tokens, token_budget, incident_usd, cost_limit_usd)
        if not forced and reason is not None:
            forced = True
            account.force(reason)
        if forced:
            reply = await model.conclude(messages, offered, deadline, keep_tools=offered_last)
        else:
            reply = await model.complete(messages, offered, "auto", deadline)
        offered_last = not forced or model.asked_concludes is True
        calls_made += 1
        tokens += reply.tokens
        account.spend.add(reply.prompt_tokens, reply.completion_tokens)
        messages.append(reply.message)
        final = diagnosis_call(reply.message)
        if final is not None:
            try:
                diagnosis = parse_diagnosis(final["function"]["arguments"])
            except ModelError as exc:
                if repairs_left <= 0:
                    raise
                repairs_left -= 1
                forced = True
                account.force("repair")
                messages += answer_all(reply.message, {final["id"]: repair_request(exc.reason)})
                continue
            if missing_location(diagnosis, evidence):
                diagnosis = located_from_evidence(diagnosis, evidence) or diagnosis
            if missing_location(diagnosis, evidence) and repairs_left > 0:
                # A small model often leaves the file out although a stack trace names it: asked
                # once (the prompt's prefix is reused, so this costs only the answer); kept if not.
                repairs_left -= 1
                forced = True
                messages += answer_all(reply.message, {final["id"]: repair_request(LOCATION_MISSING)})
                continue
            return Investigation(diagnosis, messages, calls_made, tokens)
        if forced:
            break
        calls = reply.message.get("tool_calls") or []
        if not calls:
            # Text instead of a tool call: ask once more for the structured answer.
            messages.append({"role": "user", "content": ASK_TO_CONCLUDE})
            continue
        messages += await run_read_tools(caller, calls, READ_TOOL_NAMES, cache, incident_id)
        valid = (validated_call(call, READ_TOOL_NAMES) for call in calls)
        made = [c for c in valid if not isinstance(c, str)]
        if loops := account.loops.observe(made):
            for loop in loops:
                metrics.model_loops.labels(kind=loop.kind).inc()
            again = len(account.loops.found) > len(loops)  # noted before: this one ends it
            messages.append({"role": "user", "content": loop_note(loops, final=again)})
            if again:
                forced = True
                account.force("loop")
    raise ModelDidNotConclude(f"no diagnosis after {calls_made} model calls and {tokens} tokens")


LOCATION_MISSING = (
    "affected_file and line are missing although the evidence has a stack trace: "
    "give the repository path and line number of the faulty statement"
)


def missing_location(diagnosis: Diagnosis, evidence: Evidence) -> bool:
    return not diagnosis.affected_file and evidence.failing_frame is not None


def located_from_evidence(diagnosis: Diagnosis, evidence: Evidence) -> Diagnosis | None:
    """The diagnosis with the failing frame's file and line when the model's own words name that
    frame (its file name, or "line N") but its file field is empty, as a small model often leaves
    it: no repair round (on a CPU model, minutes) for what it already said. The path is where the
    code was found in the repository when it was fetched, else the frame's. None otherwise: a
    location the model did not speak of is never put in its mouth."""
    frame = evidence.failing_frame
    if diagnosis.affected_file or frame is None:
        return None
    said = " ".join([diagnosis.root_cause, diagnosis.suggested_fix, *diagnosis.evidence]).lower()
    name = PurePosixPath(frame.lookup_path.replace("\\", "/")).name.lower()
    names_file = bool(name) and name in said
    names_line = frame.line is not None and re.search(rf"\bline {frame.line}\b", said) is not None
    if not (names_file or names_line or names_function(frame, name, said)):
        return None
    window = evidence.code_window
    fetched = window is not None and frame == evidence.frame
    path = window.path if window is not None and fetched else frame.lookup_path
    return diagnosis.model_copy(update={"affected_file": path, "line": frame.line})


def names_function(frame: StackFrame, file_name: str, said: str) -> bool:
    """Whether `said` names the frame's function together with its file's stem ("the `total`
    method in the `Cart` class" for Cart.total in Cart.java): a function name alone may be a
    common word."""
    function = re.split(r"[.:/\\#]", frame.function)[-1].lower()
    stem = PurePosixPath(file_name).stem
    if len(function) < 3 or not function.isidentifier() or not stem:
        return False
    return all(re.search(rf"\b{re.escape(word)}\b", said) for word in (function, stem))


def repair_request(problem: str) -> str:
    return json.dumps(
        {"error": f"{problem}. Call send_diagnosis again with complete, valid JSON arguments; keep it short."}
    )


def answer_all(message: dict[str, Any], answers: dict[str, str]) -> list[dict[str, Any]]:
    """A tool message for every call of `message` (the API wants each answered), in order."""
    return [
        {
            "role": "tool",
            "tool_call_id": c["id"],
            "content": answers.get(c["id"], json.dumps({"skipped": True})),
        }
        for c in message.get("tool_calls") or []
    ]


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
        args = SendDiagnosisArgs.model_validate_json(unfenced(arguments) or "{}")
    except ValidationError as exc:
        problem = exc.errors()[0]["msg"]
        reason = f"invalid diagnosis: {problem}"
        raise ModelError(f"invalid send_diagnosis arguments: {problem}", reason) from exc
    return Diagnosis(**args.model_dump(), method="model")


def unfenced(text: str | None) -> str:
    """JSON a model wrapped in a Markdown fence (```json ... ```), without the fence."""
    stripped = (text or "").strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        stripped = stripped.rsplit("```", 1)[0]
    return stripped.strip()
