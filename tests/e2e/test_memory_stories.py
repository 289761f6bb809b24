"""Issue 16 end to end, through all five services as `oncall up` runs them, on a real NATS, with
the vendors faked (Jira keeps its documented contract for comments, transitions and issue links):

1. The same problem four times: the repeats say "Seen N times before" first; one ticket per
   problem (a comment on the open ticket, reopened when done lately, a new related one when done
   long ago); feedback acknowledged in one line; the resolution carries the timeline (WhatsApp,
   the Jira comment, `oncall inspect --timeline`); `oncall stats` counts it all.
2. A flapping group: announced once, counted silently, summarised once stable.
"""

import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from e2e.test_stories import INGEST_TOKEN, ON_CALL, PUBLIC_BASE_URL, RAVI, Backends, backends
from support.processes import oncall_up, run_oncall
from support.twilio_signing import post_signed_reply, whatsapp_reply

__all__ = ["backends"]

FIXTURE = "alertmanager_webhook_real.json"
STAMP = re.compile(r"^(?:\d{4}-\d{2}-\d{2} )?\d{2}:\d{2}:\d{2} ")


def webhook(fixtures_dir: Path, n: int, status: str = "firing", group: str = "") -> bytes:
    """The captured webhook as the n-th incident: its alerts start n minutes later (a new incident
    id), in its own Alertmanager group unless `group` names a shared one."""
    hook = json.loads((fixtures_dir / FIXTURE).read_bytes())
    hook["groupKey"] += group or f"/{n}"
    hook["status"] = status
    for alert in hook["alerts"]:
        started = datetime.fromisoformat(alert["startsAt"].replace("Z", "+00:00")) + timedelta(minutes=n)
        alert["startsAt"] = started.isoformat().replace("+00:00", "Z")
        alert["status"] = status
        if status == "resolved":
            alert["endsAt"] = (started + timedelta(minutes=14)).isoformat().replace("+00:00", "Z")
    return json.dumps(hook).encode()


def post(url: str, body: bytes) -> str:
    answer = httpx.post(
        url + "/alerts",
        content=body,
        timeout=10,
        headers={"Authorization": f"Bearer {INGEST_TOKEN}", "Content-Type": "application/json"},
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["incident_ids"][0])


def say(url: str, backends: Backends, text: str, sid: str, incident: str) -> None:
    """An on-call person's WhatsApp reply naming the incident by its tag."""
    params = whatsapp_reply(ON_CALL[0], f"#{incident} {text}", sid, backends.twilio.account_sid)
    assert post_signed_reply(url, PUBLIC_BASE_URL, backends.twilio.auth_token, params).status_code == 200


def bodies(backends: Backends, to: str = ON_CALL[0]) -> list[str]:
    return [m["Body"] for m in backends.twilio.messages if m["To"] == f"whatsapp:{to}"]


def wait_for_body(backends: Backends, *fragments: str, timeout: float = 30) -> str:
    backends.twilio.wait_for(lambda _: any(all(f in b for f in fragments) for b in bodies(backends)), timeout)
    return next(b for b in reversed(bodies(backends)) if all(f in b for f in fragments))


def texts_of(node: Any) -> list[str]:
    if isinstance(node, dict):
        return ([node["text"]] if node.get("type") == "text" else []) + texts_of(node.get("content", []))
    return [t for child in node for t in texts_of(child)] if isinstance(node, list) else []


def test_a_known_problem_is_remembered_ticketed_once_and_its_timeline_kept(
    clean_bus: str, backends: Backends, fixtures_dir: Path, tmp_path: Path
) -> None:
    jira = backends.jira
    with oncall_up(backends.settings(clean_bus, model=False), tmp_path) as oncall:
        # 1. First occurrence: diagnosed, ticketed, confirmed right, resolved.
        first = post(oncall.url, webhook(fixtures_dir, 1))
        message = wait_for_body(backends, "*Incident diagnosis*", f"#{first}")
        assert "Seen" not in message
        say(oncall.url, backends, "create jira task and assign to ravi", "SM" + "a1" * 16, first)
        wait_for_body(backends, "Jira task created", "OPS-1")
        say(oncall.url, backends, "👍", "SM" + "a2" * 16, first)
        assert wait_for_body(backends, f"the diagnosis of #{first} was right").startswith("↩️")
        post(oncall.url, webhook(fixtures_dir, 1, "resolved"))
        resolution = wait_for_body(backends, "*Resolved*", f"#{first}")
        assert "*Timeline (UTC):*" in resolution and "fired: HighErrorRate on checkout" in resolution
        assert "diagnosed (rules" in resolution and "create jira task" in resolution

        jira.wait_for(lambda j: any("Timeline (UTC)" in texts_of(c) for c in j.comments("OPS-1")), 30)
        comment = texts_of(next(c for c in jira.comments("OPS-1") if "Timeline (UTC)" in texts_of(c)))
        assert any(t.endswith("resolved") for t in comment) and any("diagnosed (rules" in t for t in comment)
        shown = run_oncall(["inspect", first, "--timeline"], {"NATS_URL": clean_bus})
        assert shown.returncode == 0, shown.stderr
        steps = [STAMP.sub("", line) for line in shown.stdout.splitlines()]
        assert steps[0] == "fired: HighErrorRate on checkout" and steps[-1] == "resolved"
        assert any(s.startswith("diagnosed (rules, P") for s in steps)
        assert "ticket OPS-1" in steps and "diagnosis marked right by On-call" in steps

        # 2. It comes back while OPS-1 is open: said first, and the ticket is OPS-1 again.
        second = post(oncall.url, webhook(fixtures_dir, 2))
        message = wait_for_body(backends, "*Incident diagnosis*", f"#{second}")
        seen = message.splitlines()[2]
        assert seen.startswith(f"🔁 Seen once before; last on 2026-11-24 (#{first}), ticket OPS-1")
        assert "lasted 14 min" in seen
        say(oncall.url, backends, "create jira task", "SM" + "b1" * 16, second)
        updated = wait_for_body(backends, "Jira task updated", f"#{second}")
        assert "OPS-1" in updated and "still open" in updated
        assert len(jira.issues) == 1
        assert any(f"incident #{second}" in " ".join(texts_of(c)) for c in jira.comments("OPS-1"))
        say(oncall.url, backends, "wrong: the cause was a bad pricing deploy", "SM" + "b2" * 16, second)
        wait_for_body(backends, f"the diagnosis of #{second} was wrong; the cause was a bad pricing deploy")
        shown = run_oncall(["inspect", second], {"NATS_URL": clean_bus}).stdout
        assert f"  memory:   Seen once before; last on 2026-11-24 (#{first})" in shown
        assert "  feedback: wrong by On-call at " in shown and "the cause was a bad pricing deploy" in shown
        post(oncall.url, webhook(fixtures_dir, 2, "resolved"))
        wait_for_body(backends, "*Resolved*", f"#{second}")

        # 3. Done two days ago: reopened, with a comment.
        jira.set_status("OPS-1", "Done", datetime.now(UTC) - timedelta(days=2))
        third = post(oncall.url, webhook(fixtures_dir, 3))
        message = wait_for_body(backends, "*Incident diagnosis*", f"#{third}")
        assert "Seen 2 times before" in message and "⚠️ That diagnosis was marked wrong" in message
        say(oncall.url, backends, "create jira task", "SM" + "c1" * 16, third)
        assert "reopened" in wait_for_body(backends, "Jira task updated", f"#{third}")
        assert jira.status("OPS-1") == "To Do" and len(jira.issues) == 1
        post(oncall.url, webhook(fixtures_dir, 3, "resolved"))
        wait_for_body(backends, "*Resolved*", f"#{third}")

        # 4. Done ten days ago: a new ticket, related to the old one.
        jira.set_status("OPS-1", "Done", datetime.now(UTC) - timedelta(days=10))
        fourth = post(oncall.url, webhook(fixtures_dir, 4))
        wait_for_body(backends, "*Incident diagnosis*", f"#{fourth}", "Seen 3 times before")
        say(oncall.url, backends, "create jira task and assign to ravi", "SM" + "d1" * 16, fourth)
        created = wait_for_body(backends, "Jira task created", f"#{fourth}")
        assert "OPS-2" in created and "Linked to the earlier ticket OPS-1" in created
        assert jira.links == [("Relates", "OPS-2", "OPS-1")]
        assert jira.issues[1]["assignee"] == {"accountId": RAVI["accountId"]}

        stats = run_oncall(["stats", "--since", "1d"], {"NATS_URL": clean_bus})
        assert stats.returncode == 0, stats.stderr
        print("\n" + stats.stdout)
        assert ": 4 (3 resolved, 3 (75%) seen before)" in stats.stdout
        assert "by the rules: 4 (100%)" in stats.stdout
        assert "feedback: 1 right, 1 wrong" in stats.stdout and "tickets: 4" in stats.stdout


def test_a_flapping_group_is_said_once_then_summarised(
    clean_bus: str, backends: Backends, fixtures_dir: Path, tmp_path: Path
) -> None:
    settings = backends.settings(clean_bus, model=False) | {
        "ONCALL_FLAP_COUNT": "2",
        "ONCALL_FLAP_WINDOW": "15s",
    }
    with oncall_up(settings, tmp_path) as oncall:
        ids = []
        for n in range(1, 5):
            ids.append(post(oncall.url, webhook(fixtures_dir, n, group="/flappy")))
            if n <= 2:
                wait_for_body(backends, "*Incident diagnosis*", f"#{ids[-1]}")
            post(oncall.url, webhook(fixtures_dir, n, "resolved", group="/flappy"))
            if n <= 2:
                wait_for_body(backends, "*Resolved*", f"#{ids[-1]}")
            time.sleep(0.3)
        flapping = wait_for_body(backends, "*Flapping*", f"#{ids[2]}")
        assert "Fired and resolved 3 times in the last 15 s" in flapping
        summary = wait_for_body(backends, "*Flapping over*", timeout=40)
        assert "It fired 2 time(s) from when it was marked flapping" in summary
        said = bodies(backends)
        assert not any(f"#{ids[3]}" in b for b in said)  # the 4th flap: counted, not said
        assert sum("*Flapping*" in b for b in said) == 1
