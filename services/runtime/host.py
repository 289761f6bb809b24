"""Runs services in this process: NATS (embedded or NATS_URL), the broker, HTTP, clean stop."""

import asyncio
import contextlib
import json
import logging
import signal
import socket
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from starlette.routing import BaseRoute

from services.runtime.broker import check_reachable, make_broker
from services.runtime.bus import Bus
from services.runtime.embedded_nats import EmbeddedNats
from services.runtime.http import build_http_app
from services.runtime.observability import configure_tracing
from services.runtime.service import ServiceContext, ServiceParts, load_wiring
from services.runtime.settings import Settings

log = logging.getLogger("oncall.host")

LOCAL_STATE_FILE = "local.json"


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
        raise HttpServerError(f"cannot serve HTTP on {host}:{port}: {exc.strerror}") from exc
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
    """One process hosting `services`; `oncall up` hosts all five."""

    settings: Settings
    services: Sequence[str]
    extra_routes: Sequence[BaseRoute] = ()
    on_ready: Callable[["Host"], Awaitable[None]] | None = None
    nats_url: str = ""
    http_url: str = ""
    _embedded: EmbeddedNats | None = None
    _server: uvicorn.Server | None = None
    _parts: list[ServiceParts] = field(default_factory=list)
    _started: bool = False

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True

    async def run(self) -> None:
        settings = self.settings
        if settings.nats_url:
            self.nats_url = settings.nats_url
        else:
            self._embedded = EmbeddedNats(settings.data_dir / "nats")
            self.nats_url = self._embedded.start()
        try:
            await self._run_with_nats()
        finally:
            if self._embedded is not None:
                self._embedded.stop()
            self._forget_local_state()

    async def _run_with_nats(self) -> None:
        configure_tracing("oncall-" + "-".join(self.services))
        await check_reachable(self.nats_url)
        broker = make_broker(self.nats_url, name="oncall-" + "-".join(self.services))
        bus = Bus(broker, replicas=self.settings.js_replicas, ack_wait_seconds=self.settings.ack_wait_seconds)
        ctx = ServiceContext(settings=self.settings, broker=broker, bus=bus)
        self._parts = [load_wiring(name)(ctx) for name in self.services]
        await broker.connect()
        await bus.declare()
        await broker.start()
        for parts in self._parts:
            for hook in parts.on_start:
                await hook()
        self._started = True

        routes = [route for parts in self._parts for route in parts.routes]
        app = build_http_app([*routes, *self.extra_routes], lambda: self._readiness(broker))
        config = uvicorn.Config(
            app,
            host=self.settings.http_host,
            port=self.settings.http_port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self._server = _HttpServer(config)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop)
        listener = bind_listener(self.settings.http_host, self.settings.http_port)
        serving = asyncio.create_task(self._server.serve(sockets=[listener]))
        try:
            while not self._server.started:
                if serving.done():
                    serving.result()
                    raise HttpServerError("the HTTP server stopped during start-up")
                await asyncio.sleep(0.01)
            port = self._server.servers[0].sockets[0].getsockname()[1]
            self.http_url = f"http://{self.settings.http_host}:{port}"
            self._write_local_state()
            log.info("serving %s on %s (NATS %s)", ", ".join(self.services), self.http_url, self.nats_url)
            if self.on_ready is not None:
                await self.on_ready(self)
            await serving
        finally:
            for parts in self._parts:
                for hook in parts.on_stop:
                    await hook()
            await broker.stop()

    def _readiness(self, broker: object) -> tuple[bool, str]:
        connection = getattr(broker, "_connection", None)
        if not self._started:
            return False, "starting"
        if connection is None or not connection.is_connected:
            return False, "NATS disconnected"
        return True, "ok"

    @property
    def _state_path(self) -> Path:
        return self.settings.data_dir / LOCAL_STATE_FILE

    def _write_local_state(self) -> None:
        """Lets `oncall reply` in another terminal find this process's NATS."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self._state_path.write_text(json.dumps({"nats_url": self.nats_url, "http_url": self.http_url}))

    def _forget_local_state(self) -> None:
        self._state_path.unlink(missing_ok=True)


def read_local_state(data_dir: Path) -> dict[str, str] | None:
    path = data_dir / LOCAL_STATE_FILE
    if not path.exists():
        return None
    state: dict[str, str] = json.loads(path.read_text())
    return state
