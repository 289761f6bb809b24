"""The broker factory: one NatsBroker per process, failing fast when NATS is unreachable."""

import logging
from typing import Any

import nats
import nats.errors
from faststream.nats import NatsBroker
from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from faststream.nats.prometheus import NatsPrometheusMiddleware

from services.runtime import metrics
from services.runtime.credentials import describe_error, mask_credentials
from services.runtime.nats_compat import enforce_fetch_timeout_contract

log = logging.getLogger("oncall.broker")
# FastStream's own messages (per-message access lines, task supervisor chatter) go through this
# logger, which the CLI keeps at WARNING unless ONCALL_LOG_LEVEL=DEBUG.
FASTSTREAM_LOGGER = logging.getLogger("oncall.faststream")

CONNECT_TIMEOUT_SECONDS = 3


class NatsUnreachable(RuntimeError):
    pass


def nats_servers(url: str) -> list[str]:
    """NATS_URL may name several servers, comma-separated (as the NATS CLI and the Go client
    accept it); nats-py takes them as a list and rejects the comma-separated string."""
    return [server.strip() for server in url.split(",") if server.strip()]


async def check_reachable(url: str, connect_timeout: int = CONNECT_TIMEOUT_SECONDS) -> None:
    """One quick connection attempt, so a wrong NATS_URL is reported at once instead of after
    the client's default 60 silent retries."""

    async def quiet(_: Exception) -> None:  # the exception below says it once, clearly
        return None

    try:
        # max_reconnect_attempts=0 means "forever" to nats-py's server selection: 1 = two tries.
        nc = await nats.connect(
            nats_servers(url),
            connect_timeout=connect_timeout,
            allow_reconnect=False,
            max_reconnect_attempts=1,
            reconnect_time_wait=0.5,
            error_cb=quiet,
            name="oncall-probe",
        )
    except (OSError, nats.errors.Error, TimeoutError) as exc:
        raise NatsUnreachable(
            f"cannot reach NATS at {mask_credentials(url)} ({describe_error(exc)}). "
            "Check NATS_URL, or unset it to run with an embedded nats-server (local mode)."
        ) from exc
    await nc.close()


def make_broker(url: str, name: str, tracing: bool = False) -> NatsBroker:
    """After the first connection the client reconnects forever: a NATS restart must not kill us.
    `tracing`: spans for every publish and consume, their context in message headers (only when a
    tracer provider exports them: observability.configure_tracing)."""
    enforce_fetch_timeout_contract()
    middlewares: list[Any] = [NatsTelemetryMiddleware()] if tracing else []
    middlewares.append(NatsPrometheusMiddleware(registry=metrics.REGISTRY, app_name=name))
    return NatsBroker(
        nats_servers(url),
        name=name,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        middlewares=middlewares,
        logger=FASTSTREAM_LOGGER,
        log_level=logging.DEBUG,  # FastStream's per-message lines cost ~30% throughput: DEBUG only
    )
