"""`oncall inspect` shows what was done about an incident: its ticket (created, or why it failed)
and its silences, made on a real Alertmanager by the on-call person's replies."""

import time
from pathlib import Path

import httpx
from fakes import FakeJira
from integration.real_servers import Webhook, running_alertmanager
from support.processes import oncall_up, run_oncall

RAVI = {"accountId": "712020:ravi-0001", "displayName": "Ravi Kumar", "active": True}
TOKEN = "t"


def test_inspect_shows_the_ticket_and_the_silences_of_the_incident(
    clean_bus: str, fixtures_dir: Path, tmp_path: Path
) -> None:
    with (
        FakeJira(users=[RAVI]) as jira,
        running_alertmanager([Webhook("nobody", "http://127.0.0.1:9/alerts")], tmp_path) as alertmanager,
    ):
        settings = {
            "NATS_URL": clean_bus,
            "INGEST_TOKEN": TOKEN,
            "ALERTMANAGER_URL": alertmanager.url,
            "JIRA_URL": jira.url,
            "JIRA_EMAIL": jira.email,
            "JIRA_API_TOKEN": jira.api_token,
            "JIRA_PROJECT_KEY": jira.project_key,
            "ONCALL_DATA_DIR": str(tmp_path / "data"),
        }
        with oncall_up(settings, tmp_path) as oncall:
            accepted = httpx.post(
                oncall.url + "/alerts",
                content=(fixtures_dir / "alertmanager_webhook_real.json").read_bytes(),
                headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            )
            incident = accepted.json()["incident_ids"][0]
            oncall.wait_for_output("Incident diagnosis", timeout=30)

            def reply(text: str) -> str:
                answered = run_oncall(["reply", text, "--wait", "20"], {"NATS_URL": clean_bus}, timeout=60)
                assert answered.returncode == 0, answered.stdout + answered.stderr
                return answered.stdout

            def inspect_until(text: str) -> str:
                deadline = time.monotonic() + 20
                while True:
                    shown = run_oncall(["inspect", incident], {"NATS_URL": clean_bus})
                    assert shown.returncode == 0, shown.stderr
                    if text in shown.stdout or time.monotonic() > deadline:
                        return shown.stdout
                    time.sleep(0.3)

            assert "Silenced for 2 h" in reply("silence for 2h")  # Alertmanager's outcome, not a promise
            assert "OPS-1" in reply("create jira task and assign to ravi")
            shown = inspect_until("silenced until")
            [silence] = httpx.get(alertmanager.url + "/api/v2/silences").json()
            assert f"ticket:   OPS-1 {jira.url}/browse/OPS-1" in shown, shown
            assert "silenced until" in shown and silence["id"] in shown, shown

            assert "Silence removed" in reply("unsilence")
            assert "unsilenced" in inspect_until("unsilenced")
