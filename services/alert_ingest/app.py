"""alert_ingest: POST /alerts -> JetStream, and the silences asked for on WhatsApp. Wiring only."""

from starlette.routing import Route

from services.alert_ingest.alertmanager import AlertmanagerClient
from services.alert_ingest.endpoint import make_alerts_endpoint
from services.alert_ingest.silences import handle_silence
from services.contracts import consumers
from services.contracts.models import SilenceRequested
from services.runtime.bus import subscribe_durable
from services.runtime.service import ServiceContext, ServiceParts


def wire(ctx: ServiceContext) -> ServiceParts:
    # Silences asked for on WhatsApp are executed here, beside the rest of the Alertmanager side.
    alertmanager = (
        AlertmanagerClient(ctx.settings.alertmanager_url) if ctx.settings.alertmanager_url else None
    )

    async def on_silence(request: SilenceRequested) -> None:
        await handle_silence(request, ctx.bus, alertmanager)

    subscribe_durable(ctx.broker, ctx.bus, consumers.ALERTMANAGER_SILENCES, SilenceRequested, on_silence)
    return ServiceParts(
        routes=[Route("/alerts", make_alerts_endpoint(ctx), methods=["POST"])],
        on_stop=[alertmanager.aclose] if alertmanager else [],
    )
