"""The model loop against the servers people run (llama.cpp, Ollama, vLLM), not only OpenAI: each
server's habit played by the fake model, the diagnoser on a real NATS."""

import json
import time
from typing import Any

from diagnoser_harness import Harness, alert_group
from fakes import FakeOpenAI, tool_call
from test_investigation import conclude, diagnosed, standard_tools

from services.contracts import subjects
from services.contracts.models import IncidentDiagnosed
from services.contracts.tool_results import StackFrame
from services.diagnoser.context import estimate_tokens
from services.diagnoser.investigation import names_function
from services.diagnoser.toolcalls import ToolCaller
from services.notifier.messages import format_diagnosis

SEND_DIAGNOSIS_ONLY = ["send_diagnosis"]


def offered(request: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in request.get("tools") or []]


def diagnosis_args(**overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = conclude(**overrides)["tool_calls"][0]["arguments"]
    return arguments


def llama_cpp(request: dict[str, Any]) -> dict[str, Any]:
    """llama.cpp: a tool_choice naming a function is taken as "auto"; "required" is honoured."""
    if request.get("tool_choice") == "required" and offered(request) == SEND_DIAGNOSIS_ONLY:
        return conclude()
    return {"tool_calls": [tool_call("fetch_logs", {"service": "checkout"})]}


async def test_a_server_ignoring_a_named_tool_choice_concludes_with_only_send_diagnosis_offered(
    harness: Harness,
) -> None:
    standard_tools(harness)
    with FakeOpenAI([llama_cpp]) as model:
        diagnoser = harness.diagnoser(model, max_rounds=2)
        await diagnoser.on_alert_firing(alert_group(incident_id="srv001"))
        await diagnoser.on_alert_firing(alert_group("alertmanager_webhook_real.json", "srv002"))
        requests = model.chat_requests
    events = await diagnosed(harness)
    assert [e["diagnosis"]["method"] for e in events] == ["model", "model"]
    forced = [r for r in requests if r["tool_choice"] != "auto"]
    assert [r["tool_choice"] for r in forced] == ["required", "required", "required"]
    # First asked with the tools kept (the cached prompt); it called fetch_logs, so that is not
    # tried again: from then on only send_diagnosis is offered.
    assert offered(forced[0]) != SEND_DIAGNOSIS_ONLY and forced[0]["messages"][-1]["role"] == "user"
    assert all(offered(r) == SEND_DIAGNOSIS_ONLY for r in forced[1:])
    assert all("response_format" not in r for r in requests)


async def test_a_model_asked_to_conclude_with_the_tools_kept_reads_only_the_question(
    harness: Harness,
) -> None:
    """The forced round keeps the earlier round's tools when the model complies: the server's
    cached prompt is then the new one's prefix (llama.cpp: seconds instead of minutes on a CPU)."""
    standard_tools(harness)

    def server(request: dict[str, Any]) -> dict[str, Any]:
        if request["messages"][-1]["role"] == "user" and request.get("tool_choice") == "required":
            return conclude()
        return {"tool_calls": [tool_call("fetch_logs", {"service": "checkout"})]}

    with FakeOpenAI([server]) as model:
        diagnoser = harness.diagnoser(model, max_rounds=2)
        await diagnoser.on_alert_firing(alert_group(incident_id="srv010"))
        free, forced = model.chat_requests
    (event,) = await diagnosed(harness)
    assert event["diagnosis"]["method"] == "model" and event["diagnosis"]["line"] == 31
    assert offered(forced) == offered(free) and forced["tool_choice"] == "required"
    assert forced["messages"][: len(free["messages"])] == free["messages"]  # the cached prefix
    assert diagnoser.model is not None and diagnoser.model.asked_concludes is True


async def test_a_server_refusing_required_is_forced_by_json_schema_and_that_is_remembered(
    harness: Harness,
) -> None:
    standard_tools(harness)

    def server(request: dict[str, Any]) -> Any:
        if request.get("tool_choice") == "required":
            return FakeOpenAI.error(400, "tool_choice 'required' is not supported")
        if request.get("response_format", {}).get("type") == "json_schema":
            return {"content": diagnosis_args()}
        return {"tool_calls": [tool_call("fetch_logs", {"service": "checkout"})]}

    with FakeOpenAI([server]) as model:
        diagnoser = harness.diagnoser(model, max_rounds=1)
        await diagnoser.on_alert_firing(alert_group(incident_id="srv003"))
        first = len(model.chat_requests)
        await diagnoser.on_alert_firing(alert_group(incident_id="srv004"))
        second = model.chat_requests[first:]
    events = await diagnosed(harness)
    assert [e["diagnosis"]["method"] for e in events] == ["model", "model"]
    assert events[0]["diagnosis"]["line"] == 31
    assert first == 2  # "required" refused, then the schema
    (only,) = second  # remembered: straight to the schema
    assert only["response_format"]["json_schema"]["name"] == "send_diagnosis" and "tools" not in only


async def test_tool_calls_written_as_json_text_are_carried_out(harness: Harness) -> None:
    standard_tools(harness)
    fenced = '```json\n{"name": "compute_error_rate", "arguments": {"service": "checkout"}}\n```'
    bare = "Here is my answer: " + json.dumps({"name": "send_diagnosis", "arguments": diagnosis_args()})
    with FakeOpenAI([{"content": fenced}, {"content": bare}]) as model:
        await harness.diagnoser(model).on_alert_firing(alert_group(incident_id="srv005"))
        second = model.chat_requests[1]["messages"]
    assert harness.tools.names().count("compute_error_rate") == 2  # the evidence's, then the model's
    assert second[-2]["tool_calls"][0]["function"]["name"] == "compute_error_rate"
    assert second[-1]["role"] == "tool" and "error_rate" in second[-1]["content"]
    (event,) = await diagnosed(harness)
    assert event["diagnosis"]["method"] == "model" and event["diagnosis"]["affected_file"]


async def test_truncated_diagnosis_arguments_get_one_repair_round_then_the_rules(harness: Harness) -> None:
    standard_tools(harness)
    cut = json.dumps(diagnosis_args())[:60]  # the answer ran out of tokens mid-JSON
    truncated = {"tool_calls": [tool_call("send_diagnosis", cut)], "finish_reason": "length"}
    with FakeOpenAI([truncated, conclude()]) as model:
        await harness.diagnoser(model).on_alert_firing(alert_group(incident_id="srv006"))
        repair = model.chat_requests[1]["messages"][-1]
    assert repair["role"] == "tool" and "invalid diagnosis" in repair["content"]
    with FakeOpenAI([truncated]) as model:
        await harness.diagnoser(model).on_alert_firing(alert_group(incident_id="srv007"))
        assert len(model.chat_requests) == 2  # the answer and one repair, no more
    methods = {e["incident_id"]: e["diagnosis"]["method"] for e in await diagnosed(harness)}
    assert methods == {"srv006": "model", "srv007": "rules"}


async def test_every_request_fits_the_context_and_the_evidence_cut_says_so(harness: Harness) -> None:
    noisy = [f"upstream {chr(65 + n % 26)}{n} answered slowly: " + "payload " * 40 for n in range(60)]
    standard_tools(harness, *noisy)
    script = [{"tool_calls": [tool_call("fetch_logs", {"service": "checkout", "seconds": 900})]}, conclude()]
    with FakeOpenAI(script) as model:
        diagnoser = harness.diagnoser(model, ONCALL_MODEL_CONTEXT_TOKENS=6000)
        await diagnoser.on_alert_firing(alert_group(incident_id="srv008"))
        requests = model.chat_requests
    for request in requests:
        assert estimate_tokens(request["messages"], request.get("tools")) + request["max_tokens"] <= 6000
    prompt = json.dumps(requests[-1]["messages"])
    assert "cut to fit the model's context of 6000 tokens" in prompt
    (event,) = await diagnosed(harness)
    assert event["diagnosis"]["method"] == "model"


async def test_a_hanging_model_delays_the_page_by_the_incidents_budget_at_most(harness: Harness) -> None:
    standard_tools(harness)
    with FakeOpenAI([conclude()], delay_seconds=5.0) as model:
        diagnoser = harness.diagnoser(model, openai_timeout=1.0, ONCALL_MODEL_BUDGET_SECONDS=2.5)
        started = time.monotonic()
        await diagnoser.on_alert_firing(alert_group(incident_id="srv009"))
        took = time.monotonic() - started
    assert took < 3.5  # not 3 attempts x 1 s + backoff beyond the 2.5 s budget
    (event,) = await diagnosed(harness)
    assert event["diagnosis"]["method"] == "rules" and "timeout" in event["diagnosis"]["fallback_reason"]


async def test_a_slow_model_sends_the_rules_first_look_then_its_diagnosis(harness: Harness) -> None:
    standard_tools(harness)
    with FakeOpenAI([conclude()], delay_seconds=1.5) as model:
        slow = harness.diagnoser(model, ONCALL_SLOW_NOTICE_SECONDS=0.5)
        await slow.on_alert_firing(alert_group(incident_id="srv010"))
    (notice,) = await harness.published(subjects.NOTIFY_TEXT)
    assert notice["incident_id"] == "srv010" and notice["in_reply_to"] is None  # to every on-call number
    assert "Still investigating" in notice["text"] and "gpt-test" in notice["text"]
    assert "checkout/payments.py:31" in notice["text"]  # the rules' first look
    (event,) = await diagnosed(harness)
    assert event["diagnosis"]["method"] == "model"
    with FakeOpenAI([conclude()]) as fast:
        await harness.diagnoser(fast, ONCALL_SLOW_NOTICE_SECONDS=5).on_alert_firing(
            alert_group(incident_id="srv011")
        )
    assert len(await harness.published(subjects.NOTIFY_TEXT)) == 1  # none for a quick model


async def test_an_evidence_call_that_timed_out_is_asked_once_more(harness: Harness) -> None:
    standard_tools(harness)
    harness.tools.delays = {"fetch_logs": [1.5]}  # the replica that took it hangs
    diagnoser = harness.diagnoser()
    diagnoser.caller = ToolCaller(harness.bus.broker, 0.5)
    await diagnoser.on_alert_firing(alert_group(incident_id="srv012"))
    assert harness.tools.names().count("fetch_logs") == 2
    (event,) = await diagnosed(harness)
    assert event["diagnosis"]["affected_file"] == "checkout/payments.py" and event["diagnosis"]["line"] == 31


async def test_claims_the_evidence_does_not_show_are_marked_and_the_rules_said_beside(
    harness: Harness,
) -> None:
    standard_tools(harness)
    invented = conclude(
        affected_file="checkout/refunds.py",
        line=88,
        evidence=["KeyError: 'currency'", "ERROR NullPointerException in RefundService"],
        confidence=0.9,
    )
    with FakeOpenAI([invented]) as model:
        await harness.diagnoser(model).on_alert_firing(alert_group(incident_id="srv013"))
    with FakeOpenAI([conclude(confidence=0.9)]) as model:
        await harness.diagnoser(model).on_alert_firing(alert_group(incident_id="srv014"))
    wrong, right = (IncidentDiagnosed.model_validate(e) for e in await diagnosed(harness))
    assert wrong.diagnosis.unverified == [
        "checkout/refunds.py:88",
        '"ERROR NullPointerException in RefundService"',
    ]
    assert wrong.diagnosis.confidence <= 0.4
    assert wrong.diagnosis.rules_view is not None and "checkout/payments.py:31" in wrong.diagnosis.rules_view
    text = format_diagnosis(wrong)
    assert "unverified" in text and "checkout/refunds.py:88" in text and "checkout/payments.py:31" in text
    assert right.diagnosis.unverified == [] and right.diagnosis.confidence == 0.9
    assert right.diagnosis.rules_view is None
    assert "Diagnosis by the model gpt-test" in format_diagnosis(right)


async def test_a_diagnosis_without_the_file_a_stack_trace_names_is_asked_for_it_once(
    harness: Harness,
) -> None:
    standard_tools(harness)
    with FakeOpenAI([conclude(affected_file=None, line=None), conclude()]) as model:
        await harness.diagnoser(model).on_alert_firing(alert_group(incident_id="srv015"))
        repair = model.chat_requests[1]["messages"][-1]
    assert repair["role"] == "tool" and "affected_file and line are missing" in repair["content"]
    with FakeOpenAI([conclude(affected_file=None, line=None)]) as model:
        await harness.diagnoser(model).on_alert_firing(alert_group(incident_id="srv016"))
        assert len(model.chat_requests) == 2  # asked once; the answer without a file is kept
    first, second = (e["diagnosis"] for e in await diagnosed(harness))
    assert (first["method"], first["affected_file"], first["line"]) == ("model", "checkout/payments.py", 31)
    assert second["method"] == "model" and second["affected_file"] is None


async def test_a_diagnosis_that_names_the_frame_only_in_words_gets_its_location_without_a_repair(
    harness: Harness,
) -> None:
    # The 1.5B local model wrote "line 31 in payments.py" in its root cause and left the file
    # field empty: the stack frame it spoke of fills the field, with no second (slow) round.
    standard_tools(harness)
    worded = conclude(affected_file=None, line=None, root_cause="KeyError at line 31 in payments.py")
    with FakeOpenAI([worded]) as model:
        await harness.diagnoser(model).on_alert_firing(alert_group(incident_id="srv017"))
        assert len(model.chat_requests) == 1
    # A root cause that speaks of no frame is not given one.
    silent = conclude(affected_file=None, line=None, root_cause="Orders arrive without a currency")
    with FakeOpenAI([silent, silent]) as model:
        await harness.diagnoser(model).on_alert_firing(alert_group(incident_id="srv018"))
    first, second = (e["diagnosis"] for e in await diagnosed(harness))
    assert (first["method"], first["affected_file"], first["line"]) == ("model", "checkout/payments.py", 31)
    assert first["unverified"] == []
    assert second["affected_file"] is None


def test_a_frame_named_by_its_function_and_file_stem_counts_as_named() -> None:
    # The 1.5B on java-npe-cart-total: "the `total` method in the `Cart` class", file field empty.
    frame = StackFrame(file="Cart.java", line=57, function="com.shop.Cart.total", language="java")
    said = "a nullpointerexception in the `total` method in the `cart` class"
    assert names_function(frame, "cart.java", said)
    assert not names_function(frame, "cart.java", "the total is wrong")  # the function alone: a word
    module = StackFrame(file="/app/x.py", line=3, function="<module>", language="python")
    assert not names_function(module, "x.py", "module x fails")


async def test_a_model_answer_resting_on_nothing_is_said_so_with_what_the_rules_checked(
    harness: Harness,
) -> None:
    # Modelled on the 1.5B on no-evidence-quiet-logs: the alert restated as its cause, "increase
    # the retries" as the fix, no file and nothing quoted, confidence 0.9.
    standard_tools(harness)
    restated = conclude(
        affected_file=None,
        line=None,
        root_cause="High error rate on checkout service",
        evidence=[],
        suggested_fix="Increase the number of retries for failed requests",
    )
    with FakeOpenAI([restated]) as model:
        await harness.diagnoser(model).on_alert_firing(alert_group(incident_id="srv019"))
    (event,) = await diagnosed(harness)
    diagnosis = event["diagnosis"]
    assert diagnosis["method"] == "model" and diagnosis["confidence"] <= 0.4
    assert diagnosis["unverified"] == ["the diagnosis cites no file and no line of the evidence"]
    assert diagnosis["rules_view"]  # what the rules read in the same evidence, beside it
    shown = format_diagnosis(IncidentDiagnosed.model_validate(event))
    assert "unverified" in shown and diagnosis["rules_view"][:40] in shown
