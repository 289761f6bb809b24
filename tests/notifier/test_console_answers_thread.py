"""The console channel's mirror (`oncall.console.out`) says which reply a message answers and
whether more answers to it follow: what `oncall reply` waits for."""

import json
import uuid
from typing import Any

import pytest

from services.contracts import subjects
from services.contracts.models import NotifyText, TicketCreated, TicketFailed
from services.notifier.console import ConsoleChannel
from services.notifier.delivery import Notification, Thread
from services.notifier.messages import MAX_MESSAGE_CHARS
from services.notifier.notifications import Notifier
from services.runtime.bus import Bus

ON_CALL = ["+15551230001"]


async def mirrored_by(bus: Bus, send: Any) -> list[dict[str, Any]]:
    """What the console mirrored while `send()` ran."""
    sub = await bus.broker.connection.subscribe(subjects.CONSOLE_OUT)
    await send()
    found: list[dict[str, Any]] = []
    while True:
        try:
            msg = await sub.next_msg(timeout=0.5)
        except TimeoutError:
            break
        found.append(json.loads(msg.data))
    await sub.unsubscribe()
    return found


@pytest.fixture
def notifier(bus: Bus) -> Notifier:
    return Notifier(bus, ConsoleChannel(bus.broker), ON_CALL, console_mode=True)


async def test_an_answer_promising_more_and_its_ticket_outcome(
    bus: Bus, notifier: Notifier, capsys: pytest.CaptureFixture[str]
) -> None:
    sid = f"CONSOLE{uuid.uuid4().hex[:27]}"
    incident = uuid.uuid4().hex[:6]
    answer = NotifyText(
        notification_id=f"answer-{sid}",
        incident_id=incident,
        text="Creating the Jira ticket, assigned to ravi. I'll confirm with the link.",
        in_reply_to=sid,
        follow_up_expected=True,
    )
    created = TicketCreated(
        request_id=f"{sid}-create_jira_ticket",
        incident_id=incident,
        key="OPS-7",
        url="https://acme.atlassian.net/browse/OPS-7",
        in_reply_to=sid,
    )

    first = await mirrored_by(bus, lambda: notifier.on_text(answer))
    then = await mirrored_by(bus, lambda: notifier.on_ticket_created(created))

    assert [(m["in_reply_to"], m["follow_up_expected"]) for m in first] == [(sid, True)]
    assert first[0]["body"].startswith("Creating the Jira ticket, assigned to ravi.")
    assert [(m["in_reply_to"], m["follow_up_expected"]) for m in then] == [(sid, False)]
    assert "OPS-7" in then[0]["body"]
    assert "OPS-7" in capsys.readouterr().out  # still printed as before


async def test_a_failed_ticket_is_the_last_answer_too(bus: Bus, notifier: Notifier) -> None:
    sid = f"CONSOLE{uuid.uuid4().hex[:27]}"
    failed = TicketFailed(
        request_id=f"{sid}-create_jira_ticket",
        incident_id=uuid.uuid4().hex[:6],
        reason="Jira did not create the ticket: project OPS does not exist",
        in_reply_to=sid,
    )

    (mirrored,) = await mirrored_by(bus, lambda: notifier.on_ticket_failed(failed))

    assert (mirrored["in_reply_to"], mirrored["follow_up_expected"]) == (sid, False)


async def test_an_answer_in_several_parts_is_final_only_at_its_last_part(
    bus: Bus, notifier: Notifier
) -> None:
    sid = f"CONSOLE{uuid.uuid4().hex[:27]}"
    long_text = "\n".join(f"line {n}: " + "x" * 80 for n in range(40))
    assert len(long_text) > MAX_MESSAGE_CHARS
    answer = NotifyText(notification_id=f"answer-{sid}", text=long_text, in_reply_to=sid)

    parts = await mirrored_by(bus, lambda: notifier.on_text(answer))

    assert len(parts) >= 2
    assert [m["follow_up_expected"] for m in parts] == [True] * (len(parts) - 1) + [False]
    assert {m["in_reply_to"] for m in parts} == {sid}


def test_what_each_part_of_a_notification_says() -> None:
    answer = Notification("k", None, "text", "text", in_reply_to="SM1", follow_up_expected=True)
    final = Notification("k", None, "text", "text", in_reply_to="SM1")
    news = Notification("k", None, "text", "text")

    assert answer.thread(1, 1) == Thread("SM1", follow_up_expected=True)
    assert final.thread(1, 2) == Thread("SM1", follow_up_expected=True)
    assert final.thread(2, 2) == Thread("SM1", follow_up_expected=False)
    assert news.thread(1, 1) is None
