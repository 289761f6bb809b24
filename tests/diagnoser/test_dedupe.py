"""One investigation per incident at a time: the group's other webhooks wait for the first."""

import asyncio

from services.diagnoser.dedupe import OnePerKey


async def test_one_holder_per_key_others_in_turn_and_other_keys_at_once() -> None:
    locks = OnePerKey()
    inside: dict[str, int] = {"a": 0, "b": 0}
    most: dict[str, int] = {"a": 0, "b": 0}
    order: list[str] = []

    async def investigate(key: str, name: str) -> None:
        async with locks.holding(key):
            inside[key] += 1
            most[key] = max(most[key], inside[key])
            order.append(name)
            await asyncio.sleep(0.01)
            inside[key] -= 1

    await asyncio.gather(*(investigate("a", f"a{i}") for i in range(5)), investigate("b", "b0"))

    assert most == {"a": 1, "b": 1}
    assert [n for n in order if n.startswith("a")] == [f"a{i}" for i in range(5)]  # in arrival order
    assert order.index("b0") < order.index("a1")  # another incident does not wait
    assert len(locks) == 0  # nothing kept once unused
