"""Wiring of the tools service: one core-NATS responder per read-only tool of the registry.

Every request gets a `ToolResult` back, never an exception: a responder that raises sends no
reply and the diagnoser would only see a timeout.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage
from pydantic import BaseModel, ValidationError

from services.contracts import subjects, tools
from services.contracts.models import ToolRequest, ToolResult
from services.contracts.tools import ToolSpec
from services.runtime import metrics
from services.runtime.observability import current_incident
from services.runtime.service import ServiceContext, ServiceParts
from services.runtime.settings import Settings
from services.tools.commits import CommitSource, recent_commits
from services.tools.error_rate import RateQueries, error_rate
from services.tools.errors import BackendError
from services.tools.git import LocalGit
from services.tools.github import CodeClient, CodeSource, GitHubClient, LocalCheckout
from services.tools.logs import LogsClient, LogSource, fetch_logs
from services.tools.loki import LokiClient
from services.tools.prometheus import PrometheusClient
from services.tools.prometheus_query import query_prometheus

log = logging.getLogger("oncall.tools")

USER_AGENT = "oncall-agent-tools"
CONNECT_TIMEOUT_SECONDS = 3.0

Runner = Callable[[Any], Awaitable[Any]]


def wire(ctx: ServiceContext) -> ServiceParts:
    settings = ctx.settings
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(
            settings.tool_timeout_seconds, connect=min(CONNECT_TIMEOUT_SECONDS, settings.tool_timeout_seconds)
        ),
        headers={"User-Agent": USER_AGENT},
    )
    runners = make_runners(settings, http)
    for spec in tools.READ_TOOLS:
        missing = _not_configured(f"{spec.name} is not implemented by this tools service")
        serve_tool(ctx.broker, spec, runners.get(spec.name, missing), settings)
    return ServiceParts(routes=[], on_start=[], on_stop=[http.aclose])


def _utc_now() -> datetime:
    return datetime.now(UTC)


def make_runners(
    settings: Settings, http: httpx.AsyncClient, clock: Callable[[], datetime] = _utc_now
) -> dict[str, Runner]:
    """Each tool's implementation, given its validated args model; unset backends answer not_configured."""
    budget = settings.tool_max_tokens
    runners: dict[str, Runner] = {}
    sources = log_sources(settings, http)
    if sources:
        runners[tools.FETCH_LOGS.name] = lambda args: fetch_logs(sources, args, budget, clock())
    else:
        runners[tools.FETCH_LOGS.name] = _not_configured("neither LB_URL nor LOKI_URL is set: no log source")
    if settings.prom_url:
        prometheus = PrometheusClient(settings.prom_url, http, settings.tool_timeout_seconds)
        templates = RateQueries(settings.prom_errors_query, settings.prom_requests_query)
        runners[tools.COMPUTE_ERROR_RATE.name] = lambda a: error_rate(
            prometheus, templates, a.service, clock()
        )
        runners[tools.QUERY_PROMETHEUS.name] = lambda a: query_prometheus(prometheus, a, budget, clock())
    else:
        runners[tools.COMPUTE_ERROR_RATE.name] = _not_configured("PROM_URL is not set")
        runners[tools.QUERY_PROMETHEUS.name] = _not_configured("PROM_URL is not set")
    no_code = "no code source: set CODE_DIR, or GITHUB_OWNER and GITHUB_REPO (and GITHUB_TOKEN if private)"
    source = code_source(settings, http)
    if source is not None:
        code = CodeClient(source, tools.FETCH_CODE.max_output_chars)
        runners[tools.FETCH_CODE.name] = lambda a: code.fetch(a.file_path, a.line, a.context_lines)
    else:
        runners[tools.FETCH_CODE.name] = _not_configured(no_code)
    history = commit_source(settings, http)
    if history is not None:
        runners[tools.RECENT_COMMITS.name] = lambda a: recent_commits(history, a, budget, clock())
    else:
        runners[tools.RECENT_COMMITS.name] = _not_configured(no_code)
    return runners


def log_sources(settings: Settings, http: httpx.AsyncClient) -> dict[str, LogSource]:
    """Both when both are set: fetch_logs asks them at once and merges their lines."""
    sources: dict[str, LogSource] = {}
    if settings.lb_url:
        sources["lb"] = LogsClient(settings.lb_url, http)
    if settings.loki_url:
        sources["loki"] = LokiClient(settings.loki_url, http)
    return sources


def _github(settings: Settings, http: httpx.AsyncClient) -> GitHubClient | None:
    if not (settings.github_owner and settings.github_repo):
        return None
    token = settings.github_token.get_secret_value() if settings.github_token else None
    return GitHubClient(
        http, settings.github_api_url, settings.github_owner, settings.github_repo, settings.github_ref, token
    )


def code_source(settings: Settings, http: httpx.AsyncClient) -> CodeSource | None:
    """CODE_DIR wins when both are set: it is the explicit local choice (and needs no network)."""
    if settings.code_dir is not None:
        return LocalCheckout(settings.code_dir)
    return _github(settings, http)


def commit_source(settings: Settings, http: httpx.AsyncClient) -> CommitSource | None:
    """The same choice as `code_source`: the history of the code fetch_code reads."""
    if settings.code_dir is not None:
        return LocalGit(settings.code_dir, settings.tool_timeout_seconds)
    return _github(settings, http)


def _not_configured(reason: str) -> Runner:
    async def run(_: Any) -> Any:
        raise BackendError("not_configured", reason)

    return run


def serve_tool(broker: NatsBroker, spec: ToolSpec, run: Runner, settings: Settings) -> None:
    """A core-NATS responder in the shared queue group: replicas split the requests, and each
    serves up to `tool_max_workers` of them at once."""

    @broker.subscriber(
        spec.subject,
        queue=subjects.TOOLS_QUEUE,
        max_workers=settings.tool_max_workers,
        title=f"tools.{spec.name}",
    )
    async def respond(msg: NatsMessage) -> ToolResult:
        return await answer(spec, run, msg.body, settings.tool_timeout_seconds)


async def answer(spec: ToolSpec, run: Runner, body: bytes, time_limit: float) -> ToolResult:
    """One tool request, start to finish: parse, validate, run with a deadline, count."""
    started = time.perf_counter()
    result = await _outcome(spec, run, body, time_limit)
    result.elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    outcome = result.error.kind if result.error else "ok"
    metrics.tool_calls.labels(tool=spec.name, outcome=outcome).inc()
    return result


async def _outcome(spec: ToolSpec, run: Runner, body: bytes, time_limit: float) -> ToolResult:
    try:
        request = ToolRequest.model_validate_json(body)
    except ValidationError as exc:
        message = f"the request is not a ToolRequest: {_describe(exc)}"
        return ToolResult.failure(spec.name, "bad_request", message)
    # Core requests do not pass through the durable consumers that set the incident: every log
    # line of this request (the tool's own included) names the incident it is for.
    token = current_incident.set(request.incident_id)
    try:
        return await _run(spec, run, request, time_limit)
    finally:
        current_incident.reset(token)


async def _run(spec: ToolSpec, run: Runner, request: ToolRequest, time_limit: float) -> ToolResult:
    try:
        args = parse_args(spec, request.args)
        async with asyncio.timeout(time_limit):  # no extra task per call, unlike wait_for
            data = await run(args)
    except BackendError as exc:
        log.warning("%s failed (%s): %s", spec.name, exc.kind, exc.message)
        return ToolResult.failure(spec.name, exc.kind, exc.message, exc.retry_after)
    except TimeoutError:
        log.warning("%s timed out after %ss", spec.name, time_limit)
        return ToolResult.failure(spec.name, "timeout", f"{spec.name} did not finish within {time_limit:g}s")
    except Exception as exc:
        log.exception("%s crashed", spec.name)
        return ToolResult.failure(spec.name, "internal", f"{type(exc).__name__}: {exc}")
    return ToolResult.success(spec.name, data)


def parse_args(spec: ToolSpec, args: dict[str, Any]) -> BaseModel:
    """The spec's args model; unknown names are refused so a misspelt filter is not silently ignored."""
    fields = spec.args_model.model_fields
    known = set(fields) | {f.alias for f in fields.values() if f.alias}
    unknown = sorted(set(args) - known)
    if unknown:
        raise BackendError(
            "bad_request",
            f"unknown argument(s) {', '.join(unknown)} for {spec.name}; expected: {', '.join(fields)}",
        )
    try:
        return spec.args_model.model_validate(args)
    except ValidationError as exc:
        raise BackendError("bad_request", f"invalid arguments for {spec.name}: {_describe(exc)}") from exc


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()
    )
