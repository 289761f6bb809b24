"""A human's reply, understood with the incident's context: answers and write actions."""

from typing import Any

from diagnoser_harness import Harness, alert_group
from fakes import FakeOpenAI, tool_call

from services.contracts import streams, subjects
from services.contracts.models import Conversation, HumanReplied
from services.diagnoser.handlers import Diagnoser

ON_CALL = "+15551230001"


def reply(text: str, sid: str, incident_id: str | None = None) -> HumanReplied:
    return HumanReplied(
        message_sid=sid, sender=ON_CALL, body=text, incident_id=incident_id, profile_name="Asha"
    )


async def open_incident(harness: Harness, incident_id: str) -> Diagnoser:
    harness.tools.answers = {"compute_error_rate": {"error_rate": 0.123}}
    diagnoser = harness.diagnoser()
    await diagnoser.on_alert_firing(alert_group(incident_id=incident_id))
    return diagnoser


async def texts(harness: Harness) -> list[str]:
    return [m["text"] for m in await harness.published(subjects.NOTIFY_TEXT)]


async def test_rules_turn_ticket_silence_ack_status_resolve(harness: Harness) -> None:
    diagnoser = await open_incident(harness, "hum001")
    await diagnoser.on_human_reply(reply("create jira task and assign to Ravi priority P1", "SM1"))
    await diagnoser.on_human_reply(reply("silence for 2h", "SM2"))
    await diagnoser.on_human_reply(reply("ack", "SM3"))
    await diagnoser.on_human_reply(reply("status", "SM4"))
    await diagnoser.on_human_reply(reply("unsilence", "SM5"))
    await diagnoser.on_human_reply(reply("resolve", "SM6"))

    (ticket,) = await harness.published(subjects.TICKETS_REQUESTED)
    assert ticket["assignee"] == "Ravi" and ticket["priority"] == "P1" and ticket["incident_id"] == "hum001"
    assert ticket["diagnosis"]["method"] == "rules"
    create, expire = await harness.published(subjects.SILENCES_REQUESTED, wait=0)
    assert create["action"] == "create" and create["duration_seconds"] == 7200
    assert {(m["name"], m["value"]) for m in create["matchers"]} == {
        ("alertname", "HighErrorRate"),
        ("service", "checkout"),
    }
    assert expire["action"] == "expire"
    answers = await texts(harness)
    assert any("Asha has taken" in t for t in answers)
    assert any("Error rate now: 12.3%" in t and "Taken by Asha" in t for t in answers)
    (resolved,) = await harness.published(subjects.INCIDENTS_RESOLVED, wait=0)
    assert resolved["incident_id"] == "hum001"
    stored, _ = await harness.bus.kv_get(streams.CONVERSATIONS, "hum001", Conversation)
    assert stored is not None and stored.status == "resolved" and stored.acked_by == "Asha"
    assert [t.message_sid for t in stored.turns] == ["SM1", "SM2", "SM3", "SM4", "SM5", "SM6"]


async def test_the_same_reply_delivered_twice_acts_once(harness: Harness) -> None:
    diagnoser = await open_incident(harness, "hum002")
    twice = reply("create jira task and assign to Ravi", "SMdup")
    await diagnoser.on_human_reply(twice)
    await diagnoser.on_human_reply(twice)
    assert len(await harness.published(subjects.TICKETS_REQUESTED)) == 1


async def test_a_reply_without_an_incident_goes_to_the_newest_open_one(harness: Harness) -> None:
    diagnoser = await open_incident(harness, "hum003")
    older = alert_group(incident_id="hum004")
    older.group_key += "-other"
    await diagnoser.on_alert_firing(older)
    await diagnoser.on_human_reply(reply("create ticket", "SM7"))
    (ticket,) = await harness.published(subjects.TICKETS_REQUESTED)
    assert ticket["incident_id"] == "hum004"  # opened last


async def test_no_open_incident_is_said_plainly(harness: Harness) -> None:
    await harness.diagnoser().on_human_reply(reply("create ticket", "SM8"))
    assert (await texts(harness))[0].startswith("I have no open incident to act on.")
    assert await harness.published(subjects.TICKETS_REQUESTED, wait=0) == []


async def test_anything_else_gets_the_help_text(harness: Harness) -> None:
    diagnoser = await open_incident(harness, "hum005")
    await diagnoser.on_human_reply(reply("lol what", "SM9"))
    (answer,) = await texts(harness)
    assert "create jira task" in answer and "silence for 2h" in answer


async def test_the_model_answers_questions_with_read_tools_and_acts_on_request(harness: Harness) -> None:
    await open_incident(harness, "hum006")

    def model(request: dict[str, Any]) -> dict[str, Any]:
        last = request["messages"][-1]
        engineer = next(m["content"] for m in reversed(request["messages"]) if m["role"] == "user")
        if "error rate" in engineer:
            if last["role"] == "tool":
                return {"content": "Error rate is 12.3% now."}
            return {"tool_calls": [tool_call("compute_error_rate", {"service": "checkout"})]}
        if last["role"] == "tool":
            return {"content": "Silenced for 30 minutes."}
        return {"tool_calls": [tool_call("silence_alert", {"duration_minutes": 30})]}

    with FakeOpenAI([model]) as fake:
        diagnoser = harness.diagnoser(fake)
        await diagnoser.on_human_reply(reply("what's the error rate now?", "SM10"))
        await diagnoser.on_human_reply(reply("silence this for 30 min", "SM11"))
        offered = {t["function"]["name"] for t in fake.chat_requests[0]["tools"]}
    assert {"create_jira_ticket", "silence_alert", "compute_error_rate"} <= offered
    assert "send_diagnosis" not in offered
    assert await texts(harness) == ["Error rate is 12.3% now.", "Silenced for 30 minutes."]
    (silence,) = await harness.published(subjects.SILENCES_REQUESTED, wait=0)
    assert silence["duration_seconds"] == 1800


async def test_a_failing_model_in_a_human_turn_falls_back_to_the_rules(harness: Harness) -> None:
    await open_incident(harness, "hum007")
    with FakeOpenAI([FakeOpenAI.error(500, "boom")]) as fake:
        await harness.diagnoser(fake).on_human_reply(reply("create jira task and assign to Ravi", "SM12"))
    (ticket,) = await harness.published(subjects.TICKETS_REQUESTED)
    assert ticket["assignee"] == "Ravi"


def wordless_after_tools(answers: list[str]) -> Any:
    """A small model's habit (seen with Qwen2.5-Coder 1.5B in llama.cpp): the tool is called,
    then its result is answered with "{}"; `answers` are its replies after the tool result."""
    replies = iter(answers)

    def model(request: dict[str, Any]) -> dict[str, Any]:
        if not any(m["role"] == "tool" for m in request["messages"]):
            return {"tool_calls": [tool_call("compute_error_rate", {"service": "checkout"})]}
        return {"content": next(replies)}

    return model


async def test_a_wordless_answer_is_asked_for_again_in_words(harness: Harness) -> None:
    await open_incident(harness, "hum008")
    with FakeOpenAI([wordless_after_tools(["{}", "The error rate is 12.3% now."])]) as fake:
        await harness.diagnoser(fake).on_human_reply(reply("what's the error rate now?", "SM13"))
        asked_again = fake.chat_requests[-1]["messages"][-1]
    assert asked_again["role"] == "user" and "plain sentences" in asked_again["content"]
    assert await texts(harness) == ["The error rate is 12.3% now."]


async def test_a_model_that_stays_wordless_is_replaced_by_the_rules_answer(harness: Harness) -> None:
    await open_incident(harness, "hum009")
    with FakeOpenAI([wordless_after_tools(["{}", "```\n[]\n```"])]) as fake:
        await harness.diagnoser(fake).on_human_reply(reply("what's the error rate now?", "SM14"))
        assert len(fake.chat_requests) == 3  # the call, "{}", the second try; then no more
    (answer,) = await texts(harness)
    assert "12.3%" in answer and "{}" not in answer
