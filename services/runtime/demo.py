"""The demo incident behind `oncall demo`, built from nothing but the installed package.

The story: a catalog import puts new SKUs on sale that the inventory service's warm stock
cache does not hold, so `POST /api/v1/reservations` fails for them with a TypeError at
`inventory/inventory_service.py` line 47 and the error rate jumps above 20%. This module
provides the pieces a local run needs: the service's source code (a real bug at a known
line), the load balancer's recent logs, Prometheus numbers, and the Alertmanager webhook.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.runtime.times import as_utc

DEMO_SERVICE = "inventory"
DEMO_BUGGY_FILE = "inventory/inventory_service.py"
DEMO_BUGGY_LINE = 47
DEMO_PREFIX = "/demo"

_ASSETS = files("services.runtime") / "demo_assets"
_BUGGY_FUNCTION = "reserve_stock"
# Where the service's code lives inside its container, as printed in its tracebacks.
_APP_ROOT = "/app/"
_REPLICAS = ("inventory-1", "inventory-2")

# Log volume and shape: ~1.8 requests/s plus a second line for each failed request gives
# ~600 lines per 5 minutes; the burst starts 2 minutes before `now`, as the alert does.
_EVENTS_PER_SECOND = 1.8
_BURST = timedelta(minutes=2)
_BURST_FAILURE_SHARE = 0.23  # share of requests failing in the burst, matching the metrics
_DB_TIMEOUT_SHARE = 0.012  # background noise present before and during the burst
_WARN_SHARE = 0.03
# The catalog import added these SKUs; none of them is in the stock cache.
_NEW_SKU_FIRST = 90000
_NEW_SKU_COUNT = 214

# Prometheus instant-query answers (per second), so the ratio is ~23% > the 20% threshold.
_ERRORS_PER_SECOND = 4.6
_REQUESTS_PER_SECOND = 19.8

_DEFAULT_TAIL_SECONDS = 300
_DEFAULT_TAIL_LIMIT = 2000
# Bounds keep one request from generating an unbounded list.
_MAX_TAIL_SECONDS = 3600
_MAX_TAIL_LIMIT = 10_000

_INFO_TEMPLATES = (
    "GET /api/v1/inventory/{sku} 200 {ms}ms request_id={rid}",
    "GET /api/v1/inventory/{sku}/availability 200 {ms}ms request_id={rid}",
    "GET /api/v1/inventory?warehouse={wh}&page={page} 200 {ms}ms request_id={rid}",
    "POST /api/v1/reservations 201 {ms}ms request_id={rid} sku={sku} qty={qty}",
    "Reserved {sku} x{qty} as {res} (warehouse {wh})",
    "GET /api/v1/reservations/{res} 200 {ms}ms request_id={rid}",
    "POST /api/v1/reservations/{res}/confirm 200 {ms}ms request_id={rid}",
    "DELETE /api/v1/reservations/{res} 204 {ms}ms request_id={rid}",
    "Released expired reservation {res} ({sku} x{qty})",
    "PUT /api/v1/inventory/{sku}/restock 200 {ms}ms request_id={rid}",
    "Published inventory.reserved for {res} to topic orders-events",
    "GET /healthz 200 1ms",
    "GET /metrics 200 {ms_small}ms",
)
# Reads dominate, as in a real shop.
_INFO_WEIGHTS = (30, 14, 6, 12, 8, 5, 6, 3, 3, 2, 6, 3, 1)
_WARN_TEMPLATES = (
    "Slow query {ms_slow}ms: SELECT available, reserved FROM stock_levels WHERE sku = '{sku}'",
    "Retrying warehouse-db connection (attempt 2/3) after {ms}ms: connection reset by peer",
    "Reservation {res} expired before confirmation ({sku} x{qty})",
)
_DB_TIMEOUT = (
    "Warehouse DB timeout after 2000ms in GET /api/v1/inventory/{sku}/availability "
    "request_id={rid}: canceling statement due to statement timeout"
)
_DB_TIMEOUT_ACCESS = "GET /api/v1/inventory/{sku}/availability 504 {ms_timeout}ms request_id={rid}"
_FAILED_ACCESS = "POST /api/v1/reservations 500 {ms}ms request_id={rid} sku={new_sku} qty={qty}"
_CATALOG_IMPORT = (
    f"Catalog import finished: {_NEW_SKU_COUNT} new SKUs on sale "
    f"(sku-{_NEW_SKU_FIRST}..sku-{_NEW_SKU_FIRST + _NEW_SKU_COUNT - 1})"
)

_ALERT_EXPR = (
    f'sum(rate(http_errors_total{{service="{DEMO_SERVICE}"}}[1m])) / '
    f'sum(rate(http_requests_total{{service="{DEMO_SERVICE}"}}[1m])) > 0.2'
)


def install_demo_code(target_dir: Path, now: datetime | None = None) -> Path:
    """Write the demo service's source tree into `target_dir` (the code dir root) and return it.

    Reads through importlib.resources so it works from an installed wheel; existing files
    are overwritten, which restores the bug if someone "fixed" a previous copy. Where git is
    installed, the tree gets a short history whose newest commit brought the bug, as a real
    checkout would (the diagnosis then names that commit).
    """
    _copy_tree(_ASSETS, target_dir)
    if shutil.which("git"):
        shutil.rmtree(target_dir / ".git", ignore_errors=True)  # each run: the bug arrived just now
        _write_history(target_dir, as_utc(now or datetime.now(UTC)))
    return target_dir


# The lookup as it was before the newest commit: with a fallback for SKUs the cache lacks.
_CACHED_LOOKUP = (
    "    entry = _STOCK_CACHE.get(sku)\n"
    "    # Every SKU on sale is warmed into the cache at startup, so no warehouse DB round trip here.\n"
)
_LOOKUP_WITH_FALLBACK = (
    "    entry = _STOCK_CACHE.get(sku) or _WAREHOUSE_DB.stock_row(sku)\n"
    "    # SKUs the cache has not seen yet (new in the catalog) come from the warehouse DB.\n"
)
# (hours before now, message, whether the lookup is still the old one)
_HISTORY = (
    (26 * 24, "inventory: reservations API with per-order caps", True),
    (0.75, "inventory: serve reservations from the warm stock cache (no DB round trip)", False),
)


def _write_history(code_dir: Path, now: datetime) -> None:
    """`git init` and commit the demo file twice: before and after the cache change."""
    path = code_dir / DEMO_BUGGY_FILE
    final = path.read_text(encoding="utf-8")
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_SYSTEM": os.devnull, "LC_ALL": "C"}

    def git(*args: str, when: datetime | None = None) -> None:
        stamp = {"GIT_AUTHOR_DATE": when.isoformat(), "GIT_COMMITTER_DATE": when.isoformat()} if when else {}
        subprocess.run(["git", *args], cwd=code_dir, env={**env, **stamp}, check=True, capture_output=True)

    try:
        git("init", "-q", "-b", "main")
        for hours_ago, message, with_fallback in _HISTORY:
            text = final.replace(_CACHED_LOOKUP, _LOOKUP_WITH_FALLBACK) if with_fallback else final
            path.write_text(text, encoding="utf-8")
            git("add", "-A")
            author = ("-c", "user.name=Dana Whitfield", "-c", "user.email=dana@shop.example")
            git(*author, "commit", "-q", "-m", message, when=now - timedelta(hours=hours_ago))
    except (OSError, subprocess.CalledProcessError):
        shutil.rmtree(code_dir / ".git", ignore_errors=True)  # no history: the demo runs without it
        path.write_text(final, encoding="utf-8")


def _copy_tree(src: Traversable, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.name == "__pycache__":  # bytecode left by a source checkout is not demo code
            continue
        if item.is_dir():
            _copy_tree(item, dest / item.name)
        else:
            (dest / item.name).write_bytes(item.read_bytes())


@cache
def _buggy_source_line() -> str:
    # Read from the asset itself so the logged traceback can never drift from the code.
    text = _ASSETS.joinpath(*DEMO_BUGGY_FILE.split("/")).read_text(encoding="utf-8")
    return text.splitlines()[DEMO_BUGGY_LINE - 1].strip()


def _traceback_message() -> str:
    return (
        "Unhandled exception in POST /api/v1/reservations\n"
        "Traceback (most recent call last):\n"
        f'  File "{_APP_ROOT}inventory/api.py", line 88, in create_reservation\n'
        "    reservation = reserve_stock(body.sku, body.quantity)\n"
        f'  File "{_APP_ROOT}{DEMO_BUGGY_FILE}", line {DEMO_BUGGY_LINE}, in {_BUGGY_FUNCTION}\n'
        f"    {_buggy_source_line()}\n"
        "TypeError: 'NoneType' object is not subscriptable"
    )


def _iso_ms(moment: datetime) -> str:
    return as_utc(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fields(rng: random.Random) -> dict[str, Any]:
    # Every template draws from the same fields, so the random stream stays reproducible.
    return {
        "sku": f"sku-{rng.randint(10000, 89999)}",
        "new_sku": f"sku-{_NEW_SKU_FIRST + rng.randrange(_NEW_SKU_COUNT)}",
        "rid": f"{rng.getrandbits(64):016x}",
        "res": f"res-{rng.getrandbits(48):012x}",
        "wh": rng.choice(("ams-1", "ams-2", "fra-1")),
        "page": rng.randint(1, 40),
        "qty": rng.randint(1, 4),
        "ms": max(2, int(rng.lognormvariate(2.6, 0.5))),
        "ms_small": rng.randint(2, 6),
        "ms_slow": rng.randint(650, 1900),
        "ms_timeout": rng.randint(2001, 2012),
    }


def demo_log_lines(now: datetime, seconds: int = 300, seed: int = 7) -> list[dict[str, str]]:
    """The load balancer's log lines of the demo service for the `seconds` before `now`, oldest first.

    Deterministic for a given (now, seconds, seed). Normal traffic throughout, a background
    warehouse-DB timeout now and then, and from 2 minutes before `now` a burst of failed
    reservations whose ERROR messages carry the traceback ending at the buggy line.
    """
    now = as_utc(now)
    start = now - timedelta(seconds=seconds)
    burst_start = now - _BURST
    rng = random.Random(seed)
    stamped: list[tuple[datetime, str, str, str]] = []  # (time, level, message, service)

    import_at = burst_start - timedelta(seconds=4.2)  # the import that put uncached SKUs on sale
    if start < import_at:
        stamped.append((import_at, "INFO", _CATALOG_IMPORT, _REPLICAS[1]))

    moment = start + timedelta(seconds=rng.expovariate(_EVENTS_PER_SECOND))
    while moment <= now:
        replica = rng.choice(_REPLICAS)
        fields = _fields(rng)
        after = moment + timedelta(milliseconds=fields["ms"])
        roll = rng.random()
        if moment >= burst_start and roll < _BURST_FAILURE_SHARE:
            stamped.append((moment, "ERROR", _traceback_message(), replica))
            stamped.append((after, "INFO", _FAILED_ACCESS.format(**fields), replica))
        elif roll > 1 - _DB_TIMEOUT_SHARE:
            timed_out = moment + timedelta(milliseconds=fields["ms_timeout"])
            stamped.append((timed_out, "ERROR", _DB_TIMEOUT.format(**fields), replica))
            stamped.append((timed_out, "INFO", _DB_TIMEOUT_ACCESS.format(**fields), replica))
        elif roll > 1 - _DB_TIMEOUT_SHARE - _WARN_SHARE:
            stamped.append((moment, "WARN", rng.choice(_WARN_TEMPLATES).format(**fields), replica))
        else:
            template = rng.choices(_INFO_TEMPLATES, weights=_INFO_WEIGHTS)[0]
            stamped.append((moment, "INFO", template.format(**fields), replica))
        moment += timedelta(seconds=rng.expovariate(_EVENTS_PER_SECOND))

    stamped.sort(key=lambda line: line[0])  # stable: a request's lines keep their order
    return [
        {"timestamp": _iso_ms(at), "level": level, "message": message, "service": service}
        for at, level, message, service in stamped
        if at <= now  # a follow-up line of the last request may fall after `now`
    ]


def demo_alert_webhook(now: datetime, run_id: str = "") -> dict[str, Any]:
    """The Alertmanager v4 webhook body for the demo incident, firing since ~2 minutes before `now`.

    `run_id` puts the group under a route of its own (Alertmanager's group key is the route's
    matchers, then the group labels), so each demo run is a new incident."""
    labels = {
        "alertname": "HighErrorRate",
        "namespace": "shop",
        "service": DEMO_SERVICE,
        "severity": "critical",
    }
    annotations = {
        "description": _ALERT_EXPR,
        "runbook_url": "https://runbooks.example.com/high-error-rate",
        "summary": f"Error rate above 20% on {DEMO_SERVICE}",
    }
    # Stable per label set, like Alertmanager's own fingerprint, so re-sends deduplicate.
    label_text = ",".join(f"{name}={value}" for name, value in sorted(labels.items()))
    fingerprint = hashlib.sha256(label_text.encode()).hexdigest()[:16]
    starts_at = as_utc(now) - _BURST + timedelta(seconds=1.389)
    route = f'{{}}/{{demo_run="{run_id}"}}' if run_id else "{}"
    return {
        "receiver": "oncall-agent",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": annotations,
                "startsAt": _iso_ms(starts_at),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": f"http://prometheus.demo:9090/graph?g0.expr={quote_plus(_ALERT_EXPR)}&g0.tab=1",
                "fingerprint": fingerprint,
            }
        ],
        "groupLabels": {"alertname": labels["alertname"], "service": DEMO_SERVICE},
        "commonLabels": dict(labels),
        "commonAnnotations": dict(annotations),
        "externalURL": "http://alertmanager.demo:9093",
        "version": "4",
        "groupKey": f'{route}:{{alertname="HighErrorRate", service="{DEMO_SERVICE}"}}',
        "truncatedAlerts": 0,
    }


def _int_param(request: Request, name: str, default: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value: int | None = int(raw)
    except ValueError:
        value = None
    if value is None or not 1 <= value <= maximum:
        raise ValueError(f"{name} must be an integer from 1 to {maximum}, got {raw!r}")
    return value


def _prom_value(query: str) -> float | None:
    has_errors = "http_errors_total" in query
    has_requests = "http_requests_total" in query
    if has_errors and has_requests:  # the alert's own ratio expression
        return _ERRORS_PER_SECOND / _REQUESTS_PER_SECOND
    if has_errors:
        return _ERRORS_PER_SECOND
    if has_requests:
        return _REQUESTS_PER_SECOND
    return None


def _utc_now() -> datetime:
    return datetime.now(UTC)


def demo_routes(now_fn: Callable[[], datetime] = _utc_now) -> list[Route]:
    """Routes serving the demo load balancer and Prometheus under `DEMO_PREFIX`.

    The paths already carry the prefix (`/demo/logs/tail`, `/demo/api/v1/query`): add them
    to the app's routes as they are, so `LB_URL` and `PROM_URL` = `http://host:port/demo`.
    """

    async def logs_tail(request: Request) -> JSONResponse:
        try:
            seconds = _int_param(request, "seconds", _DEFAULT_TAIL_SECONDS, _MAX_TAIL_SECONDS)
            limit = _int_param(request, "limit", _DEFAULT_TAIL_LIMIT, _MAX_TAIL_LIMIT)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(demo_log_lines(now_fn(), seconds)[-limit:])

    async def instant_query(request: Request) -> JSONResponse:
        query = request.query_params.get("query", "")
        if not query.strip():
            error = 'invalid parameter "query": 1:1: parse error: no expression found in input'
            return JSONResponse({"status": "error", "errorType": "bad_data", "error": error}, status_code=400)
        value = _prom_value(query)
        sample = [round(now_fn().timestamp(), 3), str(value)]  # Prometheus: [float seconds, "string value"]
        result = [] if value is None else [{"metric": {}, "value": sample}]
        return JSONResponse({"status": "success", "data": {"resultType": "vector", "result": result}})

    return [
        Route(f"{DEMO_PREFIX}/logs/tail", logs_tail, methods=["GET"]),
        Route(f"{DEMO_PREFIX}/api/v1/query", instant_query, methods=["GET"]),
    ]
