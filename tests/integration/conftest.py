"""Fixtures of the tests against a real Alertmanager and Prometheus: the WhatsApp fake the
product pages through, and a window on the product's bus (on `clean_bus`, see tests/conftest.py)."""

from collections.abc import AsyncIterator, Iterator

import pytest
from fakes import FakeTwilio
from integration.real_servers import ALERTMANAGER, PROMETHEUS, BusWatch
from support.binaries import require_binary


@pytest.fixture(autouse=True)
def servers_installed() -> None:
    """Skips without the real servers, or fails with ONCALL_REQUIRE_INTEGRATION=1 (CI sets it):
    the one rule of tests/support/binaries.py."""
    require_binary(ALERTMANAGER)
    require_binary(PROMETHEUS)


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
async def bus(clean_bus: str) -> AsyncIterator[BusWatch]:
    watch = await BusWatch.connect(clean_bus)
    yield watch
    await watch.close()
