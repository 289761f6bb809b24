"""POST /alerts: Alertmanager webhooks -> JetStream, acknowledged only once stored."""

import logging
import time
from collections.abc import Awaitable, Callable

from nats.errors import Error as NatsError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from services.alert_ingest import metrics
from services.alert_ingest.incidents import RecentGroups, change_kind, next_group_entry
from services.alert_ingest.settings import AlertIngestSettings
from services.alert_ingest.webhook import (
    Credentials,
    Rejection,
    check_content_type,
    check_credentials,
    notification_id,
    parse_webhook,
    subject_status,
)
from services.contracts import streams, subjects
from services.contracts.models import GroupIndexEntry, group_hash
from services.runtime.bus import CasConflict
from services.runtime.service import ServiceContext

log = logging.getLogger("oncall.alert_ingest")


def credentials_from(ctx: ServiceContext[AlertIngestSettings]) -> Credentials:
    s = ctx.settings
    return Credentials(
        # An empty secret is no secret: treated as unset, never as "an empty header matches".
        token=(s.ingest_token.get_secret_value() or None) if s.ingest_token else None,
        basic_user=s.ingest_basic_user or None,
        basic_password=s.ingest_basic_password.get_secret_value() if s.ingest_basic_password else None,
        allow_anonymous=s.ingest_allow_anonymous,
    )


def make_alerts_endpoint(
    ctx: ServiceContext[AlertIngestSettings],
) -> Callable[[Request], Awaitable[Response]]:
    """POST /alerts: authenticate, read within the limit, parse, assign the incident, publish."""
    settings = ctx.settings
    creds = credentials_from(ctx)
    recent = RecentGroups()
    if creds.token is None and creds.basic_user is None:
        if creds.allow_anonymous:
            log.warning("INGEST_ALLOW_ANONYMOUS=true: anyone who reaches /alerts can page the on-call people")
        else:
            log.warning(
                "neither INGEST_TOKEN nor INGEST_BASIC_USER is set: every webhook will be refused (401)"
            )

    def reject(rejection: Rejection) -> Response:
        metrics.webhooks.labels(outcome="rejected").inc()
        metrics.ingest_rejections.labels(
            status=str(rejection.status), reason=rejection.reason.split(":")[0][:40]
        ).inc()
        log.warning("refused webhook: %s %s", rejection.status, rejection.reason)
        headers = {"WWW-Authenticate": creds.challenge} if rejection.status == 401 else None
        return JSONResponse({"error": rejection.reason}, status_code=rejection.status, headers=headers)

    async def read_limited(request: Request) -> bytes | Rejection:
        """Stops reading as soon as the body is over the limit."""
        limit = settings.ingest_max_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return Rejection(413, f"body over {limit} bytes (ONCALL_INGEST_MAX_BYTES)")
        body = bytearray()
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    return Rejection(413, f"body over {limit} bytes (ONCALL_INGEST_MAX_BYTES)")
        except ClientDisconnect:
            return Rejection(400, "client disconnected before the body was complete")
        return bytes(body)

    # The counters every webhook moves, looked up once (a labels() lookup per request adds up).
    received, accepted, duplicates = (
        metrics.webhooks.labels(outcome=o) for o in ("received", "accepted", "duplicate")
    )
    alerts_by_status = {
        status: metrics.ingest_alerts.labels(status=status) for status in ("firing", "resolved")
    }

    async def post_alerts(request: Request) -> Response:
        received.inc()
        refused = check_credentials(request.headers.get("authorization"), creds) or check_content_type(
            request.headers.get("content-type")
        )
        if refused:
            return reject(refused)
        body = await read_limited(request)
        if isinstance(body, Rejection):
            return reject(body)
        group = parse_webhook(body)
        if isinstance(group, Rejection):
            return reject(group)
        started = time.perf_counter()
        before: list[GroupIndexEntry | None] = [None]

        def advance(current: GroupIndexEntry | None) -> GroupIndexEntry | None:
            before[0] = current
            return next_group_entry(current, group)

        try:
            key = group_hash(group.group_key)
            entry = await ctx.bus.kv_update(
                streams.GROUPS, key, GroupIndexEntry, advance, likely_absent=key not in recent
            )
            assert entry is not None
            recent.add(key)
            group.incident_id = entry.incident_id
            group.change = change_kind(before[0], entry)
            status = subject_status(group)
            subject = subjects.ALERTS_FIRING if status == "firing" else subjects.ALERTS_RESOLVED
            ack = await ctx.bus.publish_event(subject, group, msg_id=notification_id(group))
        except (NatsError, OSError, TimeoutError, CasConflict) as exc:
            # NATS down or slow: Alertmanager retries 5xx, so nothing is lost.
            log.error("could not publish alert group %s: %r", group.group_key, exc)
            metrics.webhooks.labels(outcome="unavailable").inc()
            return JSONResponse({"error": "event bus unavailable, retry later"}, status_code=503)
        except Exception:  # a bug of ours: say so loudly, and still let Alertmanager retry later
            log.exception("failed to accept alert group %s", group.group_key)
            metrics.webhooks.labels(outcome="error").inc()
            return JSONResponse({"error": "internal error, retry later"}, status_code=503)
        metrics.ingest_publish_seconds.observe(time.perf_counter() - started)
        duplicate = bool(ack.duplicate)
        (duplicates if duplicate else accepted).inc()
        if not duplicate:
            for alert in group.alerts:
                alerts_by_status[alert.status].inc()
        return JSONResponse(
            {
                "incident_ids": [entry.incident_id],
                "status": status,
                "change": group.change,
                "duplicate": duplicate,
            },
            status_code=202,
        )

    return post_alerts
