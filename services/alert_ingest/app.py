"""alert_ingest: POST /alerts -> JetStream. Wiring only; logic in webhook.py and incidents.py."""

import logging
import time

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.alert_ingest.incidents import next_group_entry
from services.alert_ingest.webhook import (
    Rejection,
    check_bearer,
    notification_id,
    parse_webhook,
    subject_status,
)
from services.contracts import streams, subjects
from services.contracts.models import GroupIndexEntry, group_hash
from services.runtime import metrics
from services.runtime.service import ServiceContext, ServiceParts

log = logging.getLogger("oncall.alert_ingest")


def wire(ctx: ServiceContext) -> ServiceParts:
    settings = ctx.settings
    token = settings.ingest_token.get_secret_value() if settings.ingest_token else None
    if token is None and settings.ingest_allow_anonymous:
        log.warning("INGEST_ALLOW_ANONYMOUS=true: anyone who reaches /alerts can page the on-call people")

    def reject(rejection: Rejection) -> Response:
        metrics.webhooks.labels(outcome=f"rejected_{rejection.status}").inc()
        log.warning("rejected webhook: %s %s", rejection.status, rejection.reason)
        headers = {"WWW-Authenticate": 'Bearer realm="oncall"'} if rejection.status == 401 else None
        return JSONResponse({"error": rejection.reason}, status_code=rejection.status, headers=headers)

    async def read_limited(request: Request) -> bytes | Rejection:
        limit = settings.ingest_max_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return Rejection(413, f"body over {limit} bytes")
        body = bytearray()
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    return Rejection(413, f"body over {limit} bytes")
        except ClientDisconnect:
            return Rejection(400, "client disconnected")
        return bytes(body)

    async def post_alerts(request: Request) -> Response:
        metrics.webhooks.labels(outcome="received").inc()
        denied = check_bearer(request.headers.get("authorization"), token, settings.ingest_allow_anonymous)
        if denied:
            return reject(denied)
        body = await read_limited(request)
        if isinstance(body, Rejection):
            return reject(body)
        group = parse_webhook(body)
        if isinstance(group, Rejection):
            return reject(group)
        started = time.perf_counter()
        try:
            entry = await ctx.bus.kv_update(
                streams.GROUPS,
                group_hash(group.group_key),
                GroupIndexEntry,
                lambda current: next_group_entry(current, group),
            )
            assert entry is not None
            group.incident_id = entry.incident_id
            status = subject_status(group)
            subject = subjects.ALERTS_FIRING if status == "firing" else subjects.ALERTS_RESOLVED
            ack = await ctx.bus.publish_event(subject, group, msg_id=notification_id(group))
        except Exception as exc:  # NATS down or slow: Alertmanager retries 5xx, nothing is lost
            log.error("could not publish alert group %s: %r", group.group_key, exc)
            metrics.webhooks.labels(outcome="unavailable").inc()
            return JSONResponse({"error": "event bus unavailable, retry later"}, status_code=503)
        metrics.ingest_publish_seconds.observe(time.perf_counter() - started)
        metrics.webhooks.labels(outcome="duplicate" if ack.duplicate else "accepted").inc()
        return JSONResponse(
            {"incident_ids": [entry.incident_id], "status": status, "duplicate": bool(ack.duplicate)},
            status_code=202,
        )

    return ServiceParts(routes=[Route("/alerts", post_alerts, methods=["POST"])])
