"""The fault-injection campaign (issue 15): the five services as `oncall run <service>` processes on
one nats-server, the vendors as fakes, and faults injected where a message could be lost or sent
twice. Each kill point is run a number of times; a run passes when every on-call number got each
message it was owed exactly once. tests/faults runs the short version in CI, bench/faults.py the
long one (`python -m bench.faults`).

Kill points:
  notifier-twilio-send   SIGKILL the notifier while Twilio holds its send (message created, answer pending)
  ticketing-jira-create  SIGKILL ticketing while Jira holds its create
  diagnoser-mid-incident SIGKILL the diagnoser while its logs request is unanswered
  twilio-slow            Twilio answers after the client's timeout (15 s) has passed
  jira-slow-create       Jira answers a create after more than 10 s, its search lagging behind
  nats-restart           the nats-server restarted while alerts and a reply arrive

Every process is started through tests/support/processes.py (a process group of its own) and
ended by this module, also when a run fails: a fault kills only this campaign's own children.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import signal
import string
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
from twilio.request_validator import RequestValidator

from services.contracts import streams
from tests.e2e import scenario
from tests.fakes import FakeGitHub, FakeJira, FakeLogs, FakePrometheus, FakeTwilio
from tests.support.nats_node import RestartableNats
from tests.support.processes import OncallProcess, end_process_group

SERVICES = ("alert_ingest", "tools", "diagnoser", "notifier", "ticketing")
ASHA, RAVI = "+15551230001", "+15551230002"
ON_CALL = (ASHA, RAVI)
STRANGER = "+15559990000"
PUBLIC_BASE_URL = "https://oncall.example.com"
INGEST_TOKEN = "campaign-token"
OUR_NUMBER = "whatsapp:+14155238886"
JIRA_RAVI = {"accountId": "712020:ravi-0001", "displayName": "Ravi Kumar", "active": True}
# How long a silent consumer or sender is given up on: short, so that a killed service's work is
# taken over within seconds (the product's default is 30 s; the logic is the same).
ACK_WAIT_SECONDS = 2
# The Twilio client's timeout is 15 s; the Jira client's 10 s.
TWILIO_SLOW_SECONDS = 17.0
JIRA_SLOW_SECONDS = 12.0
JIRA_SEARCH_LAG_SECONDS = 3.0
WAIT_SECONDS = 120.0
# A new ticket, not a comment on an earlier incident's (the same problem each run: one ticket per
# problem would comment): each request is a create, the call a crash or a slow Jira can cut.
NEW_TICKET = "create a new jira task and assign to ravi"

ALERT = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "alertmanager" / "alertmanager_webhook_real.json").read_text()
)


@dataclass
class Row:
    """One line of the table: runs, passes, duplicates (messages or issues sent twice), losses
    (owed and never sent, or accepted and never processed)."""

    name: str
    runs: int = 0
    passes: int = 0
    duplicates: int = 0
    losses: int = 0
    notes: list[str] = field(default_factory=list)

    def add(self, duplicates: int, losses: int, note: str = "", always: bool = False) -> None:
        """One run; `note` is kept when the run failed, or `always` (figures worth reading)."""
        self.runs += 1
        self.duplicates += duplicates
        self.losses += losses
        if duplicates == 0 and losses == 0:
            self.passes += 1
        if note and (always or duplicates or losses):
            self.notes.append(note)

    @property
    def ok(self) -> bool:
        return self.runs > 0 and self.passes == self.runs and not self.duplicates and not self.losses


def table(rows: list[Row]) -> str:
    head = f"{'row':<28} {'runs':>5} {'passes':>7} {'duplicates':>11} {'losses':>7}  notes"
    lines = [head, "-" * len(head)]
    for row in rows:
        notes = "; ".join(row.notes)[:200]
        lines.append(
            f"{row.name:<28} {row.runs:>5} {row.passes:>7} {row.duplicates:>11} {row.losses:>7}  {notes}"
        )
    return "\n".join(lines)


# --- the deployment ---------------------------------------------------------------------------------


class Deployment:
    """nats-server, the fakes and the five services, each an `oncall run` process."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.nats = RestartableNats(workdir / "nats")
        self.twilio = FakeTwilio()
        self.jira = FakeJira(users=[JIRA_RAVI])
        self.logs = FakeLogs(scenario.log_lines())
        self.prometheus = FakePrometheus(scenario.PROMETHEUS_VALUES)
        self.github = FakeGitHub(
            owner="acme", repo="shop", files={scenario.BUGGY_FILE: scenario.PAYMENTS_SOURCE}
        )
        self.processes: dict[str, OncallProcess] = {}
        self._http = httpx.Client(timeout=30)

    def settings(self) -> dict[str, str]:
        return {
            "NATS_URL": self.nats.url,
            "ONCALL_ACK_WAIT_SECONDS": str(ACK_WAIT_SECONDS),
            "ONCALL_DATA_DIR": str(self.workdir / "data"),
            "INGEST_TOKEN": INGEST_TOKEN,
            "LB_URL": self.logs.url,
            "PROM_URL": self.prometheus.url,
            "GITHUB_API_URL": self.github.url,
            "GITHUB_TOKEN": self.github.token,
            "GITHUB_OWNER": self.github.owner,
            "GITHUB_REPO": self.github.repo,
            "JIRA_URL": self.jira.url,
            "JIRA_EMAIL": self.jira.email,
            "JIRA_API_TOKEN": self.jira.api_token,
            "JIRA_PROJECT_KEY": self.jira.project_key,
            "TWILIO_ACCOUNT_SID": self.twilio.account_sid,
            "TWILIO_AUTH_TOKEN": self.twilio.auth_token,
            "TWILIO_WHATSAPP_NUMBER": OUR_NUMBER,
            "TWILIO_API_BASE_URL": self.twilio.url,
            "USER_WHATSAPP_NUMBER": ",".join(f"whatsapp:{n}" for n in ON_CALL),
            "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
            "ONCALL_LOG_LEVEL": os.environ.get("FAULTS_LOG_LEVEL", "WARNING"),
        }

    def __enter__(self) -> Deployment:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for fake in (self.twilio, self.jira, self.logs, self.prometheus, self.github):
            fake.start()
        self.nats.start()
        try:
            for service in SERVICES:
                self.start(service)
            for service in SERVICES:
                self.processes[service].wait_ready(60)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for process in list(self.processes.values()):
            with suppress(Exception):
                process.stop()
        self.processes.clear()
        self.nats.stop()
        for fake in (self.twilio, self.jira, self.logs, self.prometheus, self.github):
            fake.stop()
        self._http.close()

    def start(self, service: str) -> None:
        log_dir = self.workdir / "logs" / service
        log_dir.mkdir(parents=True, exist_ok=True)
        self.processes[service] = OncallProcess(["run", service], self.settings(), log_dir)

    def kill(self, service: str) -> None:
        """SIGKILL: no drain, no ack, no lease given back, as a crash or an OOM kill."""
        process = self.processes.pop(service)
        with suppress(ProcessLookupError):
            os.killpg(process.proc.pid, signal.SIGKILL)
        end_process_group(process.proc)
        process.stop()

    def restart(self, service: str) -> None:
        self.start(service)
        self.processes[service].wait_ready(60)

    def url(self, service: str) -> str:
        return self.processes[service].url

    # --- what a user's systems send ---

    def post_alert(
        self, group: str, alerts: int = 1, start: str = "2026-11-24T06:02:41.389Z"
    ) -> httpx.Response:
        return self._http.post(
            self.url("alert_ingest") + "/alerts",
            content=json.dumps(alert_webhook(group, alerts, start)),
            headers={"Authorization": f"Bearer {INGEST_TOKEN}", "Content-Type": "application/json"},
        )

    def new_incident(self, group: str | None = None) -> str:
        response = self.post_alert(group or uuid.uuid4().hex[:10])
        response.raise_for_status()
        return str(response.json()["incident_ids"][0])

    def post_reply(self, sender: str, body: str, sid: str | None = None) -> httpx.Response:
        form = whatsapp_form(sender, body, sid or "SM" + uuid.uuid4().hex, self.twilio.account_sid)
        return self.post_form(form)

    def post_form(self, form: dict[str, str]) -> httpx.Response:
        signature = RequestValidator(self.twilio.auth_token).compute_signature(
            PUBLIC_BASE_URL + "/webhook/twilio", form
        )
        return self._http.post(
            self.url("notifier") + "/webhook/twilio", data=form, headers={"X-Twilio-Signature": signature}
        )

    # --- what came out ---

    def messages_about(self, incident: str) -> list[dict[str, str]]:
        return [m for m in self.twilio.messages if f"#{incident}" in m.get("Body", "")]

    def wait_until(self, condition: Callable[[], bool], timeout: float = WAIT_SECONDS) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.05)
        return False

    def wait_drained(self, timeout: float = WAIT_SECONDS) -> bool:
        """Every durable consumer has nothing pending nor unacknowledged: all work is done."""
        return self.wait_until(lambda: asyncio.run(_drained(self.nats.url)), timeout)


async def _drained(url: str) -> bool:
    try:
        nc = await nats.connect(url, connect_timeout=2, allow_reconnect=False)
    except Exception:
        return False
    try:
        js = nc.jetstream()
        for stream in (streams.ALERTS.name, streams.EVENTS.name):
            for consumer in await js.consumers_info(stream):
                if consumer.num_pending or consumer.num_ack_pending:
                    return False
        return True
    except Exception:
        return False
    finally:
        await nc.close()


async def _stream_messages(url: str, stream: str) -> int:
    nc = await nats.connect(url)
    try:
        return int((await nc.jetstream().stream_info(stream)).state.messages)
    finally:
        await nc.close()


def alert_webhook(group: str, alerts: int = 1, start: str = "2026-11-24T06:02:41.389Z") -> dict[str, Any]:
    """The real Alertmanager webhook, as group `group` with `alerts` alerts (one per instance)."""
    body = json.loads(json.dumps(ALERT))
    template = body["alerts"][0]
    body["alerts"] = [
        {
            **template,
            "labels": {**template["labels"], "group": group, "instance": f"checkout-{i}"},
            "fingerprint": hashlib.sha256(f"{group}/{i}".encode()).hexdigest()[:16],
            "startsAt": start,
        }
        for i in range(alerts)
    ]
    body["groupLabels"] = {**body["groupLabels"], "group": group}
    body["commonLabels"] = {**body["commonLabels"], "group": group}
    body["groupKey"] = f'{{}}:{{alertname="HighErrorRate", group="{group}", service="checkout"}}'
    return body


def whatsapp_form(sender: str, body: str, sid: str, account_sid: str) -> dict[str, str]:
    return {
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ProfileName": "On-call",
        "MessageType": "text",
        "SmsSid": sid,
        "WaId": sender.lstrip("+"),
        "SmsStatus": "received",
        "Body": body,
        "To": OUR_NUMBER,
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": account_sid,
        "From": f"whatsapp:{sender}",
        "ApiVersion": "2010-04-01",
    }


# --- judging a run ------------------------------------------------------------------------------------


def owed(messages: list[dict[str, str]], kind: Callable[[str], bool]) -> tuple[int, int]:
    """(duplicates, losses) among `messages` of one kind: each on-call number must have each
    distinct body (a part of a notification) exactly once."""
    chosen = [m for m in messages if kind(m.get("Body", ""))]
    per_number = Counter((m["To"], m["Body"]) for m in chosen)
    duplicates = sum(n - 1 for n in per_number.values())
    bodies = {m["Body"] for m in chosen}
    losses = sum(1 for number in ON_CALL for body in bodies if (f"whatsapp:{number}", body) not in per_number)
    if not bodies:
        losses = len(ON_CALL)
    return duplicates, losses


DIAGNOSIS_HEADER = "🚨 *Incident diagnosis*"


def is_diagnosis(body: str) -> bool:
    """A part of a diagnosis (a long one is split; the later parts carry the tag, not the header)."""
    return not body.startswith(("🎫", "↩️", "⚠️", "✅"))


def is_ticket(body: str) -> bool:
    return body.startswith("🎫")


def diagnosed_everywhere(deployment: Deployment, incident: str) -> Callable[[], bool]:
    def done() -> bool:
        got = {m["To"] for m in deployment.messages_about(incident) if DIAGNOSIS_HEADER in m.get("Body", "")}
        return got >= {f"whatsapp:{n}" for n in ON_CALL}

    return done


# --- kill points ------------------------------------------------------------------------------------


def notifier_during_twilio_send(deployment: Deployment, row: Row) -> None:
    deployment.twilio.create_answer_seconds = 2.0
    try:
        incident = deployment.new_incident()
        arrived = deployment.wait_until(lambda: bool(deployment.messages_about(incident)))
        deployment.kill("notifier")  # Twilio has the message; its answer is pending
        deployment.restart("notifier")
    finally:
        deployment.twilio.create_answer_seconds = 0.0
    finished = deployment.wait_until(diagnosed_everywhere(deployment, incident)) and deployment.wait_drained()
    duplicates, losses = owed(deployment.messages_about(incident), is_diagnosis)
    row.add(duplicates, losses + (not arrived) + (not finished), f"#{incident}")


def ticketing_during_jira_create(deployment: Deployment, row: Row) -> None:
    incident = deployment.new_incident()
    deployment.wait_until(diagnosed_everywhere(deployment, incident))
    label = f"oncall-incident-{incident}"
    deployment.jira.create_answer_seconds = 2.0
    try:
        asked = deployment.post_reply(ASHA, f"#{incident} {NEW_TICKET}")
        created = deployment.wait_until(
            lambda: any(label in i.get("labels", []) for i in deployment.jira.issues)
        )
        deployment.kill("ticketing")  # Jira made the issue; its answer is pending
        deployment.restart("ticketing")
    finally:
        deployment.jira.create_answer_seconds = 0.0
    told = deployment.wait_until(lambda: _ticket_told(deployment, incident)) and deployment.wait_drained()
    issues = sum(label in i.get("labels", []) for i in deployment.jira.issues)
    duplicates, losses = owed(deployment.messages_about(incident), is_ticket)
    lost = losses + (asked.status_code != 200) + (not created) + (not told) + (issues == 0)
    row.add(duplicates + max(0, issues - 1), lost, f"#{incident}: {issues} issues")


def _ticket_told(deployment: Deployment, incident: str) -> bool:
    got = {m["To"] for m in deployment.messages_about(incident) if is_ticket(m.get("Body", ""))}
    return got >= {f"whatsapp:{n}" for n in ON_CALL}


def diagnoser_mid_incident(deployment: Deployment, row: Row) -> None:
    before = len(deployment.logs.arrivals)
    deployment.logs.delay_seconds = 2.0
    try:
        incident = deployment.new_incident()
        asked = deployment.wait_until(lambda: len(deployment.logs.arrivals) > before)
        deployment.kill("diagnoser")  # the investigation is waiting for its logs
        deployment.restart("diagnoser")
    finally:
        deployment.logs.delay_seconds = 0.0
    finished = deployment.wait_until(diagnosed_everywhere(deployment, incident)) and deployment.wait_drained()
    duplicates, losses = owed(deployment.messages_about(incident), is_diagnosis)
    named = all(
        scenario.BUGGY_FILE in m["Body"]
        for m in deployment.messages_about(incident)
        if is_diagnosis(m["Body"])
    )
    row.add(
        duplicates,
        losses + (not asked) + (not finished),
        f"#{incident}" + ("" if named else " (file not named)"),
    )


def twilio_slow(deployment: Deployment, row: Row, runs: int) -> None:
    """`runs` incidents at once, the first send of each answered later than the client waits."""
    deployment.twilio.create_answer_seconds = TWILIO_SLOW_SECONDS
    deployment.twilio.slow_creates = runs  # one per run: each incident's first send
    try:
        incidents = [deployment.new_incident() for _ in range(runs)]
        deployment.wait_until(lambda: all(diagnosed_everywhere(deployment, i)() for i in incidents))
        finished = deployment.wait_drained(timeout=WAIT_SECONDS * 2)
    finally:
        deployment.twilio.create_answer_seconds = 0.0
        deployment.twilio.slow_creates = None
    for incident in incidents:
        duplicates, losses = owed(deployment.messages_about(incident), is_diagnosis)
        row.add(duplicates, losses + (not finished), f"#{incident}")


def jira_slow_create(deployment: Deployment, row: Row, runs: int) -> None:
    """`runs` ticket requests at once, every create answered after the client gave up, and the
    label search finding a new issue only seconds later."""
    incidents = [deployment.new_incident() for _ in range(runs)]
    deployment.wait_until(lambda: all(diagnosed_everywhere(deployment, i)() for i in incidents))
    deployment.jira.create_answer_seconds = JIRA_SLOW_SECONDS
    deployment.jira.search_lag_seconds = JIRA_SEARCH_LAG_SECONDS
    try:
        asked = [deployment.post_reply(ASHA, f"#{i} {NEW_TICKET}") for i in incidents]
        deployment.wait_until(lambda: all(_ticket_told(deployment, i) for i in incidents), WAIT_SECONDS * 2)
        finished = deployment.wait_drained(timeout=WAIT_SECONDS * 2)
    finally:
        deployment.jira.create_answer_seconds = 0.0
        deployment.jira.search_lag_seconds = 0.0
    for incident, answer in zip(incidents, asked, strict=True):
        label = f"oncall-incident-{incident}"
        issues = sum(label in i.get("labels", []) for i in deployment.jira.issues)
        duplicates, losses = owed(deployment.messages_about(incident), is_ticket)
        lost = losses + (answer.status_code != 200) + (not finished) + (issues == 0)
        row.add(duplicates + max(0, issues - 1), lost, f"#{incident}: {issues} issues")


def nats_restart(deployment: Deployment, row: Row, down_seconds: float = 2.0) -> None:
    """Alerts posted throughout a nats-server restart, and a reply sent while it is down, retried
    as Twilio would (until 200): every accepted alert becomes one diagnosis per number, the reply
    one answer per number."""
    accepted: list[str] = []
    statuses: Counter[int] = Counter()
    stop = False

    def keep_posting() -> None:
        while not stop:
            try:
                response = deployment.post_alert(uuid.uuid4().hex[:10])
            except httpx.HTTPError:
                statuses[0] += 1
                continue
            statuses[response.status_code] += 1
            if response.status_code == 202:
                accepted.append(str(response.json()["incident_ids"][0]))
            time.sleep(0.1)

    token = uuid.uuid4().hex[:8]
    sid = "SM" + uuid.uuid4().hex
    reply_statuses: list[int] = []

    def reply_taken() -> bool:  # as Twilio retries (connection overrides): until one is taken
        try:
            reply_statuses.append(deployment.post_reply(ASHA, f"status {token}", sid).status_code)
        except httpx.HTTPError:
            reply_statuses.append(0)
        return reply_statuses[-1] == 200

    with ThreadPoolExecutor(1) as pool:
        posting = pool.submit(keep_posting)
        time.sleep(0.5)
        deployment.nats.stop(kill=True)
        reply_taken()  # while NATS is down
        time.sleep(down_seconds)
        deployment.nats.start()
        deployment.wait_until(reply_taken, 30)
        time.sleep(1.0)
        stop = True
        posting.result()
    deployment.wait_until(lambda: all(diagnosed_everywhere(deployment, i)() for i in accepted))
    answered = deployment.wait_until(lambda: _answered(deployment, token) >= len(ON_CALL), 60)
    finished = deployment.wait_drained()
    duplicates = losses = 0
    for incident in accepted:
        d, lost = owed(deployment.messages_about(incident), is_diagnosis)
        duplicates, losses = duplicates + d, losses + lost
    answers = _answered(deployment, token)
    duplicates += max(0, answers - len(ON_CALL))
    unexpected = sum(n for status, n in statuses.items() if status not in (202, 503, 0))
    lost = losses + (not finished) + unexpected + (not answered) + (reply_statuses[-1] != 200)
    refused = reply_statuses.count(503)
    reply = f"reply: {refused}x 503, then {reply_statuses[-1]}"
    note = f"{len(accepted)} accepted, statuses {dict(statuses)}; {reply}"
    row.add(duplicates, lost, note, always=True)


def _answered(deployment: Deployment, token: str) -> int:
    return sum(token in m.get("Body", "") for m in deployment.twilio.messages)


# --- fuzzing -------------------------------------------------------------------------------------------


def fuzz(deployment: Deployment, row: Row, requests: int, seed: int = 15) -> None:
    """Mutated webhooks to /alerts and signed forms to /webhook/twilio: never a 5xx, and exactly
    what was accepted (202 not duplicate; 200 from an on-call number) reached the bus."""
    rng = random.Random(seed)
    alerts_before = asyncio.run(_stream_messages(deployment.nats.url, streams.ALERTS.name))
    statuses: Counter[int] = Counter()
    accepted_alerts = 0
    requests_made = [_fuzzed(rng, n, deployment.twilio.account_sid) for n in range(requests)]

    def send(made: tuple[str, Any]) -> None:
        nonlocal accepted_alerts
        kind, payload = made
        if kind == "reply":
            statuses[deployment.post_form(payload).status_code] += 1
            return
        response = deployment._http.post(
            deployment.url("alert_ingest") + "/alerts",
            content=payload,
            headers={"Authorization": f"Bearer {INGEST_TOKEN}", "Content-Type": "application/json"},
        )
        statuses[response.status_code] += 1
        if response.status_code == 202 and not response.json().get("duplicate"):
            accepted_alerts += 1

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(send, requests_made))
    published = asyncio.run(_stream_messages(deployment.nats.url, streams.ALERTS.name)) - alerts_before
    server_errors = sum(count for status, count in statuses.items() if status >= 500)
    row.add(
        0,
        server_errors + abs(published - accepted_alerts),
        f"statuses {dict(sorted(statuses.items()))}, {accepted_alerts} accepted, {published} published",
        always=True,
    )


def _fuzzed(rng: random.Random, n: int, account_sid: str) -> tuple[str, Any]:
    """One request: a signed reply form (one in four) or an alert webhook's bytes."""
    if n % 4 == 3:
        sender = rng.choice([*ON_CALL, STRANGER])
        form = whatsapp_form(sender, _noise(rng), "SM" + uuid.uuid4().hex, account_sid)
        for key in rng.sample(sorted(form), rng.randint(0, 2)):
            form[key] = _noise(rng)
        form["Body"] = "#zzzz " + form.get("Body", "")  # never an incident: answered, nothing done
        return "reply", form
    body, raw = _mutated_alert(rng, n)
    return "alert", raw if raw is not None else json.dumps(body).encode()


def _noise(rng: random.Random) -> str:
    alphabet = string.printable + "éü漢字🚨\u0000\u202e"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))


def _mutated_alert(rng: random.Random, n: int) -> tuple[dict[str, Any], bytes | None]:
    # A handful of groups: the valid ones land in a few incidents instead of thousands.
    body = alert_webhook(f"fuzz{rng.randint(0, 4)}", rng.randint(1, 3))
    body["alerts"][0]["annotations"] = {**body["alerts"][0]["annotations"], "n": str(n)}
    choice = rng.randint(0, 9)
    if choice == 0:
        return body, json.dumps(body).encode()[: rng.randint(0, 200)]  # cut short
    if choice == 1:
        return body, bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
    if choice == 2:
        body[rng.choice(sorted(body))] = rng.choice([None, 1, [], {}, _noise(rng)])
    elif choice == 3:
        alert = body["alerts"][0]
        alert[rng.choice(sorted(alert))] = rng.choice([None, 1, [], {}, _noise(rng)])
    elif choice == 4:
        body["alerts"][0]["labels"][_noise(rng) or "x"] = _noise(rng)
    elif choice == 5:
        body["version"] = rng.choice(["3", "5", 4, None])
    elif choice == 6:
        body["alerts"][0]["status"] = rng.choice(["resolved", "firing", "weird", ""])
    return body, None


# --- the storm -------------------------------------------------------------------------------------


@dataclass
class StormFigures:
    alerts: int
    groups: int
    seconds: float
    incidents: int
    investigations: int
    diagnoses_published: float
    messages: int


def storm(deployment: Deployment, row: Row, alerts: int, groups: int, workers: int = 16) -> StormFigures:
    """`alerts` alerts in `groups` groups, each group's webhooks growing one alert at a time (as
    Alertmanager sends them), posted concurrently in shuffled order: one incident, one
    investigation and one diagnosis per number per group."""
    per_group = alerts // groups
    # How many log requests one investigation makes, measured on a quiet incident first.
    deployment.wait_drained()
    quiet = len(deployment.logs.arrivals)
    calibration = deployment.new_incident()
    deployment.wait_until(diagnosed_everywhere(deployment, calibration))
    deployment.wait_drained()
    per_investigation = max(1, len(deployment.logs.arrivals) - quiet)
    names = [f"storm-{uuid.uuid4().hex[:6]}-{g}" for g in range(groups)]
    posts = [(name, k) for name in names for k in range(1, per_group + 1)]
    random.Random(9).shuffle(posts)
    logs_before = len(deployment.logs.arrivals)
    diagnoses_before = _diagnoses_total(deployment)
    started = time.monotonic()
    incidents: dict[str, set[str]] = {name: set() for name in names}
    statuses: Counter[int] = Counter()

    def post(item: tuple[str, int]) -> None:
        name, count = item
        for _ in range(20):  # as Alertmanager: a 503 is retried
            response = deployment.post_alert(name, count)
            statuses[response.status_code] += 1
            if response.status_code == 202:
                incidents[name].add(str(response.json()["incident_ids"][0]))
                return
            time.sleep(0.5)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(post, posts))
    ids = set().union(*incidents.values())
    deployment.wait_until(lambda: all(diagnosed_everywhere(deployment, i)() for i in ids), WAIT_SECONDS * 3)
    finished = deployment.wait_drained(timeout=WAIT_SECONDS * 2)
    seconds = time.monotonic() - started
    investigations = round((len(deployment.logs.arrivals) - logs_before) / per_investigation)
    published = _diagnoses_total(deployment) - diagnoses_before
    duplicates = losses = messages = 0
    for incident in ids:
        about = [m for m in deployment.messages_about(incident) if is_diagnosis(m["Body"])]
        messages += len(about)
        d, lost = owed(about, lambda _: True)
        duplicates, losses = duplicates + d, losses + lost
    extra = max(0, len(ids) - groups) + max(0, investigations - groups) + max(0, int(published) - groups)
    row.add(
        duplicates + extra,
        losses + max(0, groups - len(ids)) + (not finished),
        f"{len(ids)} incidents, {investigations} investigations, {published:.0f} published, "
        f"statuses {dict(statuses)}",
        always=True,
    )
    return StormFigures(alerts, groups, seconds, len(ids), investigations, published, messages)


def _diagnoses_total(deployment: Deployment) -> float:
    text = httpx.get(deployment.url("diagnoser") + "/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("oncall_diagnoses_total{")
    )


# --- the whole campaign ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    kill_runs: int  # each kill point
    fuzz_requests: int
    storm_alerts: int
    storm_groups: int = 100
    nats_restarts: int = 3


SHORT = Plan(kill_runs=3, fuzz_requests=2000, storm_alerts=1000, storm_groups=100, nats_restarts=3)
LONG = Plan(kill_runs=20, fuzz_requests=10_000, storm_alerts=10_000, storm_groups=100, nats_restarts=10)


@contextmanager
def deployed(workdir: Path) -> Iterator[Deployment]:
    with Deployment(workdir) as deployment:
        yield deployment


def run(
    plan: Plan, workdir: Path, only: set[str] | None = None, progress: Callable[[str], None] = print
) -> tuple[list[Row], StormFigures | None]:
    rows: list[Row] = []
    figures = None

    def wanted(name: str) -> bool:
        return only is None or name in only

    with deployed(workdir) as deployment:
        kill_points: list[tuple[str, Callable[[Deployment, Row], None]]] = [
            ("notifier-twilio-send", notifier_during_twilio_send),
            ("ticketing-jira-create", ticketing_during_jira_create),
            ("diagnoser-mid-incident", diagnoser_mid_incident),
        ]
        for name, point in kill_points:
            if not wanted(name):
                continue
            row = Row(name)
            for _ in range(plan.kill_runs):
                point(deployment, row)
            rows.append(row)
            progress(f"{name}: {row.passes}/{row.runs}")
        if wanted("twilio-slow"):
            row = Row("twilio-slow")
            twilio_slow(deployment, row, plan.kill_runs)
            rows.append(row)
            progress(f"twilio-slow: {row.passes}/{row.runs}")
        if wanted("jira-slow-create"):
            row = Row("jira-slow-create")
            jira_slow_create(deployment, row, plan.kill_runs)
            rows.append(row)
            progress(f"jira-slow-create: {row.passes}/{row.runs}")
        if wanted("nats-restart"):
            row = Row("nats-restart")
            for _ in range(plan.nats_restarts):
                nats_restart(deployment, row)
            rows.append(row)
            progress(f"nats-restart: {row.passes}/{row.runs}")
        if wanted("fuzz"):
            row = Row(f"fuzz ({plan.fuzz_requests} requests)")
            fuzz(deployment, row, plan.fuzz_requests)
            rows.append(row)
            progress(f"fuzz: {row.passes}/{row.runs}")
        if wanted("storm"):
            row = Row(f"storm ({plan.storm_alerts} alerts)")
            figures = storm(deployment, row, plan.storm_alerts, plan.storm_groups)
            rows.append(row)
            progress(f"storm: {row.passes}/{row.runs}")
    return rows, figures
