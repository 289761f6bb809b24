"""What a service hands to the host: its HTTP routes and start/stop hooks.

Each service's `app.py` has `wire(ctx) -> ServiceParts`; it registers its subscribers on the
shared broker and returns its routes. The host runs one service (`oncall run <service>`) or
all of them in one process (`oncall up`).
"""

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from faststream.nats import NatsBroker
from starlette.routing import BaseRoute

from services.runtime.bus import Bus
from services.runtime.settings import Settings

SERVICE_NAMES = ("alert_ingest", "tools", "diagnoser", "notifier", "ticketing")

Hook = Callable[[], Awaitable[None]]


@dataclass
class ServiceContext:
    settings: Settings
    broker: NatsBroker
    bus: Bus


@dataclass
class ServiceParts:
    routes: list[BaseRoute] = field(default_factory=list)
    on_start: list[Hook] = field(default_factory=list)
    on_stop: list[Hook] = field(default_factory=list)


class Wire(Protocol):
    def __call__(self, ctx: ServiceContext) -> ServiceParts: ...


def load_wiring(service: str) -> Wire:
    """Imported by name so that `runtime` never depends on a service statically."""
    if service not in SERVICE_NAMES:
        raise ValueError(f"unknown service {service!r}; one of: {', '.join(SERVICE_NAMES)}")
    module = importlib.import_module(f"services.{service}.app")
    wire: Wire = module.wire
    return wire
