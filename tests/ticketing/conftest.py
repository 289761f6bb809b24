"""Fixtures for ticketing: a fake Jira Cloud with a team whose every received request is checked against
the Jira OpenAPI document at teardown, a client on it, and a broker and bus on the session's real
nats-server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from fakes.jira_fake import FakeJira
from faststream.nats import NatsBroker
from ticketing.jira_openapi import request_problems

from services.runtime.broker import make_broker
from services.runtime.bus import Bus
from services.ticketing.jira import JiraClient

JIRA_EMAIL = "oncall-bot@example.com"
JIRA_TOKEN = "s3cret-jira-token-do-not-log"
INVALID_ON_PURPOSE = "jira_invalid_requests"

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
    {"accountId": "acc-ravi-shah", "displayName": "Ravi Shah", "active": True},
    {"accountId": "acc-priya", "displayName": "Priya Raman", "active": True},
    {"accountId": "acc-priyanka", "displayName": "Priyanka Shah", "active": True},
    {"accountId": "acc-ravindra", "displayName": "Ravindra Old", "active": False},
]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{INVALID_ON_PURPOSE}: the test sends Jira requests its contract forbids, on purpose"
    )


@pytest.fixture
def fake_jira(request: pytest.FixtureRequest) -> Iterator[FakeJira]:
    """Every request the product sent is checked against the Jira Cloud OpenAPI document afterwards.
    A test changes the site through the fake's attributes (`screen_fields`, `workflow`, ...)."""
    with FakeJira(email=JIRA_EMAIL, api_token=JIRA_TOKEN, project_key="OPS", users=TEAM) as fake:
        yield fake
    if request.node.get_closest_marker(INVALID_ON_PURPOSE) is None:
        problems = [p for r in fake.requests for p in request_problems(r)]
        assert not problems, "requests outside the Jira Cloud contract:\n" + "\n".join(problems)


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
