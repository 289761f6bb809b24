"""The AsyncAPI document of the bus, generated from the services' own routers: what each consumes
(its typed handlers) and publishes (its declared publishers), with the contract models as payloads.

    oncall asyncapi > docs/asyncapi.json          (CI checks the committed copy is current)
    faststream docs gen services.runtime.asyncapi:app
"""

import json
from typing import Any

from faststream import FastStream
from faststream.specification import AsyncAPI

from services.runtime.broker import make_broker
from services.runtime.bus import Bus
from services.runtime.service import configure, service_names

TITLE = "oncall-agent bus"
VERSION = "1"


def build_specification() -> AsyncAPI:
    broker = make_broker("nats://localhost:4222", "oncall-asyncapi")
    bus = Bus(broker)
    for service in configure(service_names()):
        router = service.wire(bus).router
        if router is not None:
            bus.include(router)
    return AsyncAPI(
        broker,
        title=TITLE,
        version=VERSION,
        description="Subjects, streams and payloads of the on-call agent (see services/contracts).",
    )


def document() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(build_specification().to_specification().to_json())
    return spec


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


app = FastStream(
    make_broker("nats://localhost:4222", "oncall-asyncapi-app"), specification=build_specification()
)
