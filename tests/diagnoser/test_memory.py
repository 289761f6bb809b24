"""Incident memory, feedback and flapping (issue 16, items 1, 3 and 5), on a real NATS: the
diagnoser driven directly, the tools stubbed, the model faked."""

import asyncio
from typing import Any

from diagnoser_harness import Harness, alert_group
from fakes import FakeOpenAI, tool_call
from test_investigation import code_data, conclude, logs_data

from services.contracts import streams, subjects
from services.contracts.memory import FlapRecord, ProblemRecord
from services.contracts.models import AlertGroup, Conversation, HumanReplied
from services.contracts.tool_results import CommitsResult, CommitSummary, LogsResult
from services.diagnoser import flapping
from services.diagnoser.handlers import Diagnoser
from services.tools.log_compression import LogEntry, compress_logs

FIX = CommitSummary(
    sha="abc123def456", author="ravi", date="2026-11-25T10:00:00Z", title="Default the currency"
)


def dependency_logs() -> LogsResult:
    lines = [
        LogEntry(timestamp="2026-11-24T06:05:00Z", level="ERROR", service="checkout-1",
                 message="upstream payments-gateway.internal:443 timed out after 5000 ms")
    ] * 8  # fmt: skip
    return compress_logs(lines)


def tools_for(harness: Harness, logs: LogsResult) -> None:
    harness.tools.answers = {
        "fetch_logs": logs,
        "compute_error_rate": {"error_rate": 0.25, "errors_per_second": 2.5, "requests_per_second": 10.0},
        "fetch_code_from_github": code_data(),
        "recent_commits": CommitsResult(since="2026-11-20T00:00:00Z", source="stub", commits=[FIX]),
    }


def resolved(group: AlertGroup) -> AlertGroup:
    done = group.model_copy(deep=True)
    done.status = "resolved"
    for alert in done.alerts:
        alert.status = "resolved"
    return done


async def incident(
    diagnoser: Diagnoser, incident_id: str, resolve: bool = True, same_group: bool = False
) -> AlertGroup:
    """A new incident (its own Alertmanager group unless `same_group`), diagnosed, then resolved."""
    group = alert_group(incident_id=incident_id)
    if not same_group:
        group.group_key += f"/{incident_id}"
    await diagnoser.on_alert_firing(group)
    if resolve:
        await diagnoser.on_alert_resolved(resolved(group))
    return group


async def diagnosed(harness: Harness) -> dict[str, dict[str, Any]]:
    return {e["incident_id"]: e for e in await harness.published(subjects.INCIDENTS_DIAGNOSED)}


async def reply(diagnoser: Diagnoser, incident_id: str, text: str, sid: str) -> None:
    await diagnoser.on_human_reply(
        HumanReplied(
            message_sid=sid, sender="+15551230001", body=text, incident_id=incident_id, profile_name="Ana"
        )
    )


async def test_three_incidents_of_one_signature_and_one_of_another(harness: Harness) -> None:
    diagnoser = harness.diagnoser()
    tools_for(harness, logs_data())
    for incident_id in ("a00001", "a00002", "a00003"):
        await incident(diagnoser, incident_id)
    tools_for(harness, dependency_logs())
    await incident(diagnoser, "b00001")

    events = await diagnosed(harness)
    assert events["a00001"]["seen_before"] is None
    second, third = events["a00002"]["seen_before"], events["a00003"]["seen_before"]
    assert second.startswith("Seen once before; last on 2026-11-24 (#a00001), lasted ")
    assert third.startswith("Seen 2 times before; last on 2026-11-24 (#a00002), lasted ")
    assert "; fixed by commit abc123d (Default the currency)" in third
    assert events["b00001"]["seen_before"] is None  # another problem: the dependency's timeouts

    kv = await harness.bus.kv(streams.MEMORY)
    records = [
        await harness.bus.kv_get(streams.MEMORY, key, ProblemRecord)
        for key in await kv.keys()
        if key.startswith("sig-")
    ]
    by_signature = {r.signature: [p.incident_id for p in r.incidents] for r, _ in records if r}
    assert by_signature == {
        "checkout | KeyError at checkout/payments.py in charge": ["a00001", "a00002", "a00003"],
        "checkout | dependency payments-gateway.internal": ["b00001"],
    }


async def test_feedback_is_recorded_acknowledged_and_a_wrong_diagnosis_is_recalled_as_wrong(
    harness: Harness,
) -> None:
    diagnoser = harness.diagnoser()
    tools_for(harness, logs_data())
    await incident(diagnoser, "c00001")
    await reply(diagnoser, "c00001", "👍", "SM1")
    await incident(diagnoser, "c00002")
    await reply(diagnoser, "c00002", "wrong: the cause was a bad deploy of pricing", "SM2")
    await reply(diagnoser, "c00002", "wrong: the cause was a bad deploy of pricing", "SM2")  # redelivered
    await incident(diagnoser, "c00003")

    answers = [t["text"] for t in await harness.published(subjects.NOTIFY_TEXT)]
    assert answers == [
        "👍 Noted: the diagnosis of #c00001 was right. Thanks, Ana.",
        "📝 Noted: the diagnosis of #c00002 was wrong; the cause was a bad deploy of pricing. "
        "I will say so if it comes back.",
    ]
    stored, _ = await harness.bus.kv_get(streams.CONVERSATIONS, "c00002", Conversation)
    assert stored is not None and [(f.verdict, f.correction) for f in stored.feedback] == [
        ("wrong", "a bad deploy of pricing")
    ]
    assert stored.signature is not None
    record, _ = await harness.bus.kv_get(streams.MEMORY, stored.signature, ProblemRecord)
    assert record is not None and (record.right, record.wrong) == (1, 1)
    seen = (await diagnosed(harness))["c00003"]["seen_before"]
    assert seen.startswith("Seen 2 times before; last on 2026-11-24 (#c00002)")
    assert seen.endswith("⚠️ That diagnosis was marked wrong: the cause was a bad deploy of pricing")


def memory_aware_model(request: dict[str, Any]) -> dict[str, Any]:
    """A model that trusts a confirmed earlier diagnosis enough to check only the code, and
    otherwise looks again at the error rate and the caller first."""
    messages = request["messages"]
    remembers = any(m["role"] == "user" and "Incident memory" in (m["content"] or "") for m in messages)
    if (
        messages[-1]["role"] == "tool"
        and not remembers
        and messages[-1]["tool_call_id"].startswith("evidence_")
    ):
        return {
            "tool_calls": [
                tool_call("compute_error_rate", {"service": "checkout"}),
                tool_call("fetch_code_from_github", {"file_path": "checkout/api.py", "line": 58}),
            ]
        }
    return conclude()


async def test_the_model_reads_the_earlier_diagnoses_and_a_repeat_costs_fewer_tokens(
    harness: Harness,
) -> None:
    tools_for(harness, logs_data())
    with FakeOpenAI([memory_aware_model] * 5) as model:
        diagnoser = harness.diagnoser(model)
        await incident(diagnoser, "d00001")
        await incident(diagnoser, "d00002")
        repeat_prompt = model.chat_requests[-1]["messages"]
    memory = next(
        m["content"] for m in repeat_prompt if m["role"] == "user" and "Incident memory" in m["content"]
    )
    assert "#d00001" in memory and "Orders without currency" in memory
    first, _ = await harness.bus.kv_get(streams.CONVERSATIONS, "d00001", Conversation)
    repeat, _ = await harness.bus.kv_get(streams.CONVERSATIONS, "d00002", Conversation)
    assert first is not None and repeat is not None
    print(f"\nmodel tokens: first incident {first.tokens_used}, repeat {repeat.tokens_used}")
    assert 0 < repeat.tokens_used < first.tokens_used


async def test_a_flapping_group_is_announced_once_counted_silently_then_summarised(harness: Harness) -> None:
    tools_for(harness, logs_data())
    diagnoser = harness.diagnoser()
    diagnoser.flap_policy = flapping.FlapPolicy(count=3, window_seconds=2.0)
    assert await flapping.summarize_stable(harness.bus, diagnoser.flap_policy) == 0  # an empty bucket
    for n in range(1, 7):
        await incident(diagnoser, f"f0000{n}", same_group=True)

    assert sorted(await diagnosed(harness)) == ["f00001", "f00002", "f00003"]  # then flapping
    texts = [t["text"] for t in await harness.published(subjects.NOTIFY_TEXT)]
    assert len(texts) == 1 and texts[0].startswith("🔁 *Flapping* #f00004")
    assert "Fired and resolved 4 times in the last 2 s" in texts[0]
    resolutions = [e["incident_id"] for e in await harness.published(subjects.INCIDENTS_RESOLVED, wait=0)]
    assert resolutions == ["f00001", "f00002", "f00003"]  # the flapping ones resolve silently

    assert await flapping.summarize_stable(harness.bus, diagnoser.flap_policy) == 0  # not stable yet
    await asyncio.sleep(2.2)
    assert await flapping.summarize_stable(harness.bus, diagnoser.flap_policy) == 1
    summary = (await harness.published(subjects.NOTIFY_TEXT))[-1]["text"]
    assert (
        summary.startswith("📉 *Flapping over*")
        and "It fired 3 time(s) from when it was marked flapping" in summary
    )
    kv = await harness.bus.kv(streams.MEMORY)
    assert not [k for k in await kv.keys() if k.startswith("flap-")]
    # Stable again: the next firing is an incident like any other.
    await incident(diagnoser, "f00007", resolve=False, same_group=True)
    assert "f00007" in await diagnosed(harness)
    record, _ = await harness.bus.kv_get(
        streams.MEMORY, next(k for k in await kv.keys() if k.startswith("flap-")), FlapRecord
    )
    assert record is not None and record.flapping_since is None
