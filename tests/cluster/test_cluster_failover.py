"""A NATS cluster without Kubernetes: what the manifests deploy, on loopback.

Three clustered nats-servers, streams and buckets with 3 replicas, two replicas of each of the
five services started as `oncall run <service>`. While an incident is being investigated, the
diagnoser replica handling it and one NATS server are killed (SIGKILL): the other diagnoser
replica gets the alert group again, the incident completes, and the on-call person receives
exactly one WhatsApp message.
"""

import asyncio
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from e2e import scenario
from fakes import FakeGitHub, FakeLogs, FakePrometheus, FakeTwilio
from fakes.base import RecordedRequest, Response
from nats_cluster import NatsCluster
from support.processes import OncallProcess

from services.contracts import consumers, streams, subjects
from services.contracts.models import Conversation
from services.runtime.service import service_names

ON_CALL = "+15551230001"
SENDER = "whatsapp:+14155238886"
PUBLIC_BASE_URL = "https://oncall.example.com"
INGEST_TOKEN = "cluster-s3cret"
REPLICAS = 2
JS_REPLICAS = 3
LOGS_DELAY_SECONDS = 2.0  # the investigation is "in flight" while the logs backend thinks
ACK_WAIT_SECONDS = 5  # ONCALL_ACK_WAIT_SECONDS (proposed): how long a dead replica keeps its message
MAX_ACK_WAIT_SECONDS = 30.0  # beyond this a lost replica delays the page too long (and this test)
AFTER_REDELIVERY_SECONDS = 25.0  # a second investigation, a NATS failover, a WhatsApp send
GRACE_SECONDS = 5.0  # no second message afterwards
FIRING_CONSUMER = consumers.DIAGNOSER_ALERTS_FIRING

pytestmark = [
    pytest.mark.timeout(90),
]


class SlowLogs(FakeLogs):
    """The load balancer's log endpoint, slow to answer; counts requests as they arrive (the
    base class records a request only once it has been answered)."""

    def __init__(self, lines: Sequence[dict[str, Any]], seconds: float) -> None:
        super().__init__(lines)
        self.seconds = seconds
        self._arrived = 0
        self._arrivals_lock = threading.Lock()

    @property
    def arrived(self) -> int:
        with self._arrivals_lock:
            return self._arrived

    def handle(self, req: RecordedRequest) -> Response:
        with self._arrivals_lock:
            self._arrived += 1
        time.sleep(self.seconds)
        return super().handle(req)


@dataclass
class Backends:
    logs: SlowLogs
    prometheus: FakePrometheus
    github: FakeGitHub
    twilio: FakeTwilio

    def settings(self, nats_url: str) -> dict[str, str]:
        """Rules only (no OpenAI settings), one on-call number."""
        return {
            "NATS_URL": nats_url,
            "ONCALL_JS_REPLICAS": str(JS_REPLICAS),
            "ONCALL_ACK_WAIT_SECONDS": str(ACK_WAIT_SECONDS),
            "ONCALL_LOG_LEVEL": "INFO",
            "INGEST_TOKEN": INGEST_TOKEN,
            "LB_URL": self.logs.url,
            "PROM_URL": self.prometheus.url,
            "GITHUB_API_URL": self.github.url,
            "GITHUB_TOKEN": self.github.token,
            "GITHUB_OWNER": self.github.owner,
            "GITHUB_REPO": self.github.repo,
            "GITHUB_REF": self.github.ref,
            "TWILIO_ACCOUNT_SID": self.twilio.account_sid,
            "TWILIO_AUTH_TOKEN": self.twilio.auth_token,
            "TWILIO_WHATSAPP_NUMBER": SENDER,
            "TWILIO_API_BASE_URL": self.twilio.url,
            "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
            "USER_WHATSAPP_NUMBER": f"whatsapp:{ON_CALL}",
        }


@dataclass
class Timeline:
    """What happened when, in seconds since the alert was posted; printed with any failure."""

    start: float = field(default_factory=time.monotonic)
    events: list[tuple[float, str]] = field(default_factory=list)

    def mark(self, what: str) -> float:
        at = time.monotonic()
        self.events.append((at - self.start, what))
        print(f"[cluster] +{at - self.start:6.2f}s {what}")
        return at

    def __str__(self) -> str:
        return "\n".join(f"  +{at:6.2f}s {what}" for at, what in self.events)


@dataclass
class Deployment:
    cluster: NatsCluster
    backends: Backends
    replicas: dict[str, list[OncallProcess]]

    def logs(self) -> str:
        parts = [self.cluster.logs()]
        for service, processes in self.replicas.items():
            for i, process in enumerate(processes):
                parts.append(f"--- {service}[{i}] pid {process.proc.pid} ---\n{process.stderr[-1500:]}")
        return "\n".join(parts)


@pytest.fixture
def backends() -> Iterator[Backends]:
    files = {
        scenario.BUGGY_FILE: scenario.PAYMENTS_SOURCE,
        "checkout/api.py": "def create_order():\n    pass\n",
    }
    servers = Backends(
        logs=SlowLogs(scenario.log_lines(), seconds=LOGS_DELAY_SECONDS),
        prometheus=FakePrometheus(scenario.PROMETHEUS_VALUES),
        github=FakeGitHub(owner="acme", repo="shop", files=files),
        twilio=FakeTwilio(),
    )
    for server in vars(servers).values():
        server.start()
    yield servers
    for server in vars(servers).values():
        server.stop()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    with NatsCluster(tmp_path / "nats", size=3) as started:
        yield started


def stop_all(processes: list[OncallProcess]) -> None:
    """SIGTERM to every replica first (they stop side by side), then wait for each by its pid."""
    for process in processes:
        if process.proc.poll() is None:
            process.proc.terminate()
    for process in processes:
        process.stop()


@pytest.fixture
def deployment(cluster: NatsCluster, backends: Backends, tmp_path: Path) -> Iterator[Deployment]:
    """Two replicas of each service, started in waves as a rollout brings them up: first the one
    that declares the streams and buckets, then a first replica of each other service (each
    creates its durable consumers), then the second replicas.

    Not all ten at once: on a fresh cluster a replica's `broker.start()` (nats-py `pull_subscribe`
    -> CONSUMER.INFO) can time out on a durable its twin has just created and that has no leader
    yet, and `oncall run` exits with nats.errors.TimeoutError. On Kubernetes the pod restarts;
    that cold-start race is not what this test is about."""
    replicas: dict[str, list[OncallProcess]] = {service: [] for service in service_names()}
    started: list[OncallProcess] = []

    def start(services: Sequence[str], replica: int) -> None:
        wave = []
        for service in services:
            state = tmp_path / f"{service}-{replica}"
            state.mkdir()
            settings = {**backends.settings(cluster.url), "ONCALL_DATA_DIR": str(state)}
            process = OncallProcess(["run", service], settings, state)
            started.append(process)
            wave.append(process)
            replicas[service].append(process)
        for process in wave:
            process.wait_ready(timeout=30)

    try:
        start(["alert_ingest"], 0)
        start([service for service in service_names() if service != "alert_ingest"], 0)
        start(list(service_names()), 1)
        yield Deployment(cluster, backends, replicas)
    finally:
        stop_all(started)


# --- JetStream, as an operator with the NATS CLI would look at it --------------------------


async def _replication(urls: list[str]) -> dict[str, tuple[int, int]]:
    """Stream (and bucket) name -> (configured replicas, servers holding a copy)."""
    nc = await nats.connect(urls, connect_timeout=2)
    try:
        js = nc.jetstream(timeout=5)
        names = [spec.name for spec in streams.ALL_STREAMS]
        names += [f"KV_{bucket.name}" for bucket in streams.ALL_BUCKETS]
        found = {}
        for name in names:
            info = await js.stream_info(name)
            holders = 1 + len(info.cluster.replicas or []) if info.cluster and info.cluster.leader else 0
            found[name] = (info.config.num_replicas or 1, holders)
        return found
    finally:
        await nc.close()


@dataclass
class ConsumerState:
    leader: str  # the server name leading the consumer
    holders: int  # servers with a copy of its state (delivered, pending acks)
    ack_wait: float


async def _firing_consumer(urls: list[str]) -> ConsumerState:
    """The diagnoser's durable consumer of firing alert groups, as JetStream reports it."""
    nc = await nats.connect(urls, connect_timeout=2)
    try:
        js = nc.jetstream(timeout=5)
        info = await js.consumer_info(FIRING_CONSUMER.stream.name, FIRING_CONSUMER.durable)
        leader = info.cluster.leader if info.cluster and info.cluster.leader else ""
        holders = 1 + len(info.cluster.replicas or []) if info.cluster and leader else 0
        return ConsumerState(leader=leader, holders=holders, ack_wait=float(info.config.ack_wait or 0))
    finally:
        await nc.close()


async def _outcome(urls: list[str], incident: str) -> tuple[Conversation | None, int]:
    """The incident's conversation in KV, and how many diagnoses were published for it."""
    nc = await nats.connect(urls, connect_timeout=2)
    try:
        js = nc.jetstream(timeout=5)
        kv = await js.key_value(streams.CONVERSATIONS.name)
        entry = await kv.get(incident)
        conversation = Conversation.model_validate_json(entry.value) if entry.value else None
        info = await js.stream_info(streams.EVENTS.name, subjects_filter=subjects.INCIDENTS_DIAGNOSED)
        published = (info.state.subjects or {}).get(subjects.INCIDENTS_DIAGNOSED, 0)
        return conversation, published
    finally:
        await nc.close()


# --- the story -----------------------------------------------------------------------------


def post_alert(url: str, fixtures_dir: Path) -> str:
    body = (fixtures_dir / "alertmanager_webhook_real.json").read_bytes()
    accepted = httpx.post(
        url + "/alerts",
        content=body,
        timeout=10,
        headers={"Authorization": f"Bearer {INGEST_TOKEN}", "Content-Type": "application/json"},
    )
    assert accepted.status_code == 202, accepted.text
    incident: str = accepted.json()["incident_ids"][0]
    return incident


def investigating(process: OncallProcess, incident: str) -> bool:
    return f"investigating incident {incident}" in process.stderr


def wait_until(condition: Any, timeout: float, what: str, context: Any) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {timeout:.0f}s\n{context()}")
        time.sleep(0.05)


def test_an_incident_survives_losing_a_nats_server_and_its_diagnoser_with_one_whatsapp_message(
    deployment: Deployment, fixtures_dir: Path
) -> None:
    cluster, backends = deployment.cluster, deployment.backends

    # Streams and buckets are replicated on all three servers.
    replication = asyncio.run(_replication(cluster.urls))
    assert replication == dict.fromkeys(replication, (JS_REPLICAS, JS_REPLICAS)), replication
    assert len(replication) == len(streams.ALL_STREAMS) + len(streams.ALL_BUCKETS)
    consumer = asyncio.run(_firing_consumer(cluster.urls))
    assert consumer.holders == JS_REPLICAS, consumer
    assert consumer.ack_wait <= MAX_ACK_WAIT_SECONDS, (
        f"{FIRING_CONSUMER.durable} waits {consumer.ack_wait:.0f}s for an ack: the alert group held by a "
        "dead diagnoser would reach the other replica only after that (ONCALL_ACK_WAIT_SECONDS)"
    )

    # Alertmanager posts the real captured webhook to one alert_ingest replica.
    timeline = Timeline()
    incident = post_alert(deployment.replicas["alert_ingest"][0].url, fixtures_dir)
    timeline.mark(f"alert accepted: incident {incident}")

    # The investigation is in flight: a diagnoser replica waits on the slow logs backend.
    diagnosers = deployment.replicas["diagnoser"]

    def in_flight() -> bool:
        return backends.logs.arrived >= 1 and any(investigating(d, incident) for d in diagnosers)

    wait_until(in_flight, 20, "an investigation waiting on the logs", deployment.logs)
    timeline.mark("logs requested; diagnoser waiting on the logs backend")
    handling = [d for d in diagnosers if investigating(d, incident)]
    assert len(handling) == 1, "one replica investigates, not both"
    (victim,) = handling
    (survivor,) = [d for d in diagnosers if d is not victim]
    leader = asyncio.run(_firing_consumer(cluster.urls)).leader
    node = cluster.node(leader or "n1")

    # Both die at once: the diagnoser holding the alert group, and the server leading its consumer.
    assert backends.twilio.messages == []
    victim.proc.kill()
    node.kill()
    killed_at = timeline.mark(
        f"SIGKILL diagnoser pid {victim.proc.pid} and nats-server {node.name} (consumer leader {leader!r})"
    )

    # The other replica gets the alert group again and the on-call person is paged once.
    redelivered_at: float | None = None
    deadline = killed_at + ACK_WAIT_SECONDS + AFTER_REDELIVERY_SECONDS
    while not backends.twilio.messages:
        if redelivered_at is None and investigating(survivor, incident):
            redelivered_at = timeline.mark(f"redelivered: diagnoser pid {survivor.proc.pid} investigating")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no WhatsApp message\n{timeline}\n{deployment.logs()}")
        time.sleep(0.05)
    timeline.mark("WhatsApp message accepted by Twilio")
    assert redelivered_at is not None or investigating(survivor, incident), "the survivor diagnosed it"

    time.sleep(GRACE_SECONDS)
    timeline.mark(f"grace period of {GRACE_SECONDS:.0f}s over")
    messages = backends.twilio.messages
    assert len(messages) == 1, f"{len(messages)} messages\n{timeline}"
    (message,) = messages
    assert message["To"] == f"whatsapp:{ON_CALL}" and message["From"] == SENDER
    assert scenario.BUGGY_FILE in message["Body"] and str(scenario.BUGGY_LINE) in message["Body"]
    assert f"#{incident}" in message["Body"] and "rule-based" in message["Body"].lower()

    # The incident is complete in KV, diagnosed once, on the two servers that are left.
    conversation, published = asyncio.run(_outcome(cluster.live_urls, incident))
    assert conversation is not None and conversation.diagnosis is not None
    assert conversation.diagnosis_revision == 1
    assert published == 1
    print(f"[cluster] timeline:\n{timeline}")
