"""What the code does, read from the code itself, for comparing the deployment against it:
which settings exist and which each service reads, which subjects it references, which KV
buckets it touches, which subscribers its router has."""

from __future__ import annotations

import ast
import functools
import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

import services
from services.contracts import streams, subjects
from services.contracts.settings import EnvSettings
from services.runtime.broker import make_broker
from services.runtime.bus import Bus
from services.runtime.service import load_service, service_names

SERVICES_DIR = Path(services.__file__).resolve().parent

# Subject constants that name a namespace or a queue group, not one subject.
NOT_EVENT_SUBJECTS = {"TOOLS_PREFIX", "TOOLS_QUEUE", "DLQ_PREFIX"}


@dataclass(frozen=True)
class SettingInfo:
    alias: str
    field: str
    secret: bool
    owner: str  # the settings class that declares it


@functools.cache
def settings_classes() -> tuple[type[EnvSettings], ...]:
    """Every settings class of the product: `EnvSettings` subclasses (the process's, each
    service's, those shared in contracts); all modules are imported to find them."""
    for module in pkgutil.walk_packages(services.__path__, "services."):
        if "demo_assets" not in module.name:
            importlib.import_module(module.name)
    found: list[type[EnvSettings]] = []
    queue: list[type[EnvSettings]] = [EnvSettings]
    while queue:
        for sub in queue.pop().__subclasses__():
            if sub not in found:
                found.append(sub)
                queue.append(sub)
    return tuple(found)


@functools.cache
def all_settings() -> dict[str, SettingInfo]:
    """Environment variable name -> what it is, over every settings class."""
    out: dict[str, SettingInfo] = {}
    for cls in settings_classes():
        for name, field in cls.model_fields.items():
            alias = field.alias or name.upper()
            if alias not in out:
                secret = "SecretStr" in repr(field.annotation) or field.annotation is SecretStr
                out[alias] = SettingInfo(alias, name, secret, cls.__name__)
    return out


def service_files(service: str) -> list[Path]:
    return sorted((SERVICES_DIR / service).rglob("*.py"))


def _trees(service: str) -> list[ast.AST]:
    return [ast.parse(path.read_text(), filename=str(path)) for path in service_files(service)]


@functools.cache
def _property_fields() -> dict[str, set[str]]:
    """Settings properties (twilio_configured, ...) -> the fields they read (self.<field>)."""
    out: dict[str, set[str]] = {}
    for cls in settings_classes():
        tree = ast.parse(Path(importlib.import_module(cls.__module__).__file__ or "").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name == cls.__name__:
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and any(
                        isinstance(d, ast.Name) and d.id == "property" for d in item.decorator_list
                    ):
                        out[item.name] = {
                            sub.attr
                            for sub in ast.walk(item)
                            if isinstance(sub, ast.Attribute)
                            and isinstance(sub.value, ast.Name)
                            and sub.value.id == "self"
                        }
    return out


def settings_read_by(service: str) -> set[str]:
    """Environment variables a service's code reads: every `<anything>.<settings field>`
    attribute in services/<service>/, properties expanded to the fields they read. An
    over-approximation (any attribute with a setting's name counts), which is the safe side
    for "is it provided"."""
    by_field = {info.field: alias for alias, info in all_settings().items()}
    properties = _property_fields()
    read: set[str] = set()
    for tree in _trees(service):
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                if node.attr in by_field:
                    read.add(by_field[node.attr])
                for field in properties.get(node.attr, ()):
                    if field in by_field:
                        read.add(by_field[field])
    return read


def _contract_attributes(service: str, module_name: str) -> set[str]:
    return {
        node.attr
        for tree in _trees(service)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == module_name
    }


def event_subject_constants() -> dict[str, str]:
    return {
        name: value
        for name, value in vars(subjects).items()
        if name.isupper() and isinstance(value, str) and name not in NOT_EVENT_SUBJECTS
    }


def subjects_published_by(service: str) -> set[str]:
    """Event subjects a service names (`subjects.X`). A service consumes through
    `contracts.consumers`, so a subject it names is one it publishes."""
    constants = event_subject_constants()
    return {constants[attr] for attr in _contract_attributes(service, "subjects") if attr in constants}


def requests_tools(service: str) -> bool:
    return "tool_subject" in _contract_attributes(service, "subjects")


def buckets_used_by(service: str) -> set[str]:
    names = _contract_attributes(service, "streams")
    return {
        spec.name for name in names if isinstance(spec := getattr(streams, name, None), streams.BucketSpec)
    }


@dataclass(frozen=True)
class Subscriber:
    subject: str
    queue: str
    stream: str | None
    durable: str | None


def wired_subscribers(service: str) -> list[Subscriber]:
    """The subscribers of the router `services/<service>/app.py` wires, on a broker that never connects."""
    broker = make_broker("nats://127.0.0.1:1", name=f"deploy-test-{service}")
    router = load_service(service).configure().wire(Bus(broker)).router
    assert router is not None
    broker.include_router(router)
    found: list[Subscriber] = []
    for sub in broker.subscribers:
        subject = getattr(sub.subject, "subject", None) or sub._resolved_subject_string
        stream = sub.stream.name if getattr(sub, "stream", None) else None
        durable = (getattr(sub, "extra_options", None) or {}).get("durable")
        found.append(Subscriber(str(subject), sub.queue or "", stream, durable))
    return found


def all_services() -> tuple[str, ...]:
    return service_names()
