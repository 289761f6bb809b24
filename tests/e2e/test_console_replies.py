"""`oncall reply` as the on-call person uses it beside `oncall up` (console channel, rules, a fake
Jira): a `#tag` picks the incident, a ticket "for priya" is assigned to her, and the command
returns once the last answer (the ticket's link) is in, not after waiting out --wait."""

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakes import FakeJira
from support.processes import OncallProcess, oncall_up

from services.runtime.local import send_reply
from services.runtime.settings import ProcessSettings

INGEST_TOKEN = "t0ken"
ON_CALL = "+15551230001"
PRIYA = {"accountId": "712020:priya-0001", "displayName": "Priya Raman", "active": True}
WAIT = 30.0  # --wait: far more than an answer takes
PROMPT = 10.0  # an answer is in well within this
# Each Jira request takes this long, so the ticket's link comes later than the 5 s `oncall reply`
# used to wait after the first answer: it now waits for the link because it was promised.
JIRA_DELAY = 2.0


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    with FakeJira(users=[PRIYA], delay_seconds=JIRA_DELAY) as fake:
        yield fake


def settings_for(nats_url: str, jira: FakeJira) -> dict[str, str]:
    return {
        "NATS_URL": nats_url,
        "INGEST_TOKEN": INGEST_TOKEN,
        "USER_WHATSAPP_NUMBER": ON_CALL,
        "JIRA_URL": jira.url,
        "JIRA_EMAIL": jira.email,
        "JIRA_API_TOKEN": jira.api_token,
        "JIRA_PROJECT_KEY": jira.project_key,
    }


def fire(oncall: OncallProcess, webhook: dict[str, Any]) -> str:
    response = httpx.post(
        oncall.url + "/alerts", json=webhook, headers={"Authorization": f"Bearer {INGEST_TOKEN}"}, timeout=10
    )
    assert response.status_code == 202, response.text
    incident: str = response.json()["incident_ids"][0]
    oncall.wait_for_output(f"#{incident}", timeout=30)  # its diagnosis is printed
    return incident


def another_group(webhook: dict[str, Any]) -> dict[str, Any]:
    """The same shape, another alert: a second incident open beside the first."""
    other = json.loads(json.dumps(webhook))
    other["groupKey"] = '{}:{alertname="HighLatency", service="checkout"}'
    for labels in (other["groupLabels"], other["commonLabels"], *(a["labels"] for a in other["alerts"])):
        if "alertname" in labels:
            labels["alertname"] = "HighLatency"
    for alert in other["alerts"]:
        alert["fingerprint"] = "f" + alert.get("fingerprint", "")[1:]
    return other


def reply(nats_url: str, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, float, str]:
    """`oncall reply "<text>" --wait 30`, run here: exit code, seconds taken, what it printed."""
    settings = ProcessSettings.model_validate({"NATS_URL": nats_url})
    capsys.readouterr()
    started = time.monotonic()
    code = asyncio.run(send_reply(settings, text, None, WAIT, sender=ON_CALL))  # as the first on call
    return code, time.monotonic() - started, capsys.readouterr().out


def test_oncall_reply_understands_tags_and_assignees_and_returns_at_the_last_answer(
    clean_bus: str, jira: FakeJira, fixtures_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    webhook = json.loads((fixtures_dir / "alertmanager_webhook_real.json").read_text())
    with oncall_up(settings_for(clean_bus, jira), tmp_path) as oncall:
        first = fire(oncall, webhook)
        second = fire(oncall, another_group(webhook))
        assert first != second

        # The tag picks the older incident, not the newest one; a status answer is final at once.
        code, took, out = reply(clean_bus, f"#{first} status", capsys)
        assert code == 0, out
        assert "*HighErrorRate on checkout* is diagnosed" in out and f"#{first}" in out
        assert "HighLatency" not in out
        assert took < PROMPT, f"{took:.1f}s: waited past the final answer"

        # A ticket for priya: the promise, then the link, and the command ends there.
        code, took, out = reply(clean_bus, "create a ticket for priya, priority P2", capsys)
        assert code == 0, out
        assert "Creating the Jira ticket, assigned to priya." in out
        assert "OPS-1" in out and "Priya Raman" in out, out
        assert out.index("Creating the Jira ticket") < out.index("OPS-1")
        assert took < WAIT - 5, f"{took:.1f}s: waited past the final answer"

    (issue,) = jira.issues
    assert issue["assignee"] == {"accountId": PRIYA["accountId"]}
    assert issue["priority"] == {"name": "High"}
    assert "HighLatency" in issue["summary"]  # no tag: the newest open incident
