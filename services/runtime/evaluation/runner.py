"""Runs the scenarios through the real product: `oncall up` in a child process (embedded NATS,
all five services, console channel), pointed at the eval backend and a code checkout the runner
rewrites for each scenario; one scenario after another, each its own incident.

Per scenario: the backend and the checkout switch to it, its alert is posted to `POST /alerts`,
and the runner waits for the message the console channel mirrors on `oncall.console.out` (the
WhatsApp text) and for the `oncall.incidents.diagnosed` event (the diagnosis's confidence and
method); tokens come from the conversation in KV `oncall_conversations`, model calls and prompt
tokens from the backend's proxy to the model.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import httpx
import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from services.runtime.environment import PRODUCT_ENV_PREFIXES
from services.runtime.evaluation.backend import EvalBackend
from services.runtime.evaluation.scenarios import Scenario
from services.runtime.evaluation.scoring import said_first, score

CONSOLE_OUT = "oncall.console.out"
INCIDENTS_DIAGNOSED = "oncall.incidents.diagnosed"
CONVERSATIONS_BUCKET = "oncall_conversations"

START_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 20.0
RULES_TIMEOUT_SECONDS = 60.0
MODEL_TIMEOUT_SECONDS = 300.0
# After the first part of a split message, how long to wait for the others.
PARTS_TIMEOUT_SECONDS = 5.0
# With the message in hand, how long to wait for the diagnosed event that preceded it.
EVENT_GRACE_SECONDS = 3.0
DEFAULT_MODEL_BASE_URL = "https://api.openai.com/v1"

MODEL_SETTINGS = (
    "ONCALL_MAX_ROUNDS",
    "ONCALL_TOKEN_BUDGET",
    "ONCALL_OPENAI_TIMEOUT_SECONDS",
    "ONCALL_MODEL_CONTEXT_TOKENS",
    "ONCALL_MODEL_MAX_OUTPUT_TOKENS",
    "ONCALL_MODEL_BUDGET_SECONDS",
)

_TAG = re.compile(r"#([0-9a-f]{6})\b")
_PART = re.compile(r"\((\d+)/(\d+)\)(?:\s+#[0-9a-f]{6})?\s*$")


@dataclass
class Result:
    name: str
    kind: str
    language: str
    expected: str
    said_first: str = ""
    passed: bool = False
    confident_wrong: bool = False
    confidence: float | None = None
    method: str | None = None
    tokens: int | None = None
    model_calls: int = 0
    prompt_tokens: int = 0
    unverified: int = 0  # the model's claims the evidence does not show (file:line, quoted lines)
    seconds: float | None = None
    why: str = ""
    missing: list[str] = field(default_factory=list)
    forbidden_found: list[str] = field(default_factory=list)
    error_class: str | None = None
    error_class_named: bool | None = None
    incident_id: str | None = None
    message: str = ""
    error: str | None = None  # the run itself failed (no message, the product refused the alert)


@dataclass
class Options:
    scenarios: list[Scenario]
    model: bool
    timeout: float
    verbose: bool = False
    out: Callable[[str], None] = print


# --- the product in a child process --------------------------------------------------------------


def product_command() -> list[str]:
    """`oncall` beside this interpreter (the installed console script), else the module."""
    script = Path(sys.executable).with_name("oncall")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "services.runtime.cli"]


def product_environment(backend_url: str, code_dir: Path, token: str, model: bool) -> dict[str, str]:
    # Only what the runner sets reaches the product (plus the model's settings on the model path).
    env = {name: value for name, value in os.environ.items() if not name.startswith(PRODUCT_ENV_PREFIXES)}
    env.update(
        {
            "INGEST_TOKEN": token,
            "LB_URL": f"{backend_url}/lb",
            "PROM_URL": f"{backend_url}/prom",
            "CODE_DIR": str(code_dir),
            "ONCALL_LOG_LEVEL": "WARNING",
            # The diagnosis is what is scored: no "still investigating" message before it.
            "ONCALL_SLOW_NOTICE_SECONDS": "0",
        }
    )
    if model:
        for name in ("OPENAI_API_KEY", "OPENAI_MODEL", *MODEL_SETTINGS):
            if os.environ.get(name):
                env[name] = os.environ[name]
        env["OPENAI_BASE_URL"] = f"{backend_url}/openai"
    return env


class Product:
    """`oncall up --data-dir <fresh> --http-port 0`, its output in a log file."""

    def __init__(self, work: Path, env: dict[str, str]) -> None:
        self.data_dir = work / "data"
        self.log_path = work / "oncall.log"
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        self._log = self.log_path.open("wb")
        command = [*product_command(), "up", "--data-dir", str(self.data_dir), "--http-port", "0"]
        self.proc = subprocess.Popen(
            command, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    async def ready(self) -> tuple[str, str]:
        """(HTTP URL, NATS URL) once `/readyz` answers 200; RuntimeError if it never does."""
        assert self.proc is not None
        state_file = self.data_dir / "local.json"
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"`oncall up` exited with code {self.proc.returncode}")
                state = _read_json(state_file)
                if state and state.get("pid") == self.proc.pid and state.get("http_url"):
                    with contextlib.suppress(httpx.HTTPError):
                        if (await client.get(f"{state['http_url']}/readyz")).status_code == 200:
                            return str(state["http_url"]), str(state["nats_url"])
                await asyncio.sleep(0.1)
        raise RuntimeError(f"`oncall up` was not ready within {START_TIMEOUT_SECONDS:.0f}s")

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:  # its group: the product and what it started
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# --- what the product says -------------------------------------------------------------------------


class Listener:
    """The console mirror and the diagnosed events, by incident id."""

    def __init__(self) -> None:
        self.messages: dict[str, list[tuple[float, str]]] = {}
        self.diagnosed: dict[str, list[dict[str, Any]]] = {}
        self.changed = asyncio.Event()

    async def subscribe(self, nc: NatsClient) -> None:
        await nc.subscribe(CONSOLE_OUT, cb=self._on_console)
        await nc.subscribe(INCIDENTS_DIAGNOSED, cb=self._on_diagnosed)

    async def _on_console(self, msg: Msg) -> None:
        with contextlib.suppress(ValueError):
            body = json.loads(msg.data).get("body") or ""
            for incident in set(_TAG.findall(body)):
                self.messages.setdefault(incident, []).append((time.monotonic(), body))
            self.changed.set()

    async def _on_diagnosed(self, msg: Msg) -> None:
        with contextlib.suppress(ValueError, AttributeError):
            event = json.loads(msg.data)
            self.diagnosed.setdefault(str(event.get("incident_id")), []).append(event)
            self.changed.set()

    def message(self, incident: str) -> tuple[float, str] | None:
        """The first message about the incident, whole (a split one once all its parts are in)."""
        received = self.messages.get(incident)
        if not received:
            return None
        first_at, first = received[0]
        marker = _PART.search(first)
        if marker is None:
            return first_at, first
        total = int(marker.group(2))
        parts: dict[int, str] = {}
        for _, body in received:
            part = _PART.search(body)
            if part and int(part.group(2)) == total:
                parts.setdefault(int(part.group(1)), body[: part.start()].rstrip())
        if len(parts) < total:
            return None
        return first_at, "\n".join(parts[i] for i in sorted(parts))

    async def wait(
        self, incident: str, deadline: float
    ) -> tuple[tuple[float, str] | None, dict[str, Any] | None]:
        message_seen: float | None = None
        while True:
            self.changed.clear()  # before looking: what arrives from now on wakes the wait below
            message = self.message(incident)
            events = self.diagnosed.get(incident)
            now = time.monotonic()
            if message is not None and message_seen is None:
                message_seen = now
            first_part = self.messages.get(incident)
            parts_overdue = first_part and now - first_part[0][0] > PARTS_TIMEOUT_SECONDS
            if message is not None and (events or now - (message_seen or now) > EVENT_GRACE_SECONDS):
                return message, events[0] if events else None
            if now > deadline or (message is None and parts_overdue):
                if message is None and first_part:  # parts missing: score what came
                    message = (first_part[0][0], "\n".join(body for _, body in first_part))
                return message, events[0] if events else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), timeout=0.5)


async def conversation_tokens(nc: NatsClient, incident: str) -> int | None:
    try:
        kv = await nc.jetstream().key_value(CONVERSATIONS_BUCKET)
        entry = await kv.get(incident)
        value = json.loads(entry.value or b"{}")
    except Exception:  # the count is extra: a missing or changed record leaves it blank
        return None
    tokens = value.get("tokens_used") if isinstance(value, dict) else None
    return int(tokens) if isinstance(tokens, int | float) else None


# --- the suite -------------------------------------------------------------------------------------


async def run_suite(options: Options) -> list[Result]:
    """Every scenario through one `oncall up`; the table rows are printed as they are measured."""
    upstream = (os.environ.get("OPENAI_BASE_URL") or DEFAULT_MODEL_BASE_URL) if options.model else None
    backend = EvalBackend(upstream).start()
    work = Path(tempfile.mkdtemp(prefix="oncall-eval-"))
    code_dir = work / "code"
    code_dir.mkdir()
    token = secrets.token_urlsafe(24)
    product = Product(work, product_environment(backend.url, code_dir, token, options.model))
    results: list[Result] = []
    nc: NatsClient | None = None
    try:
        product.start()
        try:
            http_url, nats_url = await product.ready()
        except RuntimeError as exc:
            raise SuiteError(f"{exc}; its output:\n{product.log_tail()}") from exc
        nc = await nats.connect(nats_url.split(","), name="oncall-eval", connect_timeout=5)
        listener = Listener()
        await listener.subscribe(nc)
        await nc.flush()
        run_id = secrets.token_hex(3)
        table = Table(options.model, options.out)
        table.header()
        async with httpx.AsyncClient(timeout=15) as client:
            for scenario in options.scenarios:
                result = await run_one(
                    scenario, options, backend, code_dir, client, http_url, token, listener, nc, run_id
                )
                results.append(result)
                table.row(result)
                if options.verbose and not result.passed:
                    table.details(result)
                if product.proc is not None and product.proc.poll() is not None:
                    raise SuiteError(f"`oncall up` stopped during the run; its output:\n{product.log_tail()}")
    finally:
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()
        product.stop()
        backend.stop()
        shutil.rmtree(work, ignore_errors=True)
    return results


class SuiteError(RuntimeError):
    """The suite could not run (the product did not start, or stopped)."""


async def run_one(
    scenario: Scenario,
    options: Options,
    backend: EvalBackend,
    code_dir: Path,
    client: httpx.AsyncClient,
    http_url: str,
    token: str,
    listener: Listener,
    nc: NatsClient,
    run_id: str,
) -> Result:
    expect = scenario.expect
    result = Result(
        name=scenario.name,
        kind=scenario.kind,
        language=scenario.language,
        expected=expect.summary,
        error_class=expect.error_class,
    )
    posted = datetime.now(UTC)
    alert_start = posted + timedelta(seconds=scenario.alert.started)
    await asyncio.to_thread(scenario.install_code, code_dir, alert_start)
    backend.activate(scenario, alert_start, posted)
    started = time.monotonic()
    try:
        response = await client.post(
            f"{http_url}/alerts",
            json=scenario.webhook(alert_start, run_id),
            headers={"Authorization": f"Bearer {token}"},
        )
    except httpx.HTTPError as exc:
        result.error = f"POST /alerts failed: {exc}"
        return result
    try:
        ids = response.json().get("incident_ids") if response.status_code == 202 else None
    except (ValueError, AttributeError):
        ids = None
    if not ids:
        result.error = f"POST /alerts answered {response.status_code}: {response.text[:200]}"
        return result
    incident = str(ids[0]).lstrip("#")
    result.incident_id = incident
    message, event = await listener.wait(incident, started + options.timeout)
    if message is None:
        result.error = f"no message within {options.timeout:.0f}s"
        result.why = result.error
    else:
        result.seconds = round(message[0] - started, 2)
        result.message = message[1]
        result.said_first = said_first(message[1], f"#{incident}")
    diagnosis = (event or {}).get("diagnosis") or {}
    confidence = diagnosis.get("confidence")
    result.confidence = float(confidence) if isinstance(confidence, int | float) else None
    result.method = diagnosis.get("method")
    unverified = diagnosis.get("unverified")
    result.unverified = len(unverified) if isinstance(unverified, list) else 0
    if message is not None:
        judged = score(message[1], expect, result.confidence)
        result.passed = judged.passed
        result.confident_wrong = judged.confident_wrong
        result.missing = list(judged.missing)
        result.forbidden_found = list(judged.forbidden_found)
        result.error_class_named = judged.error_class_named
        result.why = judged.why()
    result.tokens = await conversation_tokens(nc, incident)
    usage = backend.usage()
    result.model_calls, result.prompt_tokens = usage.calls, usage.prompt_tokens
    return result


# --- output ----------------------------------------------------------------------------------------


def clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


class Table:
    COLUMNS: Sequence[tuple[str, int]] = (
        ("scenario", 34),
        ("kind", 11),
        ("expected", 36),
        ("what the message said first", 44),
        ("pass", 4),
        ("cw", 2),
        ("tokens", 6),
        ("secs", 5),
    )
    MODEL_COLUMNS: Sequence[tuple[str, int]] = (("calls", 5), ("prompt", 7), ("unver", 5))

    def __init__(self, model: bool, out: Callable[[str], None]) -> None:
        self.columns = [*self.COLUMNS, *(self.MODEL_COLUMNS if model else ())]
        self.out = out

    def _line(self, cells: Sequence[str]) -> str:
        parts = []
        for (name, width), cell in zip(self.columns, cells, strict=True):
            text = clip(cell, width)
            numeric = name in ("tokens", "secs", "calls", "prompt", "unver")
            parts.append(text.rjust(width) if numeric else text.ljust(width))
        return "  ".join(parts).rstrip()

    def header(self) -> None:
        self.out(self._line([name for name, _ in self.columns]))
        self.out("  ".join("-" * width for _, width in self.columns))

    def row(self, result: Result) -> None:
        cells = [
            result.name,
            result.kind,
            result.expected,
            result.said_first or f"({result.error or 'no message'})",
            "yes" if result.passed else "no",
            "CW" if result.confident_wrong else "",
            "" if result.tokens is None else str(result.tokens),
            "" if result.seconds is None else f"{result.seconds:.1f}",
            str(result.model_calls),
            str(result.prompt_tokens),
            str(result.unverified),
        ]
        self.out(self._line(cells[: len(self.columns)]))

    def details(self, result: Result) -> None:
        self.out(f"    why: {result.why or result.error}")
        for line in result.message.splitlines()[:12]:
            self.out(f"    | {line}")


def summary(results: Sequence[Result], model: bool) -> dict[str, Any]:
    passed = [r for r in results if r.passed]
    seconds = [r.seconds for r in results if r.seconds is not None]
    figures: dict[str, Any] = {
        "mode": "model" if model else "rules",
        "scenarios": len(results),
        "passed": len(passed),
        "pass_rate": round(len(passed) / len(results), 4) if results else 0.0,
        "confident_wrong": sum(r.confident_wrong for r in results),
        "errors": sum(r.error is not None for r in results),
        "median_seconds": round(statistics.median(seconds), 2) if seconds else None,
        "tokens": sum(r.tokens or 0 for r in results),
        "passing": sorted(r.name for r in passed),
    }
    if model:
        figures["model_calls_per_incident"] = round(statistics.mean(r.model_calls for r in results), 2)
        figures["prompt_tokens_per_incident"] = round(statistics.mean(r.prompt_tokens for r in results))
        figures["fell_back_to_rules"] = sum(r.method == "rules" for r in results)
        figures["claims_unverified"] = sum(r.unverified for r in results)
        figures["seconds_per_incident"] = round(statistics.mean(seconds), 1) if seconds else None
    return figures


def totals_text(figures: dict[str, Any]) -> list[str]:
    median = figures["median_seconds"]
    lines = [
        f"passed {figures['passed']}/{figures['scenarios']} ({figures['pass_rate']:.1%}) on the "
        f"{figures['mode']} path; confident-wrong {figures['confident_wrong']}; "
        f"median {'-' if median is None else f'{median:.1f}'} s per incident; tokens {figures['tokens']}"
        + (f"; {figures['errors']} without a message" if figures["errors"] else "")
    ]
    if figures["mode"] == "model":
        lines.append(
            f"model: {figures['model_calls_per_incident']} calls and {figures['prompt_tokens_per_incident']} "
            f"prompt tokens per incident; {figures['fell_back_to_rules']} fell back to the rules; "
            f"claims unverified {figures.get('claims_unverified', 0)}"
        )
    return lines


def results_document(results: Sequence[Result], figures: dict[str, Any]) -> dict[str, Any]:
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **figures,
        "results": [asdict(result) for result in results],
    }
