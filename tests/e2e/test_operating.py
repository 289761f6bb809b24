"""Operating the agent from the bus: raw CLI publishes, replay without duplicates, inspect."""

import asyncio
import json
from pathlib import Path

import nats
from support.processes import oncall_up, run_oncall

from services.contracts import subjects
from services.contracts.models import AlertGroup, incident_id_for

SETTINGS = {"INGEST_TOKEN": "t", "USER_WHATSAPP_NUMBER": "+15551230001"}


def diagnoses_printed(stdout: str) -> int:
    return stdout.count("Incident diagnosis")


async def publish_raw(url: str, subject: str, body: bytes) -> None:
    """What `nats pub <subject> --file webhook.json` does: plain bytes, no headers at all."""
    nc = await nats.connect(url)
    await nc.jetstream().publish(subject, body)
    await nc.close()


def test_a_raw_webhook_published_with_the_cli_is_diagnosed_and_replays_send_nothing_twice(
    clean_bus: str, fixtures_dir: Path, tmp_path: Path
) -> None:
    raw = (fixtures_dir / "alertmanager_webhook_real.json").read_bytes()
    group = AlertGroup.model_validate_json(raw)
    incident = incident_id_for(group.group_key, group.alerts[0].starts_at)
    env = {**SETTINGS, "NATS_URL": clean_bus}
    with oncall_up(env, tmp_path) as oncall:
        asyncio.run(publish_raw(clean_bus, subjects.ALERTS_FIRING, raw))
        oncall.wait_for_output("Incident diagnosis", timeout=30)
        assert f"#{incident}" in oncall.stdout

        listed = run_oncall(["replay", "--seq", "1", "--dry-run"], env)
        assert listed.returncode == 0, listed.stderr
        assert "ONCALL_ALERTS #1" in listed.stdout and "would re-publish 1 message" in listed.stdout

        again = run_oncall(["replay", "--incident", incident], {"NATS_URL": clean_bus})
        assert "re-published 1 message" in again.stdout, again.stdout + again.stderr
        forced = run_oncall(["replay", "--seq", "1", "--force"], {"NATS_URL": clean_bus})
        assert forced.returncode == 0
        assert asyncio.run(_wait(lambda: diagnoses_printed(oncall.stdout) >= 2, 20)), oncall.stdout[-2000:]
        assert diagnoses_printed(oncall.stdout) == 2  # the plain replay sent nothing; --force one more

        shown = run_oncall(["inspect", incident], {"NATS_URL": clean_bus})
        assert shown.returncode == 0, shown.stderr
        assert f"incident #{incident}: HighErrorRate on checkout [diagnosed]" in shown.stdout
        assert "diagnosis (rev 2, rules" in shown.stdout
        raw_json = json.loads(run_oncall(["inspect", incident, "--json"], {"NATS_URL": clean_bus}).stdout)
        assert raw_json["diagnosis_revision"] == 2
        assert run_oncall(["inspect", "nope00"], {"NATS_URL": clean_bus}).returncode == 1


def test_a_message_that_cannot_be_parsed_is_dead_lettered_not_lost(clean_bus: str, tmp_path: Path) -> None:
    env = {**SETTINGS, "NATS_URL": clean_bus}
    with oncall_up(env, tmp_path):
        asyncio.run(publish_raw(clean_bus, subjects.ALERTS_FIRING, b'{"this is": "not an alert group"}'))

        async def dead_letter() -> bytes:
            nc = await nats.connect(clean_bus)
            sub = await nc.jetstream().subscribe(subjects.dlq_subject("ONCALL_ALERTS"), ordered_consumer=True)
            msg = await sub.next_msg(timeout=15)
            await nc.close()
            assert "invalid AlertGroup" in (msg.headers or {}).get("Oncall-Dlq-Reason", "")
            return msg.data

        assert asyncio.run(dead_letter()) == b'{"this is": "not an alert group"}'


async def _wait(predicate: object, seconds: float) -> bool:
    for _ in range(int(seconds * 10)):
        if predicate():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.1)
    return False


def test_dead_letters_are_listed_with_their_reason_and_replayed_to_their_original_subject(
    clean_bus: str, tmp_path: Path
) -> None:
    env = {**SETTINGS, "NATS_URL": clean_bus}
    with oncall_up(env, tmp_path):
        # Empty: the dead-letter stream's normal state.
        empty = run_oncall(["replay", "--stream", "ONCALL_DLQ", "--dry-run"], env)
        assert empty.returncode == 0, empty.stderr
        assert "would re-publish 0 message(s)" in empty.stdout and "Traceback" not in empty.stderr

        asyncio.run(publish_raw(clean_bus, subjects.ALERTS_FIRING, b'{"this is": "not an alert group"}'))
        listed = ""
        for _ in range(100):
            listed = run_oncall(["replay", "--stream", "ONCALL_DLQ", "--dry-run"], env).stdout
            if "would re-publish 1 message" in listed:
                break
        assert "-> oncall.alerts.firing" in listed and "reason='invalid AlertGroup" in listed, listed

        replayed = run_oncall(["replay", "--stream", "ONCALL_DLQ"], env)
        assert "re-published 1 message" in replayed.stdout, replayed.stdout + replayed.stderr
        alerts = run_oncall(["replay", "--dry-run"], env).stdout
        # The original, and the replay on the same subject it failed on (not back into ONCALL_DLQ).
        assert alerts.count("ONCALL_ALERTS #") == 2 and "would re-publish 2" in alerts, alerts


def test_a_forced_replay_of_an_incident_gives_exactly_one_new_diagnosis(
    clean_bus: str, fixtures_dir: Path, tmp_path: Path
) -> None:
    raw = (fixtures_dir / "alertmanager_webhook_real.json").read_bytes()
    group = AlertGroup.model_validate_json(raw)
    incident = incident_id_for(group.group_key, group.alerts[0].starts_at)
    env = {**SETTINGS, "NATS_URL": clean_bus}
    with oncall_up(env, tmp_path) as oncall:
        for _ in range(3):  # Alertmanager re-sending the group: three stored messages, one incident
            asyncio.run(publish_raw(clean_bus, subjects.ALERTS_FIRING, raw))
        oncall.wait_for_output("Incident diagnosis", timeout=30)
        forced = run_oncall(["replay", "--incident", incident, "--force"], env)
        assert "re-published 3 message(s) with force" in forced.stdout, forced.stdout + forced.stderr
        assert asyncio.run(_wait(lambda: diagnoses_printed(oncall.stdout) >= 2, 20)), oncall.stdout[-2000:]
        asyncio.run(asyncio.sleep(3))  # time for any further (wrong) diagnosis to show up
        assert diagnoses_printed(oncall.stdout) == 2
