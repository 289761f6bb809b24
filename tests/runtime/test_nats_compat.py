"""A batch pull fetch that runs out of time raises what nats-py documents (nats.errors.TimeoutError),
which FastStream's pull loop expects; nats-py 2.15+ sometimes raises a bare asyncio timeout instead
when the deadline falls between its two requests, and FastStream then logs an ERROR traceback."""

from collections import Counter

import nats
import nats.errors
import pytest

from services.runtime.nats_compat import enforce_fetch_timeout_contract

# Short timeouts around the no-wait probe's round trip: the race window (seen here: about 1 in 120
# fetches without the fix).
TIMEOUTS = [0.001, 0.002, 0.003, 0.005, 0.01, 0.02] * 60


@pytest.mark.timeout(60)
async def test_every_fetch_timeout_is_the_documented_one(clean_bus: str) -> None:
    enforce_fetch_timeout_contract()
    enforce_fetch_timeout_contract()  # idempotent: wrapped once
    nc = await nats.connect(clean_bus)
    try:
        js = nc.jetstream()
        await js.add_stream(name="COMPAT", subjects=["compat.>"])
        subscription = await js.pull_subscribe("compat.x", durable="compat")
        raised: Counter[str] = Counter()
        for timeout in TIMEOUTS:
            try:
                await subscription.fetch(batch=2, timeout=timeout)
            except Exception as exc:
                raised[f"{type(exc).__module__}.{type(exc).__name__}"] += 1
                assert isinstance(exc, nats.errors.TimeoutError), raised
        assert raised, "some fetches must have timed out"
    finally:
        await nc.close()
