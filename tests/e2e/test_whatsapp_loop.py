"""Two people on call, both ways on WhatsApp, through `oncall up` and the Twilio fake:

1. An alert fires; both get the diagnosis, each message asking Twilio for delivery reports.
2. Twilio reports that Ravi's copy failed: his 24-hour window was closed. He gets the approved
   template instead, naming the incident and inviting a reply.
3. Asha replies "create jira task and assign to ravi". Both see the agent's answer headed by
   who asked what, then the ticket. Twilio delivering her reply again changes nothing.
"""

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2e import scenario
from fakes import FakeGitHub, FakeJira, FakeLogs, FakePrometheus, FakeTwilio
from support.processes import oncall_up
from support.twilio_signing import post_signed_reply, whatsapp_reply
from twilio.request_validator import RequestValidator

ASHA, RAVI = "+15551230001", "+15551230002"
PUBLIC_BASE_URL = "https://oncall.example.com"
STATUS_URL = PUBLIC_BASE_URL + "/webhook/twilio/status"
INGEST_TOKEN = "s3cret-token"
TEMPLATE_SID = "HX" + "e" * 32
JIRA_RAVI = {"accountId": "712020:ravi-0001", "displayName": "Ravi Kumar", "active": True}


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def settings(clean_bus: str, twilio: FakeTwilio) -> Iterator[dict[str, str]]:
    files = {scenario.BUGGY_FILE: scenario.PAYMENTS_SOURCE}
    with (
        FakeLogs(scenario.log_lines()) as logs,
        FakePrometheus(scenario.PROMETHEUS_VALUES) as prometheus,
        FakeGitHub(owner="acme", repo="shop", files=files) as github,
        FakeJira(users=[JIRA_RAVI]) as jira,
    ):
        yield {
            "NATS_URL": clean_bus,
            "INGEST_TOKEN": INGEST_TOKEN,
            "LB_URL": logs.url,
            "PROM_URL": prometheus.url,
            "GITHUB_API_URL": github.url,
            "GITHUB_TOKEN": github.token,
            "GITHUB_OWNER": github.owner,
            "GITHUB_REPO": github.repo,
            "JIRA_URL": jira.url,
            "JIRA_EMAIL": jira.email,
            "JIRA_API_TOKEN": jira.api_token,
            "JIRA_PROJECT_KEY": jira.project_key,
            "TWILIO_ACCOUNT_SID": twilio.account_sid,
            "TWILIO_AUTH_TOKEN": twilio.auth_token,
            "TWILIO_WHATSAPP_NUMBER": "whatsapp:+14155238886",
            "TWILIO_API_BASE_URL": twilio.url,
            "TWILIO_TEMPLATE_SID": TEMPLATE_SID,
            "USER_WHATSAPP_NUMBER": f"whatsapp:{ASHA},whatsapp:{RAVI}",
            "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        }


def post_status(oncall_url: str, auth_token: str, form: dict[str, str]) -> httpx.Response:
    signature = RequestValidator(auth_token).compute_signature(STATUS_URL, form)
    return httpx.post(
        oncall_url + "/webhook/twilio/status",
        data=form,
        headers={"X-Twilio-Signature": signature},
        timeout=10,
    )


def to(number: str, twilio: FakeTwilio) -> list[dict[str, str]]:
    return [m for m in twilio.messages if m["To"] == f"whatsapp:{number}"]


def test_two_people_on_call_on_whatsapp_both_ways(
    settings: dict[str, str], twilio: FakeTwilio, fixtures_dir: Path, tmp_path: Path
) -> None:
    with oncall_up(settings, tmp_path) as oncall:
        alert = (fixtures_dir / "alertmanager_webhook_real.json").read_bytes()
        accepted = httpx.post(
            oncall.url + "/alerts", content=alert, headers={"Authorization": f"Bearer {INGEST_TOKEN}"}
        )
        assert accepted.status_code == 202, accepted.text
        tag = "#" + accepted.json()["incident_ids"][0]

        # 1. Both get the diagnosis, tagged, with delivery reports asked for.
        twilio.wait_for(lambda t: bool(to(ASHA, t)) and bool(to(RAVI, t)), timeout=30)
        for message in twilio.messages:
            assert tag in message["Body"] and scenario.BUGGY_FILE in message["Body"]
            assert message["StatusCallback"] == STATUS_URL

        # 2. Ravi's window was closed: Twilio took the message, then reports it failed.
        ravis = to(RAVI, twilio)[0]
        failed = {
            "MessageSid": ravis["sid"],
            "MessageStatus": "failed",
            "ErrorCode": "63016",
            "AccountSid": twilio.account_sid,
            "From": "whatsapp:+14155238886",
            "To": ravis["To"],
        }
        assert post_status(oncall.url, twilio.auth_token, failed).status_code == 200
        twilio.wait_for(lambda t: any(m.get("ContentSid") for m in t.messages), timeout=10)
        (template,) = [m for m in twilio.messages if m.get("ContentSid")]
        assert template["To"] == f"whatsapp:{RAVI}" and "Body" not in template
        assert json.loads(template["ContentVariables"])["1"].startswith(f"{tag} HighErrorRate")

        # 3. Asha asks for a ticket; both see who asked, then the ticket.
        reply = whatsapp_reply(
            ASHA,
            "create jira task and assign to ravi",
            "SM" + "a" * 32,
            twilio.account_sid,
            ProfileName="Asha",
        )
        assert post_signed_reply(oncall.url, PUBLIC_BASE_URL, twilio.auth_token, reply).status_code == 200
        header = "↩️ *Asha (+1555…0001):* “create jira task and assign to ravi”"
        twilio.wait_for(lambda t: sum("OPS-1" in m.get("Body", "") for m in t.messages) >= 2, timeout=30)
        twilio.wait_for(
            lambda t: sum(m.get("Body", "").startswith(header) for m in t.messages) >= 2, timeout=10
        )
        for person in (ASHA, RAVI):
            answer = next(m for m in to(person, twilio) if m.get("Body", "").startswith(header))
            assert tag in answer["Body"]

        # Twilio delivering Asha's reply again changes nothing.
        count = len(twilio.messages)
        assert post_signed_reply(oncall.url, PUBLIC_BASE_URL, twilio.auth_token, reply).status_code == 200
        with pytest.raises(TimeoutError):
            twilio.wait_for(lambda t: len(t.messages) > count, timeout=1.5)
