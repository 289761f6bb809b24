"""The demo incident: a real bug at a known line, and logs, metrics and an alert that tell its story."""

from __future__ import annotations

import json
import re
import runpy
import subprocess
import traceback
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from services.runtime.demo import (
    DEMO_BUGGY_FILE,
    DEMO_BUGGY_LINE,
    DEMO_SERVICE,
    demo_alert_webhook,
    demo_log_lines,
    demo_routes,
    install_demo_code,
)

NOW = datetime(2026, 11, 24, 6, 5, 0, 123000, tzinfo=UTC)
TYPE_ERROR = "TypeError: 'NoneType' object is not subscriptable"
TRACEBACK_HEAD = "Unhandled exception in POST /api/v1/reservations\nTraceback (most recent call last):\n"
ISO_MS_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def _parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def buggy_file(tmp_path: Path) -> Path:
    code_dir = install_demo_code(tmp_path / "code")
    assert code_dir == tmp_path / "code"
    return code_dir / DEMO_BUGGY_FILE


@pytest.fixture
def real_failure(buggy_file: Path) -> traceback.FrameSummary:
    """The innermost frame of the error the installed demo code really raises for an uncached SKU."""
    namespace = runpy.run_path(str(buggy_file), run_name="demo_inventory_service")
    with pytest.raises(TypeError) as raised:
        namespace["reserve_stock"]("sku-90042", 1)
    assert f"{raised.type.__name__}: {raised.value}" == TYPE_ERROR
    return traceback.extract_tb(raised.value.__traceback__)[-1]


def test_install_writes_only_the_service_module(tmp_path: Path) -> None:
    code_dir = install_demo_code(tmp_path)
    written = sorted(
        p.relative_to(code_dir).as_posix()
        for p in code_dir.rglob("*")
        if p.is_file() and ".git" not in p.parts
    )
    assert written == [DEMO_BUGGY_FILE]


def test_the_newest_commit_brought_the_bug_minutes_ago(tmp_path: Path) -> None:
    """The demo checkout has a history, so the diagnosis can name the change that broke it."""
    code_dir = install_demo_code(tmp_path, now=NOW)
    log = subprocess.run(
        ["git", "log", "--format=%cI %s", "-p", "--", DEMO_BUGGY_FILE],
        cwd=code_dir, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    newest = log.splitlines()[0]
    assert "warm stock cache" in newest
    assert NOW - timedelta(hours=1) < datetime.fromisoformat(newest.split()[0]) < NOW
    assert "-    entry = _STOCK_CACHE.get(sku) or _WAREHOUSE_DB.stock_row(sku)" in log
    assert "+    entry = _STOCK_CACHE.get(sku)\n" in log + "\n"
    assert (
        subprocess.run(["git", "status", "--porcelain"], cwd=code_dir, capture_output=True, text=True).stdout
        == ""
    )


def test_installed_code_raises_type_error_at_the_buggy_line(
    buggy_file: Path, real_failure: traceback.FrameSummary
) -> None:
    assert real_failure.filename == str(buggy_file)
    assert real_failure.lineno == DEMO_BUGGY_LINE
    assert real_failure.name == "reserve_stock"


def test_installed_code_works_for_a_cached_sku(buggy_file: Path) -> None:
    # The bug is the cache miss, not the whole function.
    namespace = runpy.run_path(str(buggy_file), run_name="demo_inventory_service")
    reservation = namespace["reserve_stock"]("sku-48213", 2)
    assert (reservation.sku, reservation.quantity) == ("sku-48213", 2)


def test_reinstall_restores_the_bug(buggy_file: Path) -> None:
    buggy_file.write_text("# fixed\n")
    install_demo_code(buggy_file.parent.parent)
    assert len(buggy_file.read_text().splitlines()) > DEMO_BUGGY_LINE


def test_logged_traceback_matches_the_real_failure(
    buggy_file: Path, real_failure: traceback.FrameSummary
) -> None:
    source_line = buggy_file.read_text().splitlines()[DEMO_BUGGY_LINE - 1].strip()
    assert real_failure.line == source_line
    innermost = f'  File "/app/{DEMO_BUGGY_FILE}", line {real_failure.lineno}, in {real_failure.name}'
    errors = [line for line in demo_log_lines(NOW) if line["message"].startswith(TRACEBACK_HEAD)]
    assert errors
    for line in errors:
        assert line["level"] == "ERROR"
        frames = line["message"].splitlines()
        # Innermost frame last, then the exception, as Python prints it.
        assert frames[-3] == innermost
        assert frames[-2] == f"    {source_line}"
        assert frames[-1] == TYPE_ERROR


def test_logs_look_like_the_load_balancer_tail() -> None:
    lines = demo_log_lines(NOW)
    assert 500 <= len(lines) <= 700
    for line in lines:
        assert set(line) == {"timestamp", "level", "message", "service"}
        assert ISO_MS_Z.match(line["timestamp"])
        assert line["level"] in {"INFO", "WARN", "ERROR"}
        assert line["service"] in {f"{DEMO_SERVICE}-1", f"{DEMO_SERVICE}-2"}
    stamps = [_parse_ts(line["timestamp"]) for line in lines]
    assert stamps == sorted(stamps)
    assert NOW - timedelta(seconds=300) <= stamps[0] and stamps[-1] <= NOW
    assert {line["level"] for line in lines} == {"INFO", "WARN", "ERROR"}
    assert len({line["message"] for line in lines if line["level"] == "INFO"}) > 400


def test_error_burst_starts_two_minutes_ago_and_dominates_the_errors() -> None:
    lines = demo_log_lines(NOW)
    signatures = Counter(line["message"].splitlines()[0][:40] for line in lines if line["level"] == "ERROR")
    (top, top_count), (_, second_count) = signatures.most_common(2)
    assert TRACEBACK_HEAD.startswith(top)
    assert top_count >= 5 * second_count > 0
    burst = [_parse_ts(line["timestamp"]) for line in lines if line["message"].startswith(TRACEBACK_HEAD)]
    assert NOW - timedelta(minutes=2) <= min(burst) < NOW - timedelta(seconds=100)


def test_logs_cover_the_requested_window() -> None:
    lines = demo_log_lines(NOW, seconds=60)
    assert 60 <= len(lines) <= 200
    assert all(_parse_ts(line["timestamp"]) >= NOW - timedelta(seconds=60) for line in lines)


def test_logs_are_deterministic_for_a_fixed_now() -> None:
    assert demo_log_lines(NOW) == demo_log_lines(NOW)
    assert demo_log_lines(NOW) != demo_log_lines(NOW, seed=8)
    assert demo_log_lines(NOW.replace(tzinfo=None)) == demo_log_lines(NOW)


def test_webhook_is_an_alertmanager_v4_group() -> None:
    body = json.loads(json.dumps(demo_alert_webhook(NOW)))
    assert set(body) == {
        "receiver", "status", "alerts", "groupLabels", "commonLabels", "commonAnnotations",
        "externalURL", "version", "groupKey", "truncatedAlerts",
    }  # fmt: skip
    assert body["version"] == "4"
    assert body["status"] == "firing"
    assert body["receiver"] == "oncall-agent"
    assert body["groupKey"] == '{}:{alertname="HighErrorRate", service="inventory"}'
    assert body["groupLabels"] == {"alertname": "HighErrorRate", "service": "inventory"}
    assert body["truncatedAlerts"] == 0
    [alert] = body["alerts"]
    assert set(alert) == {
        "status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"
    }  # fmt: skip
    assert alert["labels"] == {
        "alertname": "HighErrorRate",
        "service": "inventory",
        "severity": "critical",
        "namespace": "shop",
    }
    assert alert["labels"] == body["commonLabels"]
    assert alert["annotations"] == body["commonAnnotations"]
    assert alert["annotations"]["summary"] == "Error rate above 20% on inventory"
    assert "http_errors_total" in alert["annotations"]["description"]
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert re.fullmatch(r"[0-9a-f]{16}", alert["fingerprint"])
    assert ISO_MS_Z.match(alert["startsAt"])
    age = NOW - _parse_ts(alert["startsAt"])
    assert timedelta(seconds=100) < age < timedelta(seconds=140)


def test_webhook_fingerprint_is_stable_across_resends() -> None:
    first = demo_alert_webhook(NOW)["alerts"][0]["fingerprint"]
    assert demo_alert_webhook(NOW + timedelta(minutes=1))["alerts"][0]["fingerprint"] == first


@pytest.fixture
def client() -> TestClient:
    return TestClient(Starlette(routes=demo_routes(lambda: NOW)))


def test_logs_tail_serves_the_load_balancer_contract(client: TestClient) -> None:
    response = client.get("/demo/logs/tail", params={"seconds": 300, "limit": 2000})
    assert response.status_code == 200
    assert response.json() == demo_log_lines(NOW, 300)


def test_logs_tail_returns_the_newest_lines_within_limit(client: TestClient) -> None:
    response = client.get("/demo/logs/tail", params={"seconds": 300, "limit": 10})
    assert response.json() == demo_log_lines(NOW, 300)[-10:]
    recent = client.get("/demo/logs/tail", params={"seconds": 30}).json()
    assert recent and all(_parse_ts(line["timestamp"]) >= NOW - timedelta(seconds=30) for line in recent)


@pytest.mark.parametrize("params", [{"seconds": "abc"}, {"limit": "1.5"}, {"seconds": "0"}, {"limit": "-3"}])
def test_logs_tail_rejects_bad_parameters(client: TestClient, params: dict[str, str]) -> None:
    response = client.get("/demo/logs/tail", params=params)
    assert response.status_code == 400
    assert next(iter(params)) in response.json()["error"]


def _sample(client: TestClient, query: str) -> float:
    response = client.get("/demo/api/v1/query", params={"query": query})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "success"
    assert body["data"]["resultType"] == "vector"
    [series] = body["data"]["result"]
    timestamp, value = series["value"]
    assert isinstance(timestamp, float) and timestamp == pytest.approx(NOW.timestamp())
    assert isinstance(value, str)
    return float(value)


def test_prometheus_query_gives_an_error_rate_above_the_threshold(client: TestClient) -> None:
    errors = _sample(client, "sum(rate(http_errors_total[1m]))")
    requests = _sample(client, 'sum(rate(http_requests_total{service="inventory"}[1m]))')
    assert errors == pytest.approx(4.6)
    assert requests == pytest.approx(19.8)
    ratio = _sample(client, demo_alert_webhook(NOW)["alerts"][0]["annotations"]["description"])
    assert ratio == pytest.approx(errors / requests)
    assert 0.2 < ratio < 0.25


def test_prometheus_query_unknown_metric_is_an_empty_vector(client: TestClient) -> None:
    response = client.get("/demo/api/v1/query", params={"query": "up"})
    assert response.json() == {"status": "success", "data": {"resultType": "vector", "result": []}}


def test_prometheus_query_without_expression_is_bad_data(client: TestClient) -> None:
    response = client.get("/demo/api/v1/query")
    assert response.status_code == 400
    assert response.json()["errorType"] == "bad_data"
