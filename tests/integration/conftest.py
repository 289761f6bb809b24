"""Fixtures of the tests against a real Alertmanager and Prometheus: the WhatsApp fake the
product pages through, and a window on the product's bus (on `clean_bus`, see tests/conftest.py)."""

from collections.abc import AsyncIterator, Iterator

import pytest
from fakes import FakeTwilio
from integration.real_servers import ALERTMANAGER, PROMETHEUS, BusWatch, binary


@pytest.fixture(autouse=True)
def servers_installed() -> None:
    """Fails (never skips) when the real servers are missing: CI must install them."""
    binary(ALERTMANAGER)
    binary(PROMETHEUS)


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
async def bus(clean_bus: str) -> AsyncIterator[BusWatch]:
    watch = await BusWatch.connect(clean_bus)
    yield watch
    await watch.close()
