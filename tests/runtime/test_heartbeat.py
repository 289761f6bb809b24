"""The beat behind JetStream's "still working" and the notifier's send lease: it beats while the
work runs, never after, and stops early when what it keeps alive is gone."""

import asyncio
import itertools

import pytest

from services.runtime.heartbeat import beating

EVERY = 0.02


async def test_it_beats_while_the_block_runs_and_never_after() -> None:
    beats: list[float] = []

    async def beat() -> None:
        beats.append(asyncio.get_running_loop().time())

    async with beating(beat, EVERY):
        await asyncio.sleep(EVERY * 5.5)
    during = len(beats)
    await asyncio.sleep(EVERY * 5)
    assert during >= 1 and len(beats) == during
    gaps = [later - earlier for earlier, later in itertools.pairwise(beats)]
    assert all(gap >= EVERY * 0.9 for gap in gaps), gaps  # never faster than asked


async def test_a_beat_that_says_false_ends_the_beating() -> None:
    calls = 0

    async def renew() -> bool:
        nonlocal calls
        calls += 1
        return calls < 2  # the lease was finished by someone else at the second beat

    async with beating(renew, EVERY):
        await asyncio.sleep(EVERY * 8)
    assert calls == 2


async def test_a_failing_block_stops_its_beat_too() -> None:
    beats = 0

    async def beat() -> None:
        nonlocal beats
        beats += 1

    with pytest.raises(RuntimeError):
        async with beating(beat, EVERY):
            await asyncio.sleep(EVERY * 2.5)
            raise RuntimeError("the vendor call failed")
    after = beats
    await asyncio.sleep(EVERY * 4)
    assert after >= 1 and beats == after


async def test_a_beat_that_raises_stops_beating_without_failing_the_work(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    async def beat() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("nats gone")

    async with beating(beat, EVERY):
        await asyncio.sleep(EVERY * 5)
    assert calls == 1
    assert "a beat failed" in caplog.text
