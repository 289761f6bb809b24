"""HTTP: health, readiness and metrics beside the services' own routes."""

import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from services.runtime import metrics

log = logging.getLogger("oncall.http")

Endpoint = Callable[[Request], Awaitable[Response]]


class DirectRoutes:
    """Requests to a fixed path and method go straight to their endpoint; the rest through
    Starlette. Its middleware stack and router were a tenth of the intake's CPU per webhook
    (py-spy of `oncall run alert_ingest` under load), for nothing a fixed path needs."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]):
        self.app = app
        self.direct: dict[tuple[str, str], Endpoint] = {}
        for route in routes:
            if not isinstance(route, Route) or "{" in route.path:
                continue
            # Only `async def f(request)` endpoints: others Starlette adapts (threads, ASGI apps).
            if inspect.iscoroutinefunction(route.endpoint):
                for method in route.methods or ():
                    self.direct.setdefault((method, route.path), route.endpoint)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = (
            self.direct.get((scope.get("method", ""), scope.get("path", "")))
            if scope["type"] == "http"
            else None
        )
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        try:
            response = await endpoint(Request(scope, receive))
        except Exception:  # what Starlette's ServerErrorMiddleware would do: a 500, logged
            log.exception("%s %s failed", scope["method"], scope["path"])
            response = JSONResponse({"error": "internal error"}, status_code=500)
        await response(scope, receive, send)


def build_http_app(
    service_routes: Sequence[BaseRoute],
    is_ready: Callable[[], Awaitable[tuple[bool, str]]],
    metrics_route: Callable[[Request], Awaitable[Response]] | None = None,
) -> ASGIApp:
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
    return DirectRoutes(Starlette(routes=routes), routes)
