"""Local mode's intake in a process of its own, as on Kubernetes.

`oncall up` serves one HTTP port. POST /alerts must answer within milliseconds while a storm of
incidents is diagnosed, and a diagnosis holds the event loop (and the GIL) for milliseconds at a
time; so the intake runs in a child process (`oncall run alert_ingest`) that serves the public
port, and the other services share the parent process, which serves HTTP on a loopback port of
its own. The child forwards every request that is not its own (Twilio's webhooks, the demo's
routes) to the parent, and answers /metrics with both processes' metrics merged, /readyz with
both processes' readiness.
"""

import asyncio
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence

import httpx
from prometheus_client import CollectorRegistry, Metric, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from services.runtime import metrics
from services.runtime.embedded_nats import die_with_parent

log = logging.getLogger("oncall.host")

INTAKE_SERVICE = "alert_ingest"
FORWARD_TIMEOUT_SECONDS = 30.0
# How long `oncall up` waits for its intake process to be ready.
INTAKE_START_SECONDS = 30.0
# Headers of one hop (RFC 9110 §7.6.1), and the length httpx recomputes.
HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length", "host"}
)
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def intake_command(listen_fd: int, upstream: str) -> list[str]:
    """The child: `oncall run alert_ingest` on the inherited listening socket, forwarding the rest."""
    return [
        sys.executable,
        "-m",
        "services.runtime.cli",
        "run",
        INTAKE_SERVICE,
        "--listen-fd",
        str(listen_fd),
        "--upstream",
        upstream,
    ]


def start_intake(listener: socket.socket, nats_url: str, upstream: str) -> subprocess.Popen[bytes]:
    """The intake process, on the parent's NATS and the public port's socket (bound by the parent,
    so that a busy port is the parent's one clear error). Same stdout/stderr, same environment.

    Its own session, like the embedded nats-server: a signal to our process group (Ctrl-C,
    `timeout`, systemd) reaches only the parent, which stops the intake first and then its own
    services; PR_SET_PDEATHSIG stops it if the parent dies without doing so."""
    env = {**os.environ, "NATS_URL": nats_url}
    return subprocess.Popen(
        intake_command(listener.fileno(), upstream),
        env=env,
        pass_fds=[listener.fileno()],
        preexec_fn=die_with_parent,
        start_new_session=True,
    )


async def wait_until_ready(proc: subprocess.Popen[bytes], url: str) -> None:
    async with httpx.AsyncClient(timeout=1.0) as client:
        deadline = asyncio.get_running_loop().time() + INTAKE_START_SECONDS
        while asyncio.get_running_loop().time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the intake process exited with {proc.returncode} during start-up")
            try:
                if (await client.get(url + "/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"the intake process was not ready within {INTAKE_START_SECONDS:.0f} s")


async def stop_intake(proc: subprocess.Popen[bytes], grace_seconds: float) -> None:
    if proc.poll() is None:
        proc.terminate()
    for _ in range(int(grace_seconds / 0.05)):
        if proc.poll() is not None:
            return
        await asyncio.sleep(0.05)
    log.warning("the intake process did not stop within %.0f s: killed", grace_seconds)
    proc.kill()
    proc.wait()


# --- the child's side ---------------------------------------------------------------------------


def forward_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(name, value) for name, value in headers if name.lower() not in HOP_HEADERS]


def merge_metric_texts(texts: Sequence[str]) -> list[Metric]:
    """Prometheus text of several processes as one: the samples of a family present in several
    are added up (counters, histograms, and the gauges these processes expose: counts in flight),
    but of creation times the latest is kept."""
    merged: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            if family.name not in merged:
                merged[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
                values[family.name] = {}
            samples = values[family.name]
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if sample.name.endswith("_created"):  # a time, not a count
                    samples[key] = max(samples.get(key, 0.0), sample.value)
                else:
                    samples[key] = samples.get(key, 0.0) + sample.value
    for name, metric in merged.items():
        metric.samples = [
            Sample(sample, dict(labels), value) for (sample, labels), value in values[name].items()
        ]
    return list(merged.values())


class _Families:
    def __init__(self, families: list[Metric]):
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def merged_exposition(texts: Sequence[str]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(merge_metric_texts(texts)))
    return generate_latest(registry)


class Upstream:
    """The parent process, as seen from the intake process: requests forwarded, metrics and
    readiness read."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.client = httpx.AsyncClient(base_url=self.url, timeout=FORWARD_TIMEOUT_SECONDS)

    async def forward(self, request: Request) -> Response:
        body = await request.body()
        try:
            answer = await self.client.request(
                request.method,
                request.url.path,
                params=request.url.query or None,
                headers=forward_headers(request.headers.items()),
                content=body,
            )
        except httpx.HTTPError as exc:
            log.warning("could not forward %s %s: %r", request.method, request.url.path, exc)
            return Response("the services process is not answering, retry later\n", status_code=503)
        return Response(
            answer.content,
            status_code=answer.status_code,
            headers=dict(forward_headers(answer.headers.items())),
        )

    async def metrics(self, _: Request) -> Response:
        own = generate_latest(metrics.REGISTRY).decode()
        try:
            theirs = (await self.client.get("/metrics")).text
        except httpx.HTTPError:
            theirs = ""  # the intake's own still count
        return Response(
            merged_exposition([own, theirs]), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    async def ready(self) -> tuple[bool, str]:
        try:
            answer = await self.client.get("/readyz", timeout=2.0)
        except httpx.HTTPError:
            return False, "the services process is not answering"
        return (True, "ok") if answer.status_code == 200 else (False, "services process: " + answer.text)

    def routes(self) -> list[BaseRoute]:
        """/metrics merged, then everything not served here forwarded (placed after the own routes)."""
        return [Route("/{path:path}", self.forward, methods=ALL_METHODS)]

    async def aclose(self) -> None:
        await self.client.aclose()
