"""What a service declares, and how the host finds the services.

A service is a package `services/<name>/` whose `app.py` has `SERVICE = Service(...)`: its name,
its settings class, and `wire(ctx) -> ServiceParts` (its router, HTTP routes and start/stop hooks),
optionally a reason to refuse to start and a one-line summary for people. `oncall up` hosts every
service found this way, `oncall run <name>` one of them; nothing in `runtime` names them.
"""

import importlib
import importlib.util
import pkgutil
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from faststream.nats import NatsBroker, NatsRouter
from pydantic import ValidationError
from starlette.routing import BaseRoute

import services
from services.contracts.settings import EnvSettings
from services.runtime.bus import Bus

S = TypeVar("S", bound=EnvSettings)
Hook = Callable[[], Awaitable[None]]


@dataclass
class ServiceContext(Generic[S]):
    settings: S
    bus: Bus
    service: str = ""  # its name

    @property
    def broker(self) -> NatsBroker:
        return self.bus.broker


@dataclass
class ServiceParts:
    router: NatsRouter | None = None
    routes: list[BaseRoute] = field(default_factory=list)
    on_start: list[Hook] = field(default_factory=list)
    on_stop: list[Hook] = field(default_factory=list)


@dataclass(frozen=True)
class Service(Generic[S]):
    name: str
    settings: type[S]
    wire: Callable[[ServiceContext[S]], ServiceParts]
    # Why it must not start with these settings (one line for the person starting it), or None.
    refuse: Callable[[S], str | None] | None = None
    # How it runs with these settings, in a few words (the demo's banner).
    summary: Callable[[S], str] | None = None

    def configure(self, overrides: Mapping[str, object] | None = None) -> "Configured[S]":
        """Its settings from the environment, with `overrides` by variable name on top."""
        try:
            values: dict[str, Any] = dict(overrides or {})
            settings = self.settings(**values)
        except ValidationError as exc:
            raise SettingsInvalid(exc) from exc
        return Configured(self, settings)


@dataclass(frozen=True)
class Configured(Generic[S]):
    service: Service[S]
    settings: S

    @property
    def name(self) -> str:
        return self.service.name

    def wire(self, bus: Bus) -> ServiceParts:
        return self.service.wire(ServiceContext(settings=self.settings, bus=bus, service=self.name))

    def refusal(self) -> str | None:
        return self.service.refuse(self.settings) if self.service.refuse else None

    def summary(self) -> str | None:
        return self.service.summary(self.settings) if self.service.summary else None


class SettingsInvalid(Exception):
    def __init__(self, error: ValidationError):
        super().__init__(str(error))
        self.error = error


def service_names() -> tuple[str, ...]:
    """The packages under `services/` that declare a service (an `app` module), without importing them."""
    return tuple(
        sorted(
            module.name
            for module in pkgutil.iter_modules(services.__path__)
            if module.ispkg and importlib.util.find_spec(f"services.{module.name}.app") is not None
        )
    )


def load_service(name: str) -> Service[Any]:
    """Imported by name so that `runtime` never depends on a service statically."""
    if name not in service_names():
        raise ValueError(f"unknown service {name!r}; one of: {', '.join(service_names())}")
    service = getattr(importlib.import_module(f"services.{name}.app"), "SERVICE", None)
    if not isinstance(service, Service) or service.name != name:
        raise TypeError(f"services/{name}/app.py must declare SERVICE = Service(name={name!r}, ...)")
    return service


def configure(names: Sequence[str], overrides: Mapping[str, object] | None = None) -> list[Configured[Any]]:
    return [load_service(name).configure(overrides) for name in names]


def all_settings_classes() -> list[type[EnvSettings]]:
    """The settings classes of every service (the process's own are `ProcessSettings`)."""
    return [load_service(name).settings for name in service_names()]
