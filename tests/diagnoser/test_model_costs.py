"""What the model costs an incident, the cost limit that forces its conclusion, and loops of its
tool calls (a note, then the conclusion forced): on a real NATS with the scripted fake model,
whose answers report usage as a server's do; seen as `oncall inspect` and the metrics show them."""

import asyncio
import json
from typing import Any

from diagnoser_harness import Harness, alert_group
from fakes import FakeOpenAI, tool_call
from support.processes import run_oncall
from test_investigation import conclude, standard_tools

from services.contracts import streams
from services.contracts.models import Conversation, HumanReplied
from services.runtime.metrics import REGISTRY
from services.runtime.operate import describe

PRICES: dict[str, Any] = {
    "ONCALL_MODEL_PRICE_INPUT_PER_1K_USD": 2.5,
    "ONCALL_MODEL_PRICE_OUTPUT_PER_1K_USD": 10.0,
}


async def stored(harness: Harness, incident_id: str) -> Conversation:
    conversation, _ = await harness.bus.kv_get(streams.CONVERSATIONS, incident_id, Conversation)
    assert conversation is not None
    return conversation


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def prompt_tokens(requests: list[dict[str, Any]]) -> int:
    """What the fake server counted in: 4 characters of the request's messages a token."""
    return sum(len(json.dumps(r["messages"])) // 4 for r in requests)


def call(name: str, **args: Any) -> dict[str, Any]:
    return {"tool_calls": [tool_call(name, args)]}


async def test_the_cost_limit_forces_the_conclusion_and_inspect_shows_tokens_and_cost(
    harness: Harness,
) -> None:
    standard_tools(harness)
    script = [call("compute_error_rate", service="checkout"), conclude()]
    forced_before = counted("oncall_model_forced_conclusions_total", reason="cost")
    # The first answer alone (a prompt of thousands of tokens at $2.50 per 1,000) is over $0.50.
    with FakeOpenAI(script) as model:
        limited = harness.diagnoser(model, ONCALL_COST_LIMIT_USD=0.5, **PRICES)
        await limited.on_alert_firing(alert_group(incident_id="cost01"))
        requests = model.chat_requests
    assert [r["tool_choice"] for r in requests] == ["auto", "required"]
    assert requests[1]["tools"] == requests[0]["tools"]  # asked with the tools kept, and it concluded
    assert counted("oncall_model_forced_conclusions_total", reason="cost") == forced_before + 1

    conversation = await stored(harness, "cost01")
    assert conversation.diagnosis is not None and conversation.diagnosis.method == "model"
    assert conversation.tokens_in == prompt_tokens(requests) and conversation.tokens_out > 0
    expected = conversation.tokens_in / 1000 * 2.5 + conversation.tokens_out / 1000 * 10.0
    assert conversation.cost_usd is not None and abs(conversation.cost_usd - expected) < 1e-9
    assert conversation.forced_conclusion == "cost"

    shown = await asyncio.to_thread(run_oncall, ["inspect", "cost01"], {"NATS_URL": harness.url})
    assert shown.returncode == 0, shown.stderr
    usage = f"model usage: {conversation.tokens_in} tokens in, {conversation.tokens_out} out"
    assert f"{usage}, cost ${expected:.2f}" in shown.stdout, shown.stdout
    assert "conclusion forced: the cost limit was reached (ONCALL_COST_LIMIT_USD)" in shown.stdout

    # The same investigation without a limit is not forced: the model concluded in its own time.
    with FakeOpenAI(script) as model:
        await harness.diagnoser(model, **PRICES).on_alert_firing(alert_group(incident_id="cost02"))
        assert [r["tool_choice"] for r in model.chat_requests] == ["auto", "auto"]
    assert (await stored(harness, "cost02")).forced_conclusion is None


async def test_without_prices_tokens_are_shown_and_no_cost(harness: Harness) -> None:
    standard_tools(harness)
    tokens_before = counted("oncall_model_tokens_total", direction="in")
    cost_before = counted("oncall_model_cost_usd_total")
    with FakeOpenAI([conclude()]) as model:
        # A limit without a price cannot apply: the cost is unknown, not 0.
        await harness.diagnoser(model, ONCALL_COST_LIMIT_USD=0.01).on_alert_firing(
            alert_group(incident_id="free01")
        )
        requests = model.chat_requests
    conversation = await stored(harness, "free01")
    assert conversation.cost_usd is None and conversation.forced_conclusion is None
    shown = describe(conversation)
    assert f"model usage: {prompt_tokens(requests)} tokens in, {conversation.tokens_out} out" in shown
    assert ", cost" not in shown and "$" not in shown
    assert counted("oncall_model_tokens_total", direction="in") == tokens_before + prompt_tokens(requests)
    assert counted("oncall_model_cost_usd_total") == cost_before


async def test_calls_with_only_the_window_changed_get_a_note_then_the_conclusion_is_forced(
    harness: Harness,
) -> None:
    standard_tools(harness)
    loops_before = counted("oncall_model_loops_total", kind="window")
    script = [
        call("fetch_logs", service="checkout", seconds=300),
        call("fetch_logs", service="checkout", seconds=900),  # a loop: answered with a note
        call("fetch_logs", service="checkout", seconds=3600, limit=5000),  # again: forced
        conclude(),
    ]
    with FakeOpenAI(script) as model:
        await harness.diagnoser(model).on_alert_firing(alert_group(incident_id="loop01"))
        requests = model.chat_requests
    assert [r["tool_choice"] for r in requests] == ["auto", "auto", "auto", "required"]
    note = requests[2]["messages"][-1]
    assert note["role"] == "user"
    assert "fetch_logs called again with only the window or limit changed" in note["content"]
    assert "the next repeat ends the investigation" in note["content"]
    assert "Conclude now" in requests[3]["messages"][-1]["content"]
    # Each call was answered (a changed window is a different question to the tools).
    assert harness.tools.names().count("fetch_logs") == 4  # the evidence's and the model's three
    assert counted("oncall_model_loops_total", kind="window") == loops_before + 2

    conversation = await stored(harness, "loop01")
    assert conversation.diagnosis is not None and conversation.diagnosis.method == "model"
    assert conversation.forced_conclusion == "loop"
    shown = describe(conversation)
    assert shown.count("model loop: fetch_logs called again with only the window or limit changed") == 2
    assert "conclusion forced: the model repeated its tool calls after a note" in shown


async def test_two_calls_alternating_are_a_loop(harness: Harness) -> None:
    standard_tools(harness)
    rate, commits = call("compute_error_rate", service="checkout"), call("recent_commits", limit=5)
    with FakeOpenAI([rate, commits, rate, commits, conclude()]) as model:
        await harness.diagnoser(model).on_alert_firing(alert_group(incident_id="loop02"))
        requests = model.chat_requests
    assert [r["tool_choice"] for r in requests] == ["auto"] * 4 + ["required"]
    note, final = requests[3]["messages"][-1]["content"], requests[4]["messages"][-2]["content"]
    assert "send_diagnosis" in requests[4]["messages"][-1]["content"]  # then asked to conclude
    assert "compute_error_rate called again, alternating with recent_commits" in note
    assert "recent_commits called again, alternating with compute_error_rate" in final
    conversation = await stored(harness, "loop02")
    assert conversation.forced_conclusion == "loop"
    assert [loop.split(",")[0] for loop in conversation.model_loops] == [
        "compute_error_rate called again",
        "recent_commits called again",
    ]


async def test_different_calls_are_no_loop(harness: Harness) -> None:
    standard_tools(harness)
    script = [
        call("fetch_logs", service="checkout", level="ERROR"),
        call("fetch_logs", service="payments"),  # another service: another question
        call("fetch_code_from_github", file_path="checkout/payments.py", line=31),
        conclude(),
    ]
    with FakeOpenAI(script) as model:
        await harness.diagnoser(model).on_alert_firing(alert_group(incident_id="loop03"))
        requests = model.chat_requests
    assert [r["tool_choice"] for r in requests] == ["auto"] * 4
    told = [m["content"] for m in requests[-1]["messages"] if m["role"] == "user"]
    assert not any("Note from the agent" in said for said in told)
    conversation = await stored(harness, "loop03")
    assert conversation.model_loops == [] and conversation.forced_conclusion is None


async def test_a_human_turn_answered_by_the_model_adds_to_the_incidents_usage(harness: Harness) -> None:
    standard_tools(harness)
    with FakeOpenAI([conclude()]) as model:
        await harness.diagnoser(model, **PRICES).on_alert_firing(alert_group(incident_id="turn01"))
    diagnosed = await stored(harness, "turn01")
    assert diagnosed.cost_usd is not None
    answer = {"content": "The error rate is 25%."}
    with FakeOpenAI([answer]) as model:
        said = HumanReplied(message_sid="SMcost1", sender="+15551230001", body="how bad is it?")
        await harness.diagnoser(model, **PRICES).on_human_reply(said)
        turn_in = prompt_tokens(model.chat_requests)
    after = await stored(harness, "turn01")
    assert after.tokens_in == diagnosed.tokens_in + turn_in
    assert after.tokens_out > diagnosed.tokens_out
    assert after.cost_usd is not None and after.cost_usd > diagnosed.cost_usd


def test_a_conversation_stored_before_costs_were_recorded_still_reads() -> None:
    old = {"incident_id": "old001", "group_key": "{}:{}", "title": "t", "tokens_used": 1200}
    conversation = Conversation.model_validate_json(json.dumps(old))
    assert (conversation.tokens_in, conversation.tokens_out, conversation.cost_usd) == (0, 0, None)
    assert "model usage" not in describe(conversation) and "conclusion forced" not in describe(conversation)
