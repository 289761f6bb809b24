"""The committed AsyncAPI document describes the bus as the code defines it."""

import json
from pathlib import Path

from services.contracts import consumers, subjects
from services.runtime.asyncapi import document

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"


def test_the_committed_document_is_current() -> None:
    assert json.loads(COMMITTED.read_text()) == document(), "run: oncall asyncapi > docs/asyncapi.json"


def test_every_durable_consumer_and_tool_is_a_channel_with_its_payload() -> None:
    spec = document()
    addresses = {channel["address"] for channel in spec["channels"].values()}
    for name in dir(consumers):
        spec_value = getattr(consumers, name)
        if hasattr(spec_value, "durable"):
            assert spec_value.subjects[0] in addresses
            message = spec["components"]["messages"][f"{spec_value.durable}:SubscribeMessage"]
            assert message["payload"]["$ref"] != "#/components/schemas/EmptyPayload"
    assert subjects.tool_subject("fetch_logs") in addresses
