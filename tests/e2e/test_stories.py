"""The product's two user stories, end to end through all five services on a real NATS,
started as `oncall up` starts them; outside SaaS replaced by fakes that keep the vendors' contracts.

1. Alertmanager posts an alert; the on-call people get a root-cause diagnosis on WhatsApp.
2. One replies "create jira task and assign to Ravi"; a Jira issue is created and confirmed.
"""

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e import scenario
from fakes import FakeGitHub, FakeJira, FakeLogs, FakeOpenAI, FakePrometheus, FakeTwilio, tool_call
from support.processes import oncall_up, run_oncall
from support.twilio_signing import post_signed_reply, whatsapp_reply

ON_CALL = ["+15551230001", "+15551230002"]
PUBLIC_BASE_URL = "https://oncall.example.com"  # what Twilio signs; we sit behind a proxy
INGEST_TOKEN = "s3cret-token"
RAVI = {
    "accountId": "712020:ravi-0001",
    "displayName": "Ravi Kumar",
    "active": True,
    "emailAddress": "ravi@example.com",
}
BACKEND_DELAY = 0.3  # so that parallel requests visibly overlap


@dataclass
class Backends:
    logs: FakeLogs
    prometheus: FakePrometheus
    github: FakeGitHub
    twilio: FakeTwilio
    jira: FakeJira
    openai: FakeOpenAI

    def settings(self, nats_url: str, *, model: bool = True, whatsapp: bool = True) -> dict[str, str]:
        values = {
            "NATS_URL": nats_url,
            "INGEST_TOKEN": INGEST_TOKEN,
            "LB_URL": self.logs.url,
            "PROM_URL": self.prometheus.url,
            "GITHUB_API_URL": self.github.url,
            "GITHUB_TOKEN": self.github.token,
            "GITHUB_OWNER": self.github.owner,
            "GITHUB_REPO": self.github.repo,
            "GITHUB_REF": self.github.ref,
            "JIRA_URL": self.jira.url,
            "JIRA_EMAIL": self.jira.email,
            "JIRA_API_TOKEN": self.jira.api_token,
            "JIRA_PROJECT_KEY": self.jira.project_key,
            "USER_WHATSAPP_NUMBER": ",".join(f"whatsapp:{n}" for n in ON_CALL),
        }
        if model:
            values |= {
                "OPENAI_API_KEY": "sk-test",
                "OPENAI_BASE_URL": self.openai.url + "/v1",
                "OPENAI_MODEL": "gpt-test",
            }
        if whatsapp:
            values |= {
                "TWILIO_ACCOUNT_SID": self.twilio.account_sid,
                "TWILIO_AUTH_TOKEN": self.twilio.auth_token,
                "TWILIO_WHATSAPP_NUMBER": "whatsapp:+14155238886",
                "TWILIO_API_BASE_URL": self.twilio.url,
                "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
            }
        return values


def scripted_model(request: dict[str, Any]) -> dict[str, Any]:
    """The model's side of both stories, chosen from what it is asked."""
    offered = {t["function"]["name"] for t in request.get("tools", [])}
    messages = request["messages"]
    if "create_jira_ticket" in offered:  # a human turn
        if messages[-1]["role"] == "tool":
            return {"content": "Done: the ticket is being created and assigned to Ravi."}
        return {"tool_calls": [tool_call("create_jira_ticket", {"assignee": "Ravi"})]}
    if messages[-1]["role"] == "tool" and messages[-1]["tool_call_id"].startswith("evidence_"):
        # Round 1: look again at the error rate and the caller, both at once.
        return {
            "tool_calls": [
                tool_call("compute_error_rate", {"service": scenario.SERVICE}),
                tool_call("fetch_code_from_github", {"file_path": "checkout/api.py", "line": 58}),
            ]
        }
    return {
        "tool_calls": [
            tool_call(
                "send_diagnosis",
                {
                    "root_cause": scenario.ROOT_CAUSE,
                    "affected_file": scenario.BUGGY_FILE,
                    "line": scenario.BUGGY_LINE,
                    "evidence": ["KeyError: 'currency'"],
                    "priority": "P1",
                    "suggested_fix": scenario.FIX,
                    "next_steps": ["Deploy the fix", "Backfill failed orders"],
                    "confidence": 0.9,
                },
            )
        ]
    }


@pytest.fixture
def backends() -> Iterator[Backends]:
    files = {
        scenario.BUGGY_FILE: scenario.PAYMENTS_SOURCE,
        "checkout/api.py": "def create_order():\n    pass\n",
    }
    servers = Backends(
        logs=FakeLogs(scenario.log_lines(), delay_seconds=BACKEND_DELAY),
        prometheus=FakePrometheus(scenario.PROMETHEUS_VALUES, delay_seconds=BACKEND_DELAY),
        github=FakeGitHub(owner="acme", repo="shop", files=files, delay_seconds=BACKEND_DELAY),
        twilio=FakeTwilio(),
        jira=FakeJira(
            users=[RAVI, {"accountId": "557058:alice", "displayName": "Alice Smith", "active": True}]
        ),
        openai=FakeOpenAI([scripted_model]),
    )
    for server in vars(servers).values():
        server.start()
    yield servers
    for server in vars(servers).values():
        server.stop()


def post_alert(url: str, fixtures_dir: Path) -> httpx.Response:
    body = (fixtures_dir / "alertmanager_webhook_real.json").read_bytes()
    return httpx.post(
        url + "/alerts",
        content=body,
        timeout=10,
        headers={"Authorization": f"Bearer {INGEST_TOKEN}", "Content-Type": "application/json"},
    )


def overlapped(a: Any, b: Any) -> bool:
    return bool(a.started_at < b.finished_at and b.started_at < a.finished_at)


def assert_diagnosis_message(body: str) -> None:
    assert scenario.BUGGY_FILE in body and str(scenario.BUGGY_LINE) in body
    assert "P1" in body or "P2" in body


def test_alert_becomes_a_whatsapp_diagnosis_and_a_reply_becomes_a_jira_issue(
    clean_bus: str, backends: Backends, fixtures_dir: Path, tmp_path: Path
) -> None:
    with oncall_up(backends.settings(clean_bus), tmp_path) as oncall:
        # Story 1: the real captured webhook goes in ...
        accepted = post_alert(oncall.url, fixtures_dir)
        assert accepted.status_code == 202, accepted.text
        incident = accepted.json()["incident_ids"][0]

        # ... and each on-call number gets one WhatsApp message with the diagnosis.
        backends.twilio.wait_for(lambda t: len(t.messages) >= 2, timeout=30)
        diagnoses = backends.twilio.messages
        assert sorted(m["To"] for m in diagnoses) == sorted(f"whatsapp:{n}" for n in ON_CALL)
        for message in diagnoses:
            assert message["From"] == "whatsapp:+14155238886"
            assert scenario.ROOT_CAUSE in message["Body"]
            assert_diagnosis_message(message["Body"])
            assert "P1" in message["Body"] and f"#{incident}" in message["Body"]

        # The model saw the results of all three evidence tools in its first request ...
        first = backends.openai.chat_requests[0]["messages"]
        seen = {m["tool_call_id"]: json.loads(m["content"]) for m in first if m["role"] == "tool"}
        seen = {call: json.dumps(result, ensure_ascii=False) for call, result in seen.items()}
        assert any("KeyError" in c for c in seen.values()), "logs"
        assert any("0.25" in c or "25" in c for c in seen.values()), "error rate"
        assert any(scenario.BUGGY_STATEMENT.replace('"', '\\"') in c for c in seen.values()), (
            "code at the line"
        )
        assert not any(
            t["function"]["name"] == "create_jira_ticket" for t in backends.openai.chat_requests[0]["tools"]
        )
        # ... gathered in parallel: the logs and Prometheus requests overlapped in time,
        logs_request = backends.logs.requests[0]
        assert any(overlapped(logs_request, q) for q in backends.prometheus.requests)
        # and the model's own parallel tool calls were in flight at once too.
        second = backends.openai.chat_requests[1]["messages"]
        assert [m["role"] for m in second[-2:]] == ["tool", "tool"]
        api_code = next(r for r in backends.github.requests if r.path.endswith("checkout/api.py"))
        assert overlapped(backends.prometheus.requests[-1], api_code)

        # Story 2: the on-call person swipe-replies to the diagnosis.
        params = whatsapp_reply(
            ON_CALL[0],
            "create jira task and assign to Ravi",
            "SM" + "1" * 32,
            backends.twilio.account_sid,
            OriginalRepliedMessageSid=diagnoses[0]["sid"],
        )
        answer = post_signed_reply(oncall.url, PUBLIC_BASE_URL, backends.twilio.auth_token, params)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/xml") and "<Response" in answer.text

        backends.jira.wait_for(lambda j: len(j.issues) >= 1, timeout=30)
        backends.twilio.wait_for(lambda t: sum("OPS-1" in m["Body"] for m in t.messages) >= 2, timeout=30)
        issue = backends.jira.issues[0]
        assert issue["project"] == {"key": "OPS"}
        assert "HighErrorRate" in issue["summary"] and "checkout" in issue["summary"]
        assert issue["assignee"] == {"accountId": RAVI["accountId"]}
        assert issue["description"]["type"] == "doc" and issue["description"]["version"] == 1
        assert scenario.ROOT_CAUSE in json.dumps(issue["description"])
        confirmations = [m for m in backends.twilio.messages if "OPS-1" in m["Body"]]
        assert sorted(m["To"] for m in confirmations) == sorted(f"whatsapp:{n}" for n in ON_CALL)
        assert f"{backends.jira.url}/browse/OPS-1" in confirmations[0]["Body"]
        assert "Ravi Kumar" in confirmations[0]["Body"]

        # Twilio delivering the same reply again creates nothing more.
        assert (
            post_signed_reply(oncall.url, PUBLIC_BASE_URL, backends.twilio.auth_token, params).status_code
            == 200
        )
        # Alertmanager re-sending the unchanged group is not diagnosed again.
        assert post_alert(oncall.url, fixtures_dir).json()["duplicate"] is True
        count = len(backends.twilio.messages)
        import time

        time.sleep(1.5)
        assert len(backends.jira.issues) == 1
        assert len(backends.twilio.messages) == count


def test_without_a_model_both_stories_work_with_rules(
    clean_bus: str, backends: Backends, fixtures_dir: Path, tmp_path: Path
) -> None:
    with oncall_up(backends.settings(clean_bus, model=False), tmp_path) as oncall:
        assert post_alert(oncall.url, fixtures_dir).status_code == 202
        backends.twilio.wait_for(lambda t: len(t.messages) >= 2, timeout=30)
        body = backends.twilio.messages[0]["Body"]
        assert_diagnosis_message(body)
        assert "KeyError" in body and "rule-based" in body.lower()
        assert backends.openai.requests == []

        params = whatsapp_reply(
            ON_CALL[1], "create jira task and assign to ravi", "SM" + "2" * 32, backends.twilio.account_sid
        )  # no swipe-reply: the newest open incident
        assert (
            post_signed_reply(oncall.url, PUBLIC_BASE_URL, backends.twilio.auth_token, params).status_code
            == 200
        )
        backends.jira.wait_for(lambda j: len(j.issues) == 1, timeout=30)
        assert backends.jira.issues[0]["assignee"] == {"accountId": RAVI["accountId"]}
        backends.twilio.wait_for(lambda t: any("OPS-1" in m["Body"] for m in t.messages), timeout=30)


def test_without_twilio_the_console_channel_and_oncall_reply_carry_both_stories(
    clean_bus: str, backends: Backends, fixtures_dir: Path, tmp_path: Path
) -> None:
    settings = backends.settings(clean_bus, model=False, whatsapp=False)
    with oncall_up(settings, tmp_path) as oncall:
        assert post_alert(oncall.url, fixtures_dir).status_code == 202
        printed = oncall.wait_for_output(scenario.BUGGY_FILE, timeout=30)
        assert str(scenario.BUGGY_LINE) in printed and "KeyError" in printed

        reply = run_oncall(
            ["reply", "create jira task and assign to ravi", "--wait", "20"],
            {"NATS_URL": clean_bus},
            timeout=60,
        )
        assert reply.returncode == 0, reply.stdout + reply.stderr
        assert "OPS-1" in reply.stdout, reply.stdout
        assert backends.jira.issues[0]["assignee"] == {"accountId": RAVI["accountId"]}
        assert backends.twilio.messages == []


def resolved_webhook(fixtures_dir: Path) -> bytes:
    """Alertmanager's notification that the group of alertmanager_webhook_real.json resolved."""
    hook = json.loads((fixtures_dir / "alertmanager_webhook_real.json").read_bytes())
    hook["status"] = "resolved"
    for alert in hook["alerts"]:
        alert["status"] = "resolved"
        alert["endsAt"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return json.dumps(hook).encode()


def inspect_until(nats_url: str, incident: str, text: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while True:
        shown = run_oncall(["inspect", incident], {"NATS_URL": nats_url})
        assert shown.returncode == 0, shown.stderr
        if text in shown.stdout or time.monotonic() > deadline:
            return shown.stdout
        time.sleep(0.3)


def test_the_incidents_ticket_reaches_the_resolution_message_and_inspect(
    clean_bus: str, backends: Backends, fixtures_dir: Path, tmp_path: Path
) -> None:
    """The ticket has one home, the incident's conversation: `oncall inspect` and the resolution
    message sent to every on-call number read it there."""
    with oncall_up(backends.settings(clean_bus, model=False), tmp_path) as oncall:
        incident = post_alert(oncall.url, fixtures_dir).json()["incident_ids"][0]
        backends.twilio.wait_for(lambda t: len(t.messages) >= 2, timeout=30)
        params = whatsapp_reply(
            ON_CALL[0], "create jira task and assign to ravi", "SM" + "4" * 32, backends.twilio.account_sid
        )
        assert (
            post_signed_reply(oncall.url, PUBLIC_BASE_URL, backends.twilio.auth_token, params).status_code
            == 200
        )
        backends.twilio.wait_for(lambda t: sum("OPS-1" in m["Body"] for m in t.messages) >= 2, timeout=30)
        link = f"{backends.jira.url}/browse/OPS-1"
        assert f"ticket:   OPS-1 {link}" in inspect_until(clean_bus, incident, "OPS-1")

        resolved = httpx.post(
            oncall.url + "/alerts",
            content=resolved_webhook(fixtures_dir),
            timeout=10,
            headers={"Authorization": f"Bearer {INGEST_TOKEN}", "Content-Type": "application/json"},
        )
        assert resolved.status_code == 202 and resolved.json()["incident_ids"] == [incident]
        backends.twilio.wait_for(
            lambda t: sum("*Resolved*" in m["Body"] for m in t.messages) >= 2, timeout=30
        )
        for message in (m for m in backends.twilio.messages if "*Resolved*" in m["Body"]):
            assert f"#{incident}" in message["Body"] and f"Ticket: OPS-1 {link}" in message["Body"]
        shown = inspect_until(clean_bus, incident, "[resolved]")
        assert "[resolved]" in shown and f"ticket:   OPS-1 {link}" in shown


def test_a_wrong_token_is_refused_and_nothing_is_diagnosed(
    clean_bus: str, backends: Backends, fixtures_dir: Path, tmp_path: Path
) -> None:
    with oncall_up(backends.settings(clean_bus, model=False), tmp_path) as oncall:
        body = (fixtures_dir / "alertmanager_webhook_real.json").read_bytes()
        refused = httpx.post(oncall.url + "/alerts", content=body, headers={"Authorization": "Bearer wrong"})
        assert refused.status_code == 401 and "WWW-Authenticate" in refused.headers
        assert (
            httpx.post(
                oncall.url + "/alerts",
                content=b"{not json",
                headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
            ).status_code
            == 400
        )
        unsigned = httpx.post(
            oncall.url + "/webhook/twilio",
            data=whatsapp_reply(ON_CALL[0], "create jira", "SM" + "3" * 32, backends.twilio.account_sid),
        )
        assert unsigned.status_code == 403
        import time

        time.sleep(1.0)
        assert backends.logs.requests == [] and backends.twilio.messages == [] and backends.jira.issues == []
