"""A real Prometheus (2.42, the Debian package) watches a checkout service whose requests fail 25%
of the time. Its HighErrorRate rule fires through a real Alertmanager into the product, and the
product reads the error rate back from the same Prometheus: the seed's whole loop, no fakes but
WhatsApp.
"""

import re
from pathlib import Path

from fakes import FakeTwilio
from integration.real_servers import (
    ON_CALL,
    BusWatch,
    ErrorRateExporter,
    Webhook,
    product_settings,
    running_alertmanager,
    running_prometheus,
    until,
)
from support.processes import free_port, oncall_up

from services.contracts import subjects
from services.contracts.models import ToolRequest, ToolResult
from services.contracts.tool_results import ErrorRateResult

TOKEN = "am-to-oncall-s3cret"
# Prometheus's notifier needs ~5 s to discover Alertmanager; then Alertmanager's group_wait (1 s).
FIRING_TIMEOUT = 30.0
CHECKOUT = '{}:{alertname="HighErrorRate", service="checkout"}'


async def test_a_prometheus_alert_is_diagnosed_with_the_error_rate_prometheus_measures(
    clean_bus: str, bus: BusWatch, twilio: FakeTwilio, tmp_path: Path
) -> None:
    prometheus_port, alertmanager_port = free_port(), free_port()
    prometheus_url = f"http://127.0.0.1:{prometheus_port}"
    settings = product_settings(clean_bus, twilio, tmp_path, INGEST_TOKEN=TOKEN, PROM_URL=prometheus_url)
    webhook = Webhook("oncall-agent", f"http://127.0.0.1:{settings['ONCALL_HTTP_PORT']}/alerts", bearer=TOKEN)
    # Prometheus first: it scrapes and finds its Alertmanager while the product starts.
    with (
        ErrorRateExporter(service="checkout", requests_per_second=20, errors_per_second=5) as exporter,
        running_prometheus(
            tmp_path, exporter.target, f"http://127.0.0.1:{alertmanager_port}", port=prometheus_port
        ) as prometheus,
        oncall_up(settings, tmp_path) as oncall,
        running_alertmanager([webhook], tmp_path, port=alertmanager_port) as am,
    ):

        def explain() -> str:
            sent = "\n".join(m["Body"][:120] for m in twilio.messages)
            return (
                f"--- WhatsApp:\n{sent}\n--- oncall:\n{oncall.stderr[-2000:]}\n"
                f"--- alertmanager:\n{am.logs[-1500:]}\n--- prometheus:\n{prometheus.logs[-2000:]}"
            )

        # Prometheus's own alert, as Alertmanager delivered it, is on the bus ...
        stored = await until(lambda: bus.stored_alerts(CHECKOUT), FIRING_TIMEOUT, "HighErrorRate", explain)
        group = stored[0]
        (fired,) = group["alerts"]
        assert fired["labels"] == {
            "alertname": "HighErrorRate",
            "service": "checkout",
            "severity": "critical",
        }
        assert fired["annotations"]["summary"] == "Error rate 25% on checkout"  # Prometheus's own figure
        assert fired["generatorURL"].startswith(f"{prometheus_url}/graph?g0.expr=")  # --web.external-url
        assert group["externalURL"].startswith(am.url) and group["change"] == "new"

        # ... and the on-call people read a diagnosis of checkout with the error rate the
        # product's compute_error_rate tool got from this Prometheus.
        incident = group["incident_id"]
        await until(
            lambda: len([m for m in twilio.messages if f"#{incident}" in m["Body"]]) >= len(ON_CALL),
            FIRING_TIMEOUT,
            "the diagnosis on WhatsApp",
            explain,
        )
        told = [m for m in twilio.messages if f"#{incident}" in m["Body"]]
        assert sorted(m["To"] for m in told) == sorted(f"whatsapp:{n}" for n in ON_CALL)
        body = told[0]["Body"]
        assert body.startswith(f"🚨 *Incident diagnosis* #{incident}\n*HighErrorRate on checkout*"), body
        shown = re.search(r"\*Error rate:\* ([0-9.]+)%", body)
        assert shown is not None, body
        assert abs(float(shown[1]) - 100 * exporter.error_rate) < 1.0, body
        assert f"Graph: {prometheus_url}/graph?g0.expr=" in body

        # Asked directly over NATS, as `nats req oncall.tools.compute_error_rate` would.
        reply = await bus.nc.request(
            subjects.tool_subject("compute_error_rate"),
            ToolRequest(args={"service": "checkout"}).to_bytes(),
            timeout=10,
        )
        result = ToolResult.model_validate_json(reply.data)
        rate = result.output(ErrorRateResult)
        assert rate is not None, result.error
        assert rate.service == "checkout"
        assert rate.error_rate is not None and abs(rate.error_rate - exporter.error_rate) < 0.01, rate
        # A young series under-reads per-second rates over [1m]; errors/requests stays exact.
        assert (rate.errors_per_second or 0) > 0 and (rate.requests_per_second or 0) > 0
        assert all('{service="checkout"}' in query for query in rate.queries)
