"""HTTP: health, readiness and metrics beside the services' own routes."""

from collections.abc import Awaitable, Callable, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from services.runtime import metrics


def build_http_app(
    service_routes: Sequence[BaseRoute],
    is_ready: Callable[[], Awaitable[tuple[bool, str]]],
    metrics_route: Callable[[Request], Awaitable[Response]] | None = None,
) -> Starlette:
    """`metrics_route`: another /metrics (the intake process's, merging both processes')."""

    async def healthz(_: Request) -> Response:
        # Liveness only: a NATS outage must not make Kubernetes restart every pod.
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        ready, why = await is_ready()
        return JSONResponse({"ready": ready, "detail": why}, status_code=200 if ready else 503)

    async def metrics_endpoint(_: Request) -> Response:
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_route or metrics_endpoint, methods=["GET"]),
        *service_routes,
    ]
    return Starlette(routes=routes)
