"""The reference incident of bench/tools.py: 2,000 load-balancer log lines of a `checkout` service.

Deterministic (seeded). Five minutes of traffic, 06:00:00-06:05:00, across three replicas; the
alert starts at 06:02:00.
- 1,590 routine lines (1,091 INFO, 327 DEBUG, 172 WARN) from 36 templates: access logs with
  request ids, IPs, sizes and latencies; cart, order, cache, pool, queue and scheduler chatter.
  Some carry secrets (a bearer token, customers' e-mail addresses) that must not survive.
- 410 ERROR lines of three signatures (ERROR_TEMPLATES):
  1. 109 "payment gateway timeout", a background error throughout the five minutes;
  2. 142 "db pool exhausted", only after the alert;
  3. 159 "Unhandled exception in POST /api/v1/orders" with a Python traceback in the same entry,
     only after the alert; its innermost application frame is PRICING_FILE:PRICING_LINE.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

SERVICE = "checkout"
START = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
ALERT_START = START + timedelta(minutes=2)
SECONDS = 300
LINES = 2000
PRICING_FILE = "/app/checkout/pricing.py"
PRICING_LINE = 88
ERROR_TEMPLATES = (
    "payment gateway timeout after <n>ms (order=<uuid>, attempt=<n>)",
    "db pool exhausted: waited <n>ms for a connection (pool=orders, in_use=<n>/<n>)",
    "Unhandled exception in POST /api/v<n>/orders | KeyError: '<*>'",
)

_PATHS = ("/api/v1/cart", "/api/v1/cart/items", "/api/v1/orders", "/api/v1/products", "/api/v1/session")
_ROUTINE: tuple[tuple[str, str], ...] = (
    *(("INFO", f'{{ip}} - - "GET {path} HTTP/1.1" 200 {{bytes}} {{ms}}ms rid={{rid}}') for path in _PATHS),
    *(("INFO", f'{{ip}} - - "POST {path} HTTP/1.1" 201 {{bytes}} {{ms}}ms rid={{rid}}') for path in _PATHS),
    *(("INFO", f'{{ip}} - - "GET {path} HTTP/1.1" 304 0 {{ms}}ms rid={{rid}}') for path in _PATHS[:3]),
    ("INFO", "cart {cart} updated for user {user}: {n} items, total {price} EUR"),
    ("INFO", "order {order} placed by user {user}, {n} items"),
    ("INFO", "payment authorised for order {order} in {ms}ms"),
    ("INFO", "receipt for order {order} mailed to {email}"),
    ("INFO", "session {rid} started for user {user} from {ip}"),
    ("INFO", "inventory reservation {rid} confirmed for sku-{n}"),
    ("INFO", "scheduler: job price-refresh finished in {ms}ms"),
    ("INFO", "kafka consumer checkout-events committed offset {bytes} on partition {n}"),
    ("DEBUG", "cache hit product:{n} ({ms}us)"),
    ("DEBUG", "cache miss product:{n}, loading from db"),
    ("DEBUG", "db pool stats: in_use={n}/50 idle={n} waiters=0"),
    ("DEBUG", "outbound call to pricing-svc with Authorization: Bearer {token}"),
    ("DEBUG", "feature flag new-checkout evaluated to {flag} for user {user}"),
    ("DEBUG", "GC pause {ms}ms, heap {n}MB"),
    ("WARN", "slow query on orders: {ms}ms (select * from order_lines where order_id = {n})"),
    ("WARN", "retrying call to shipping-svc after {ms}ms (attempt {n})"),
    ("WARN", "rate limit for user {user} at {n}/100 requests per minute"),
    ("WARN", "deprecated header X-Client-Version {n}.{n} from {ip}"),
)
_TRACEBACK = (
    "Unhandled exception in POST /api/v1/orders\n"
    "Traceback (most recent call last):\n"
    '  File "/usr/local/lib/python3.11/site-packages/starlette/routing.py", line 74, in app\n'
    "    response = await func(request)\n"
    '  File "/app/checkout/api.py", line 41, in create_order\n'
    "    total = pricing.order_total(cart, currency)\n"
    f'  File "{PRICING_FILE}", line {PRICING_LINE}, in order_total\n'
    "    unit = prices[item.sku]\n"
    "           ~~~~~~^^^^^^^^^^\n"
    "KeyError: 'sku-{n}'"
)


def _fields(rng: random.Random) -> dict[str, Any]:
    return {
        "ip": f"10.{rng.randint(0, 9)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        "bytes": rng.randint(200, 90_000),
        "ms": rng.randint(1, 900),
        "rid": uuid.UUID(int=rng.getrandbits(128), version=4),
        "order": uuid.UUID(int=rng.getrandbits(128), version=4),
        "cart": f"{rng.getrandbits(64):016x}",
        "user": rng.randint(1000, 99_999),
        "n": rng.randint(1, 4000),
        "price": f"{rng.uniform(5, 500):.2f}",
        "email": f"customer{rng.randint(1, 9999)}@example.com",
        "token": f"eyJ{rng.getrandbits(120):030x}",
        "flag": rng.choice(["true", "false"]),
    }


def _line(rng: random.Random, moment: datetime, level: str, message: str) -> dict[str, str]:
    return {
        "timestamp": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": level,
        "message": message,
        "service": f"{SERVICE}-{rng.randint(1, 3)}",
    }


def _error(rng: random.Random, moment: datetime) -> tuple[str, str] | None:
    """The error logged at `moment`, if any: the background one throughout, two more after the alert."""
    fields = _fields(rng)
    roll = rng.random()
    if roll < 0.05:
        return "ERROR", "payment gateway timeout after {ms}ms (order={order}, attempt={n})".format(**fields)
    if moment >= ALERT_START and roll < 0.17:
        return (
            "ERROR",
            "db pool exhausted: waited {ms}ms for a connection (pool=orders, in_use={n}/{n})".format(
                **fields
            ),
        )
    if moment >= ALERT_START and roll < 0.30:
        return "ERROR", _TRACEBACK.format(**fields)
    return None


def reference_lines(seed: int = 2026) -> list[dict[str, str]]:
    """The incident's LINES lines, oldest first, as `GET /logs/tail` returns them."""
    rng = random.Random(seed)
    lines = []
    for i in range(LINES):
        moment = START + timedelta(seconds=SECONDS * i / LINES)
        error = _error(rng, moment)
        if error is None:
            level, template = rng.choice(_ROUTINE)
            error = level, template.format(**_fields(rng))
        lines.append(_line(rng, moment, *error))
    return lines
