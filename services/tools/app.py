"""Wiring of the tools service: one core-NATS responder per read-only tool of the registry, each
answering with its backend (or `not_configured`); how they answer is `answers.py`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from services.contracts import tools
from services.runtime.http_client import async_client
from services.runtime.service import Service, ServiceContext, ServiceParts
from services.tools.answers import Runner, ToolsRouter
from services.tools.commits import CommitSource, recent_commits
from services.tools.error_rate import RateQueries, error_rate
from services.tools.errors import BackendError
from services.tools.git import LocalGit
from services.tools.github import CodeClient, CodeSource, GitHubClient, LocalCheckout
from services.tools.logs import LogsClient, LogSource, fetch_logs
from services.tools.loki import LokiClient
from services.tools.paths import ResolvedPaths
from services.tools.prometheus import PrometheusClient
from services.tools.prometheus_query import query_prometheus
from services.tools.settings import ToolsSettings

log = logging.getLogger("oncall.tools")

USER_AGENT = "oncall-agent-tools"
CONNECT_TIMEOUT_SECONDS = 3.0


def wire(ctx: ServiceContext[ToolsSettings]) -> ServiceParts:
    settings = ctx.settings
    http = async_client(
        timeout=httpx.Timeout(
            settings.tool_timeout_seconds, connect=min(CONNECT_TIMEOUT_SECONDS, settings.tool_timeout_seconds)
        ),
        headers={"User-Agent": USER_AGENT},
    )
    runners = make_runners(settings, http)
    router = ToolsRouter(time_limit=settings.tool_timeout_seconds, max_workers=settings.tool_max_workers)
    for spec in tools.READ_TOOLS:
        missing = _not_configured(f"{spec.name} is not implemented by this tools service")
        router.serve(spec, runners.get(spec.name, missing))
    return ServiceParts(router=router, on_stop=[http.aclose])


SERVICE = Service(name="tools", settings=ToolsSettings, wire=wire)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def make_runners(
    settings: ToolsSettings, http: httpx.AsyncClient, clock: Callable[[], datetime] = _utc_now
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
    # fetch_code and recent_commits share what each learnt of where a frame's file is.
    resolved = ResolvedPaths()
    source = code_source(settings, http)
    if source is not None:
        code = CodeClient(source, tools.FETCH_CODE.max_output_chars, resolved)
        runners[tools.FETCH_CODE.name] = lambda a: code.fetch(a.file_path, a.line, a.context_lines)
    else:
        runners[tools.FETCH_CODE.name] = _not_configured(no_code)
    history = commit_source(settings, http)
    if history is not None:
        runners[tools.RECENT_COMMITS.name] = lambda a: recent_commits(history, a, budget, clock(), resolved)
    else:
        runners[tools.RECENT_COMMITS.name] = _not_configured(no_code)
    return runners


def log_sources(settings: ToolsSettings, http: httpx.AsyncClient) -> dict[str, LogSource]:
    """Both when both are set: fetch_logs asks them at once and merges their lines."""
    sources: dict[str, LogSource] = {}
    if settings.lb_url:
        sources["lb"] = LogsClient(settings.lb_url, http)
    if settings.loki_url:
        sources["loki"] = LokiClient(settings.loki_url, http)
    return sources


def _github(settings: ToolsSettings, http: httpx.AsyncClient) -> GitHubClient | None:
    if not settings.github_configured:
        return None
    assert settings.github_owner and settings.github_repo  # github_configured
    token = settings.github_token.get_secret_value() if settings.github_token else None
    return GitHubClient(
        http, settings.github_api_url, settings.github_owner, settings.github_repo, settings.github_ref, token
    )


def code_source(settings: ToolsSettings, http: httpx.AsyncClient) -> CodeSource | None:
    """CODE_DIR wins when both are set: it is the explicit local choice (and needs no network)."""
    if settings.code_dir is not None:
        return LocalCheckout(settings.code_dir)
    return _github(settings, http)


def commit_source(settings: ToolsSettings, http: httpx.AsyncClient) -> CommitSource | None:
    """The same choice as `code_source`: the history of the code fetch_code reads."""
    if settings.code_dir is not None:
        return LocalGit(settings.code_dir, settings.tool_timeout_seconds)
    return _github(settings, http)


def _not_configured(reason: str) -> Runner:
    async def run(_: Any) -> Any:
        raise BackendError("not_configured", reason)

    return run
