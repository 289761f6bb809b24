"""Runs services in this process: NATS (embedded or NATS_URL), the broker, HTTP, clean stop."""

import asyncio
import contextlib
import logging
import signal
import socket
import subprocess
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from faststream.nats import NatsBroker
from starlette.routing import BaseRoute

from services.runtime.broker import check_reachable, make_broker
from services.runtime.bus import Bus
from services.runtime.credentials import describe_error, mask_credentials
from services.runtime.data_dir import forget_local_state, lock_data_dir, write_local_state
from services.runtime.embedded_nats import EmbeddedNats
from services.runtime.http import build_http_app
from services.runtime.intake_process import Upstream, start_intake, stop_intake, wait_until_ready
from services.runtime.observability import configure_tracing
from services.runtime.service import Configured, ServiceParts
from services.runtime.settings import ProcessSettings

log = logging.getLogger("oncall.host")

SHUTDOWN_STEP_SECONDS = 5.0
# How long /readyz waits for a NATS connection that is being re-established.
READINESS_PING_SECONDS = 0.5


class HttpServerError(RuntimeError):
    pass


def bind_listener(host: str, port: int) -> socket.socket:
    """Bound here rather than by uvicorn, which answers a busy port with sys.exit() from a task."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise HttpServerError(
            f"cannot serve HTTP on {host}:{port}: {exc.strerror}; choose another port with --http-port "
            "or ONCALL_HTTP_PORT (0 = any free port)"
        ) from exc
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class _HttpServer(uvicorn.Server):
    """uvicorn without its own signal handling: it re-raises SIGTERM after serving, which would
    kill the process before the broker and the embedded nats-server are stopped."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@dataclass
class Host:
    """One process hosting services (each with its settings); `oncall up` hosts all of them."""

    settings: ProcessSettings
    hosted: Sequence[Configured[Any]]
    extra_routes: Sequence[BaseRoute] = ()
    on_ready: Callable[["Host"], Awaitable[None]] | None = None
    nats_store: Path | None = None  # the embedded server's store; default <data dir>/nats
    # `oncall up`: alert_ingest (not in `hosted`) runs in a child process serving the public port,
    # this process serves its routes on a loopback port (intake_process.py).
    intake_apart: bool = False
    # The intake child: the public listening socket, inherited; the parent it forwards to.
    listen_fd: int | None = None
    upstream: str | None = None
    nats_url: str = ""
    http_url: str = ""
    _embedded: EmbeddedNats | None = None
    _server: uvicorn.Server | None = None
    _parts: list[ServiceParts] = field(default_factory=list)
    _started: bool = False
    _wrote_local_state: bool = False
    _intake: subprocess.Popen[bytes] | None = None
    _upstream: Upstream | None = None
    _watcher: asyncio.Task[None] | None = None

    @property
    def services(self) -> list[str]:
        return [service.name for service in self.hosted]

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True

    async def run(self) -> None:
        settings = self.settings
        # One process per embedded JetStream store.
        lock = None if settings.nats_url else lock_data_dir(settings.data_dir)
        try:
            # The port first: a busy one is then the only thing to report, with nothing to stop.
            public = self._public_listener()
            self.http_url = f"http://{settings.http_host}:{public.getsockname()[1]}"
            if settings.nats_url:
                self.nats_url = settings.nats_url
            else:
                self._embedded = EmbeddedNats(self.nats_store or settings.data_dir / "nats")
                self.nats_url = self._embedded.start()
            await self._run_with_nats(public)
        finally:
            if self._embedded is not None:
                self._embedded.stop()
            if self._wrote_local_state:
                forget_local_state(settings.data_dir)
            if lock is not None:
                lock.close()

    async def _run_with_nats(self, public: socket.socket) -> None:
        tracer = configure_tracing("oncall-" + "-".join(self.services))
        await check_reachable(self.nats_url)
        # With the intake apart, this process's own HTTP is for the intake process only; the
        # intake starts now, so that both processes start up at the same time.
        listener = bind_listener("127.0.0.1", 0) if self.intake_apart else public
        if self.intake_apart:
            self._start_intake(public, listener.getsockname()[1])
        broker = make_broker(
            self.nats_url, name="oncall-" + "-".join(self.services), tracing=tracer is not None
        )
        bus = Bus(
            broker,
            replicas=self.settings.js_replicas,
            ack_wait_seconds=self.settings.ack_wait_seconds,
            direct_publish=tracer is None,  # with tracing, the publisher carries the trace context
        )
        self._parts = [service.wire(bus) for service in self.hosted]
        for parts in self._parts:
            if parts.router is not None:
                bus.include(parts.router)
        await broker.connect()
        await bus.declare()
        await broker.start()
        for parts in self._parts:
            for hook in parts.on_start:
                await hook()
        self._started = True

        routes = [route for parts in self._parts for route in parts.routes]
        self._upstream = Upstream(self.upstream) if self.upstream else None
        forwarded = self._upstream.routes() if self._upstream else []
        app = build_http_app(
            [*routes, *self.extra_routes, *forwarded],
            lambda: self._readiness(broker),
            metrics_route=self._upstream.metrics if self._upstream else None,
        )
        config = uvicorn.Config(
            app,
            host=self.settings.http_host,
            port=self.settings.http_port,
            log_level="warning",
            access_log=False,
            # httptools: C HTTP parsing, about a third of h11's cost per request (bench/profiles).
            http="httptools",
            lifespan="off",
        )
        self._server = _HttpServer(config)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop)
        if self.listen_fd is None:  # the intake process's parent writes it, before anyone is served
            write_local_state(self.settings.data_dir, self.nats_url, self.http_url)
            self._wrote_local_state = True
        serving = asyncio.create_task(self._server.serve(sockets=[listener]))
        try:
            while not self._server.started:
                if serving.done():
                    serving.result()
                    raise HttpServerError("the HTTP server stopped during start-up")
                await asyncio.sleep(0.01)
            if self._intake is not None and not await self._intake_ready_unless_stopped(serving):
                await serving  # stopped (or failed) while the intake was starting: no start-up line
                return
            log.info(
                "serving %s on %s (NATS %s)",
                ", ".join(self.services),
                self.http_url,
                mask_credentials(self.nats_url),
            )
            if self.on_ready is not None:
                await self.on_ready(self)
            await serving
        finally:
            if self._intake is not None:
                await stop_intake(self._intake, SHUTDOWN_STEP_SECONDS)
            if self._upstream is not None:
                await self._upstream.aclose()
            await self._shut_down(broker)

    def _public_listener(self) -> socket.socket:
        if self.listen_fd is None:
            return bind_listener(self.settings.http_host, self.settings.http_port)
        sock = socket.socket(fileno=self.listen_fd)
        sock.setblocking(False)
        return sock

    def _start_intake(self, public: socket.socket, own_port: int) -> None:
        """The intake process on the public socket."""
        self._intake = start_intake(public, self.nats_url, f"http://127.0.0.1:{own_port}")
        public.close()  # the child has its copy: this process must not accept on it

    async def _intake_ready_unless_stopped(self, serving: asyncio.Task[None]) -> bool:
        """True when the intake process is ready; False when this process's HTTP server ended
        first (a SIGTERM during start-up). The intake's /readyz covers this process too, so after
        a stop it would never turn ready: waiting for it alone hung the stop for 30 s."""
        assert self._intake is not None
        ready = asyncio.create_task(self._intake_ready(self._intake))
        await asyncio.wait({ready, serving}, return_when=asyncio.FIRST_COMPLETED)
        if ready.done():
            ready.result()
            return True
        ready.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ready
        return False

    async def _intake_ready(self, intake: subprocess.Popen[bytes]) -> None:
        """Waits for the intake process; from then on this one stops when it dies."""
        await wait_until_ready(intake, self.http_url)

        async def watch() -> None:
            await asyncio.to_thread(intake.wait)  # returns when it exits, whoever stopped it
            if self._server is not None and not self._server.should_exit:
                log.error("the intake process exited with %s: stopping", intake.returncode)
                self.stop()

        self._watcher = asyncio.create_task(watch())

    async def _shut_down(self, broker: object) -> None:
        """Stop hooks, then the broker; each step bounded and any failure one log line: a NATS that
        is reconnecting (or gone) at shutdown must neither hang the stop nor print a traceback."""
        steps = [hook for parts in self._parts for hook in parts.on_stop]
        steps.append(broker.stop)  # type: ignore[attr-defined]
        for step in steps:
            try:
                await asyncio.wait_for(step(), timeout=SHUTDOWN_STEP_SECONDS)
            except Exception as exc:
                log.warning(
                    "while stopping (%s): %s", getattr(step, "__qualname__", step), describe_error(exc)
                )

    async def _readiness(self, broker: NatsBroker) -> tuple[bool, str]:
        if not self._started:
            return False, "starting"
        if not await broker.ping(timeout=READINESS_PING_SECONDS):
            return False, "NATS disconnected"
        if self._upstream is not None:
            return await self._upstream.ready()
        return True, "ok"
