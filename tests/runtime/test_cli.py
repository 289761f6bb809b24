"""The `oncall` command as an operator uses it: one service alone, clear errors, health and metrics."""

import time
from pathlib import Path

import httpx
import pytest
from support.processes import OncallProcess, free_port, run_oncall

from services.runtime.cli import reply_sender
from services.runtime.embedded_nats import EmbeddedNats


def test_run_fails_fast_and_clearly_when_nats_is_unreachable() -> None:
    started = time.monotonic()
    result = run_oncall(["run", "tools", "--http-port", "0"], {"NATS_URL": f"nats://127.0.0.1:{free_port()}"})
    assert result.returncode == 1
    assert "cannot reach NATS" in result.stderr and "NATS_URL" in result.stderr
    assert time.monotonic() - started < 10


def test_run_needs_nats_url() -> None:
    result = run_oncall(["run", "diagnoser"], {})
    assert result.returncode == 2 and "NATS_URL is required" in result.stderr


def test_a_bad_setting_is_reported_by_name() -> None:
    result = run_oncall(["up"], {"USER_WHATSAPP_NUMBER": "call-me-maybe"})
    assert result.returncode == 2
    assert "USER_WHATSAPP_NUMBER" in result.stderr and "E.164" in result.stderr


def test_one_service_alone_serves_its_routes_health_and_metrics(clean_bus: str, tmp_path: Path) -> None:
    with OncallProcess(
        ["run", "alert_ingest"], {"NATS_URL": clean_bus, "INGEST_TOKEN": "t"}, tmp_path
    ) as ingest:
        ingest.wait_ready()
        assert httpx.get(ingest.url + "/healthz").status_code == 200
        metrics = httpx.get(ingest.url + "/metrics").text
        assert "oncall_ingest_webhooks_total" in metrics
        # Another service's route is not served by this one.
        assert httpx.post(ingest.url + "/webhook/twilio").status_code == 404
        assert httpx.get(ingest.url + "/alerts").status_code == 405
        assert ingest.stop() == 0


def test_readiness_and_intake_follow_nats(tmp_path: Path, fixtures_dir: Path) -> None:
    """While NATS is down /readyz says 503 and /alerts answers 503 (Alertmanager retries 5xx),
    /healthz stays 200 (no restart storm); when NATS is back, so is the service."""
    hook = (fixtures_dir / "alertmanager_webhook_real.json").read_bytes()
    headers = {"Authorization": "Bearer t", "Content-Type": "application/json"}
    with (
        EmbeddedNats(tmp_path / "nats") as server,
        OncallProcess(
            ["run", "alert_ingest"], {"NATS_URL": server.url, "INGEST_TOKEN": "t"}, tmp_path
        ) as ingest,
    ):
        ingest.wait_ready()
        server.stop()
        deadline = time.monotonic() + 10
        while httpx.get(ingest.url + "/readyz").status_code != 503 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert httpx.get(ingest.url + "/readyz").status_code == 503
        assert httpx.get(ingest.url + "/healthz").status_code == 200
        assert (
            httpx.post(ingest.url + "/alerts", content=hook, headers=headers, timeout=15).status_code == 503
        )


def test_reply_speaks_as_the_first_person_on_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER_WHATSAPP_NUMBER", "whatsapp:+15551230001, +15551230002")
    assert reply_sender() == "+15551230001"
    monkeypatch.delenv("USER_WHATSAPP_NUMBER")
    assert reply_sender() == "console"
