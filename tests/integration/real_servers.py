"""Real Prometheus and Alertmanager for the integration tests, and what they need around them.

- `running_alertmanager`: `prometheus-alertmanager` on a free loopback port, with a generated
  config whose receivers are webhooks to the product's `/alerts` (Bearer or basic auth,
  `send_resolved: true`), short timings, no clustering, storage in a temporary folder.
- `ErrorRateExporter` + `running_prometheus`: a tiny `prometheus_client` server with the seed's
  counters, scraped every second by a real `prometheus` whose HighErrorRate rule fires into
  that Alertmanager.
- `BusWatch`: what the product did on NATS (streams, KV, and every publish on `oncall.alerts.>`,
  including Alertmanager's repeats that JetStream drops as duplicates).

Configs are written as JSON, which both servers read as YAML. Every server started here runs in
a process group of its own, ended when its context manager exits. Without the binaries the tests
skip (with ONCALL_REQUIRE_INTEGRATION=1 they fail): see tests/support/binaries.py.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeVar, overload

import httpx
import nats
import nats.js.errors
from fakes import FakeTwilio
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from support.binaries import require_binary
from support.processes import end_process_group, free_port, start_process

from services.contracts import streams, subjects
from services.contracts.models import Conversation, GroupIndexEntry, group_hash

ALERTMANAGER: Final = "prometheus-alertmanager"
PROMETHEUS: Final = "prometheus"
READY_TIMEOUT_SECONDS: Final = 20.0
STOP_TIMEOUT_SECONDS: Final = 10.0

T = TypeVar("T")


@overload
async def until(
    probe: Callable[[], Awaitable[T | None]],
    within: float,
    what: str,
    explain: Callable[[], str] | None = None,
) -> T: ...
@overload
async def until(
    probe: Callable[[], T | None], within: float, what: str, explain: Callable[[], str] | None = None
) -> T: ...
async def until(
    probe: Callable[[], Any], within: float, what: str, explain: Callable[[], str] | None = None
) -> Any:
    """Polls `probe` (sync or async) until it returns something truthy, which is returned."""
    deadline = time.monotonic() + within
    while True:
        result = probe()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            detail = f"\n{explain()}" if explain else ""
            raise TimeoutError(f"not within {within}s: {what}{detail}")
        await asyncio.sleep(0.05)


# --- processes --------------------------------------------------------------------------


class ServerProcess:
    """A server binary in a child process, its output in a log file; `stop` ends its process group."""

    def __init__(self, name: str, args: list[str], port: int, workdir: Path) -> None:
        executable = require_binary(name)
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = workdir / f"{name}-{port}.log"
        self._log = self.log_path.open("w")
        self.proc = start_process(
            [executable, *args], cwd=workdir, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.logs[-3000:]}")
            try:
                if httpx.get(self.url + "/-/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} not ready after {timeout}s:\n{self.logs[-3000:]}")

    def stop(self) -> None:
        try:
            end_process_group(self.proc, STOP_TIMEOUT_SECONDS)
        finally:
            self._log.close()


# --- Alertmanager -----------------------------------------------------------------------


@dataclass(frozen=True)
class Webhook:
    """One Alertmanager receiver: a webhook to the product. The first one of a config is the
    root route's receiver; the others get a child route matching `match` (label = value)."""

    name: str
    url: str
    bearer: str | None = None
    basic_auth: tuple[str, str] | None = None
    match: dict[str, str] = field(default_factory=dict)

    def receiver(self) -> dict[str, Any]:
        http_config: dict[str, Any] = {}
        if self.bearer is not None:
            http_config["authorization"] = {"type": "Bearer", "credentials": self.bearer}
        if self.basic_auth is not None:
            user, password = self.basic_auth
            http_config["basic_auth"] = {"username": user, "password": password}
        webhook = {"url": self.url, "send_resolved": True, "http_config": http_config}
        return {"name": self.name, "webhook_configs": [webhook]}


@dataclass(frozen=True)
class Timing:
    """The smallest timings Alertmanager 0.25 takes (group_interval must only be non-zero).

    A repeat goes out on the first group_interval tick at least repeat_interval after the last
    successful notification, so with these values an unchanged group is re-sent every 3 s.
    """

    group_wait: str = "1s"
    group_interval: str = "1s"
    repeat_interval: str = "2s"
    resolve_timeout: str = "5s"  # API alerts without endsAt; the tests set endsAt themselves


FAST: Final = Timing()


def alertmanager_config(webhooks: Sequence[Webhook], timing: Timing) -> dict[str, Any]:
    root, *children = webhooks
    return {
        "global": {"resolve_timeout": timing.resolve_timeout},
        "route": {
            "receiver": root.name,
            "group_by": ["alertname", "service"],
            "group_wait": timing.group_wait,
            "group_interval": timing.group_interval,
            "repeat_interval": timing.repeat_interval,
            "routes": [
                {"receiver": w.name, "matchers": [f'{k}="{v}"' for k, v in w.match.items()]} for w in children
            ],
        },
        "receivers": [w.receiver() for w in webhooks],
    }


@contextmanager
def running_alertmanager(
    webhooks: Sequence[Webhook], workdir: Path, timing: Timing = FAST, port: int | None = None
) -> Iterator[ServerProcess]:
    """A ready Alertmanager (`GET /-/ready` is 200) with these receivers; stopped afterwards."""
    home = workdir / "alertmanager"
    home.mkdir(exist_ok=True)
    config = home / "alertmanager.yml"
    config.write_text(json.dumps(alertmanager_config(webhooks, timing), indent=2))
    port = port or free_port()
    server = ServerProcess(
        ALERTMANAGER,
        [
            f"--config.file={config}",
            f"--storage.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.external-url=http://127.0.0.1:{port}/",
            "--cluster.listen-address=",  # no gossip
        ],
        port,
        home,
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alert(
    labels: dict[str, str],
    starts_at: datetime,
    ends_at: datetime | None = None,
    annotations: dict[str, str] | None = None,
    *,
    until_resolve_timeout: bool = False,
) -> dict[str, Any]:
    """A postableAlert. By default it stays firing for 10 minutes, so the test decides when it
    resolves (an `ends_at` in the past). `until_resolve_timeout` leaves `endsAt` out, as senders
    that re-post periodically do: Alertmanager resolves it after resolve_timeout unless re-posted."""
    posted: dict[str, Any] = {
        "labels": labels,
        "annotations": annotations or {},
        "startsAt": iso(starts_at),
        "generatorURL": "",
    }
    if not until_resolve_timeout:
        posted["endsAt"] = iso(ends_at or datetime.now(UTC) + timedelta(minutes=10))
    return posted


def post_alerts(am_url: str, alerts: Sequence[dict[str, Any]]) -> None:
    """`POST /api/v2/alerts` (Alertmanager answers 200 with an empty body)."""
    response = httpx.post(f"{am_url}/api/v2/alerts", json=list(alerts), timeout=5)
    assert response.status_code == 200, (
        f"Alertmanager refused the alerts: {response.status_code} {response.text}"
    )


# --- Prometheus and the exporter it scrapes ---------------------------------------------


class _SeedCounters(Collector):
    """The seed's counters as pure functions of time, so every scrape sees
    errors / requests == errors_per_second / requests_per_second exactly."""

    def __init__(self, service: str, requests_per_second: float, errors_per_second: float) -> None:
        self.service = service
        self.requests_per_second = requests_per_second
        self.errors_per_second = errors_per_second
        self.started = time.monotonic()

    def collect(self) -> Iterator[CounterMetricFamily]:
        elapsed = time.monotonic() - self.started
        requests = CounterMetricFamily("http_requests", "HTTP requests served", labels=["service"])
        requests.add_metric([self.service], self.requests_per_second * elapsed)
        errors = CounterMetricFamily("http_errors", "HTTP requests that failed", labels=["service", "code"])
        errors.add_metric([self.service, "500"], self.errors_per_second * elapsed)
        yield requests
        yield errors


class ErrorRateExporter:
    """`http_requests_total{service}` and `http_errors_total{service,code="500"}` growing at a steady
    rate, served by prometheus_client's own HTTP server on a loopback port."""

    def __init__(
        self, service: str = "checkout", requests_per_second: float = 20.0, errors_per_second: float = 5.0
    ):
        self.service = service
        self.error_rate = errors_per_second / requests_per_second
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(_SeedCounters(service, requests_per_second, errors_per_second))
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> ErrorRateExporter:
        self._server, self._thread = start_http_server(0, addr="127.0.0.1", registry=self._registry)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


HIGH_ERROR_RATE_RULES: Final = {
    "groups": [
        {
            "name": "checkout",
            "rules": [
                {
                    "alert": "HighErrorRate",
                    "expr": "sum by (service) (rate(http_errors_total[30s])) "
                    "/ sum by (service) (rate(http_requests_total[30s])) > 0.05",
                    "for": "0s",
                    "labels": {"severity": "critical"},
                    "annotations": {
                        "summary": "Error rate {{ $value | humanizePercentage }} on {{ $labels.service }}",
                        "runbook_url": "https://runbooks.example.com/high-error-rate",
                    },
                }
            ],
        }
    ]
}


@contextmanager
def running_prometheus(
    workdir: Path, scrape_target: str, alertmanager_url: str, port: int | None = None
) -> Iterator[ServerProcess]:
    """A ready Prometheus scraping `scrape_target` every second, evaluating HighErrorRate every
    second and sending its alerts to `alertmanager_url` (which may start later); stopped afterwards.

    Its first HighErrorRate reached the webhook 7-9 s after the start in our runs: a rate needs two
    scrapes, and the notifier learns even a static Alertmanager target through service discovery,
    whose updates go out every 5 s; then Alertmanager's group_wait."""
    home = workdir / "prometheus"
    home.mkdir(exist_ok=True)
    (home / "rules.yml").write_text(json.dumps(HIGH_ERROR_RATE_RULES, indent=2))
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [alertmanager_url.removeprefix("http://")]}]}]
        },
        "rule_files": [str(home / "rules.yml")],
        "scrape_configs": [{"job_name": "checkout", "static_configs": [{"targets": [scrape_target]}]}],
    }
    (home / "prometheus.yml").write_text(json.dumps(config, indent=2))
    port = port or free_port()
    server = ServerProcess(
        PROMETHEUS,
        [
            f"--config.file={home / 'prometheus.yml'}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.external-url=http://127.0.0.1:{port}/",
            # Active alerts are re-sent every second (default 1m): an alert Prometheus could not
            # deliver (Alertmanager not discovered or not listening yet) goes again a second later.
            "--rules.alert.resend-delay=1s",
        ],
        port,
        home,
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


# --- the product ------------------------------------------------------------------------

ON_CALL: Final = ("+15551230001", "+15551230002")
TWILIO_NUMBER: Final = "whatsapp:+14155238886"


def product_settings(nats_url: str, twilio: FakeTwilio, data_dir: Path, **more: str) -> dict[str, str]:
    """`oncall up` as an operator would run it: on this NATS, paging ON_CALL on WhatsApp through the
    Twilio fake, no model (rule-based diagnoses), no log source, code or Jira."""
    return {
        "NATS_URL": nats_url,
        "ONCALL_HTTP_PORT": str(free_port()),
        "ONCALL_DATA_DIR": str(data_dir / "oncall-data"),
        "USER_WHATSAPP_NUMBER": ",".join(f"whatsapp:{n}" for n in ON_CALL),
        "TWILIO_ACCOUNT_SID": twilio.account_sid,
        "TWILIO_AUTH_TOKEN": twilio.auth_token,
        "TWILIO_WHATSAPP_NUMBER": TWILIO_NUMBER,
        "TWILIO_API_BASE_URL": twilio.url,
        "PUBLIC_BASE_URL": "https://oncall.example.com",
        **more,
    }


def metric_value(product_url: str, name: str, **labels: str) -> float:
    """The sum of a counter's samples in the product's /metrics that carry these labels."""
    text = httpx.get(f"{product_url}/metrics", timeout=5).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


# --- the product's bus --------------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    """One publish on `oncall.alerts.>` as any core subscriber sees it (JetStream may drop it)."""

    subject: str
    msg_id: str
    body: dict[str, Any]
    at: float  # time.monotonic()


class BusWatch:
    """The product's NATS seen from outside with nats-py, as `nats sub` / `nats stream view` /
    `nats kv get` would show it."""

    def __init__(self, nc: NatsClient) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.published: list[Published] = []

    @classmethod
    async def connect(cls, url: str) -> BusWatch:
        watch = cls(await nats.connect(url, name="integration-test"))

        async def record(msg: Msg) -> None:
            msg_id = (msg.headers or {}).get("Nats-Msg-Id", "")
            watch.published.append(Published(msg.subject, msg_id, json.loads(msg.data), time.monotonic()))

        await watch.nc.subscribe("oncall.alerts.>", cb=record)
        return watch

    async def close(self) -> None:
        await self.nc.close()

    def publishes(self, group_key: str, subject: str = subjects.ALERTS_FIRING) -> list[Published]:
        return [p for p in self.published if p.subject == subject and p.body["groupKey"] == group_key]

    async def stored(self, stream: streams.StreamSpec, subject: str | None = None) -> list[dict[str, Any]]:
        """The bodies a stream holds, oldest first (what a durable consumer would get)."""
        try:
            info = await self.js.stream_info(stream.name)
        except nats.js.errors.NotFoundError:
            return []
        bodies: list[dict[str, Any]] = []
        if info.state.messages == 0:
            return bodies
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            try:
                msg = await self.js.get_msg(stream.name, seq)
            except nats.js.errors.NotFoundError:
                continue
            if subject is None or msg.subject == subject:
                bodies.append(json.loads(msg.data or b"{}"))
        return bodies

    async def stored_alerts(
        self, group_key: str, subject: str = subjects.ALERTS_FIRING, change: str | None = None
    ) -> list[dict[str, Any]]:
        """The alert groups stored in ONCALL_ALERTS for this groupKey (optionally of one change kind)."""
        return [
            b
            for b in await self.stored(streams.ALERTS, subject)
            if b["groupKey"] == group_key and change in (None, b.get("change"))
        ]

    async def conversation(self, incident_id: str) -> Conversation | None:
        value = await self._kv_value(streams.CONVERSATIONS.name, incident_id)
        return Conversation.model_validate_json(value) if value else None

    async def group_entry(self, group_key: str) -> GroupIndexEntry | None:
        value = await self._kv_value(streams.GROUPS.name, group_hash(group_key))
        return GroupIndexEntry.model_validate_json(value) if value else None

    async def _kv_value(self, bucket: str, key: str) -> bytes | None:
        try:
            kv = await self.js.key_value(bucket)
            entry = await kv.get(key)
        except (nats.js.errors.BucketNotFoundError, nats.js.errors.KeyNotFoundError):
            return None
        return entry.value
