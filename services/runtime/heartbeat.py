"""A beat while a block of work runs: JetStream's "still working" for a long message, a renewed
lease for a slow vendor call. One task, ended with the block however it ends."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

log = logging.getLogger("oncall.runtime")


@contextlib.asynccontextmanager
async def beating(beat: Callable[[], Awaitable[bool | None]], every: float) -> AsyncIterator[None]:
    """Awaits `beat()` every `every` seconds while the block runs; a beat that returns False
    ends the beating early (what it kept alive is gone). `beat` handles its own errors: one that
    escapes ends the beating, as a lost beat would, and is logged, never raised into the block's
    outcome."""

    async def keep_beating() -> None:
        while True:
            await asyncio.sleep(every)
            try:
                if await beat() is False:
                    return
            except Exception:  # logged when it happens, not when the block ends
                log.exception("a beat failed, and the beating stopped there")
                return

    task = asyncio.create_task(keep_beating())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
