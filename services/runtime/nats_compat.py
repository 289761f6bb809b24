"""One mismatch between the pinned FastStream and nats-py, mended where it starts.

nats-py 2.15 and 2.16 raise a bare `asyncio.TimeoutError` from `PullSubscription.fetch` when a
batch fetch's deadline runs out between its no-wait probe and its waiting request (a race on an
idle consumer). FastStream 0.7.8's pull loop suppresses only `nats.errors.TimeoutError`, which
nats-py documents as what `fetch` raises; the bare one kills the consumer task, FastStream logs an
ERROR traceback ("Task-N raised an exception ... please consider opening issue") and restarts it.
Converting it to the documented exception keeps the loop quiet; nothing is lost either way.
"""

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import nats.errors
from nats.js.client import JetStreamContext

_MARK = "_oncall_timeout_contract"


def _documented_timeout(fetch: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(fetch)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fetch(*args, **kwargs)
        except nats.errors.TimeoutError:
            raise
        except TimeoutError as exc:  # asyncio.TimeoutError is the builtin since Python 3.11
            raise nats.errors.TimeoutError from exc

    setattr(wrapper, _MARK, True)
    return wrapper


def enforce_fetch_timeout_contract() -> None:
    """Idempotent; called by the broker factory before any subscription exists."""
    subscription = JetStreamContext.PullSubscription
    if not getattr(subscription.fetch, _MARK, False):
        subscription.fetch = _documented_timeout(subscription.fetch)  # type: ignore[method-assign,assignment]
