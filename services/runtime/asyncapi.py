"""The AsyncAPI document of the bus, generated from the services' own subscribers.

    oncall asyncapi > docs/asyncapi.json          (CI checks the committed copy is current)
    faststream docs gen services.runtime.asyncapi:app

Only the durable subscribers declare their payload (they parse raw bytes themselves), so each
channel is described with its contract model from `services.contracts`.
"""

import json
from typing import Any

from faststream import FastStream
from faststream.specification import AsyncAPI

from services.runtime.broker import make_broker
from services.runtime.bus import DURABLE_PAYLOADS, Bus
from services.runtime.service import SERVICE_NAMES, ServiceContext, load_wiring
from services.runtime.settings import Settings

TITLE = "oncall-agent bus"
VERSION = "1"


def build_specification() -> AsyncAPI:
    broker = make_broker("nats://localhost:4222", "oncall-asyncapi")
    ctx = ServiceContext(settings=Settings(), broker=broker, bus=Bus(broker))
    for name in SERVICE_NAMES:
        load_wiring(name)(ctx)
    return AsyncAPI(
        broker,
        title=TITLE,
        version=VERSION,
        description="Subjects, streams and payloads of the on-call agent (see services/contracts).",
    )


def document() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(build_specification().to_specification().to_json())
    with_contract_payloads(spec)
    return spec


def with_contract_payloads(spec: dict[str, Any]) -> None:
    """Durable handlers take the raw message (to dead-letter what does not parse), so FastStream
    sees no payload type: describe each with its contract model instead."""
    schemas = spec["components"].setdefault("schemas", {})
    for durable, model in DURABLE_PAYLOADS.items():
        message = spec["components"]["messages"].get(f"{durable}:SubscribeMessage")
        if message is None:
            continue
        schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
        message["payload"] = {"$ref": f"#/components/schemas/{model.__name__}"}


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


app = FastStream(
    make_broker("nats://localhost:4222", "oncall-asyncapi-app"), specification=build_specification()
)
