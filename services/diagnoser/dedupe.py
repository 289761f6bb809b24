"""One investigation per incident at a time in this process: in a storm, Alertmanager's webhooks of
one group arrive together (each new alert, each repeat), and before the first investigation has
stored its diagnosis every one of them would find no diagnosis and investigate again. They wait for
the first instead, then find its diagnosis and only add their alerts.

Across replicas the conversation's compare-and-set keeps one diagnosis per revision (the later
replica publishes the stored one); this lock spares the work within a replica, where a storm's
webhooks of one group land together on the firing consumer's workers.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


@dataclass
class _Waiting:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


@dataclass
class OnePerKey:
    """`async with locks.holding(key)`: one holder per key; a key's lock is dropped when unused."""

    _locks: dict[str, _Waiting] = field(default_factory=dict)

    @contextlib.asynccontextmanager
    async def holding(self, key: str) -> AsyncIterator[None]:
        waiting = self._locks.setdefault(key, _Waiting())
        waiting.users += 1
        try:
            async with waiting.lock:
                yield
        finally:
            waiting.users -= 1
            if waiting.users == 0:
                del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)
