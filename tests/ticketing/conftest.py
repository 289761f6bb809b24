"""Fixtures for ticketing: a fake Jira Cloud with a team, a client on it, a broker and bus on the
session's real nats-server, and a check of request bodies against the Jira OpenAPI document."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes.jira_fake import FakeJira, is_adf_document
from faststream.nats import NatsBroker

from services.runtime.broker import make_broker
from services.runtime.bus import Bus
from services.ticketing.jira import JiraClient

JIRA_EMAIL = "oncall-bot@example.com"
JIRA_TOKEN = "s3cret-jira-token-do-not-log"
OPENAPI = Path("/work/shared/reference/jira-cloud-v3-openapi.json")

TEAM = [
    {
        "accountId": "acc-alice",
        "displayName": "Alice Smith",
        "active": True,
        "emailAddress": "alice@example.com",
    },
    {
        "accountId": "acc-ravi",
        "displayName": "Ravi Kumar",
        "active": True,
        "emailAddress": "ravi@example.com",
    },
    {"accountId": "acc-priya", "displayName": "Priya Raman", "active": True},
    {"accountId": "acc-priyanka", "displayName": "Priyanka Shah", "active": True},
    {"accountId": "acc-sam-lee", "displayName": "Sam Lee", "active": True},
    {"accountId": "acc-sam-patel", "displayName": "Sam Patel", "active": True},
    {"accountId": "acc-ravindra", "displayName": "Ravindra Old", "active": False},
]


@pytest.fixture
def fake_jira() -> Iterator[FakeJira]:
    with FakeJira(email=JIRA_EMAIL, api_token=JIRA_TOKEN, project_key="OPS", users=TEAM) as fake:
        yield fake


@pytest.fixture
async def jira(fake_jira: FakeJira) -> AsyncIterator[JiraClient]:
    client = JiraClient(fake_jira.url, JIRA_EMAIL, JIRA_TOKEN)
    yield client
    await client.aclose()


# --- real NATS (the session's server comes from tests/conftest.py) ------------------------------


@pytest.fixture
async def broker(nats_url: str) -> AsyncIterator[NatsBroker]:
    broker = make_broker(nats_url, "test")
    yield broker
    await broker.stop()


@pytest.fixture
async def bus(broker: NatsBroker) -> Bus:
    bus = Bus(broker)
    await broker.connect()
    await bus.declare()
    return bus


# --- the OpenAPI document ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def openapi_schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = json.loads(OPENAPI.read_text())["components"]["schemas"]
    return schemas


@pytest.fixture
def check_issue_request(openapi_schemas: dict[str, Any]) -> Callable[[Any], None]:
    """Asserts a create-issue body fits `IssueUpdateDetails` (types, refs, closed objects) and carries
    what Jira Cloud needs beyond the schema: `fields`, an ADF description, users by accountId."""

    def check(body: Any) -> None:
        problems = _schema_problems(body, openapi_schemas["IssueUpdateDetails"], openapi_schemas, "body")
        assert not problems, problems
        fields = body.get("fields")
        assert isinstance(fields, dict), "a create needs `fields`"
        assert is_adf_document(fields.get("description")), "description must be an ADF doc"
        if "assignee" in fields:  # Jira Cloud rejects `name`/`key`: users are accountIds only
            assert set(fields["assignee"]) == {"accountId"}, fields["assignee"]

    return check


_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
}


def _schema_problems(value: Any, schema: dict[str, Any], schemas: dict[str, Any], where: str) -> list[str]:
    """The subset of JSON Schema the Jira document uses on this path ($ref, allOf, type, properties,
    additionalProperties, items, required); enough for a contract test without another dependency."""
    if "$ref" in schema:
        return _schema_problems(value, schemas[schema["$ref"].rsplit("/", 1)[1]], schemas, where)
    problems = [p for part in schema.get("allOf", []) for p in _schema_problems(value, part, schemas, where)]
    expected = schema.get("type")
    if expected and not isinstance(value, _JSON_TYPES[expected]):
        return [*problems, f"{where}: expected {expected}, got {type(value).__name__}"]
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        problems += [f"{where}: missing {name}" for name in schema.get("required", []) if name not in value]
        for name, item in value.items():
            if name in properties:
                problems += _schema_problems(item, properties[name], schemas, f"{where}.{name}")
            elif schema.get("additionalProperties") is False:
                problems.append(f"{where}: unexpected {name}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += _schema_problems(item, schema["items"], schemas, f"{where}[{i}]")
    return problems
