"""alert_ingest: POST /alerts -> JetStream, and the silences asked for on WhatsApp. Wiring only."""

from starlette.routing import Route

from services.alert_ingest.alertmanager import AlertmanagerClient
from services.alert_ingest.endpoint import make_alerts_endpoint
from services.alert_ingest.settings import AlertIngestSettings
from services.alert_ingest.silences import handle_silence, report_given_up
from services.contracts import consumers, subjects
from services.contracts.models import AlertGroup, NotifyText, SilenceApplied, SilenceRequested
from services.runtime.router import ServiceRouter
from services.runtime.service import Service, ServiceContext, ServiceParts


def wire(ctx: ServiceContext[AlertIngestSettings]) -> ServiceParts:
    settings = ctx.settings
    # Silences asked for on WhatsApp are executed here, beside the rest of the Alertmanager side.
    alertmanager = (
        AlertmanagerClient(settings.alertmanager_url)
        if settings.alertmanager_configured and settings.alertmanager_url
        else None
    )
    router = ServiceRouter(ctx.bus, ctx.service)
    router.publishes(subjects.ALERTS_FIRING, AlertGroup)
    router.publishes(subjects.ALERTS_RESOLVED, AlertGroup)
    router.publishes(subjects.NOTIFY_TEXT, NotifyText)
    router.publishes(subjects.SILENCES_APPLIED, SilenceApplied)

    async def on_given_up(request: SilenceRequested, reason: str) -> None:
        await report_given_up(request, reason, ctx.bus)

    @router.durable(consumers.ALERTMANAGER_SILENCES, on_dead_letter=on_given_up)
    async def on_silence_requested(request: SilenceRequested) -> None:
        await handle_silence(request, ctx.bus, alertmanager)

    return ServiceParts(
        router=router,
        routes=[Route("/alerts", make_alerts_endpoint(ctx), methods=["POST"])],
        on_stop=[alertmanager.aclose] if alertmanager else [],
    )


SERVICE = Service(
    name="alert_ingest",
    settings=AlertIngestSettings,
    wire=wire,
    refuse=AlertIngestSettings.unauthenticated,
)
