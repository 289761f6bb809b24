"""The incident the end-to-end tests replay: checkout fails with a KeyError at payments.py:31."""

from datetime import UTC, datetime, timedelta
from typing import Any

SERVICE = "checkout"
BUGGY_FILE = "checkout/payments.py"
BUGGY_LINE = 31
BUGGY_STATEMENT = 'currency = order["currency"]'

PAYMENTS_SOURCE = "\n".join(
    [
        '"""Payments of the checkout service."""',
        "",
        "import logging",
        "",
        "log = logging.getLogger(__name__)",
        "",
        *[f"# padding line {n}" for n in range(7, 27)],
        "",
        "def charge(order: dict) -> dict:",
        '    """Charge an order with its payment provider."""',
        '    amount = order["amount"]',
        f"    {BUGGY_STATEMENT}",
        '    return {"amount": amount, "currency": currency}',
        "",
    ]
)

TRACEBACK = (
    "Unhandled exception in POST /api/checkout\n"
    "Traceback (most recent call last):\n"
    '  File "/app/checkout/api.py", line 58, in create_order\n'
    "    receipt = charge(order)\n"
    f'  File "/app/checkout/payments.py", line {BUGGY_LINE}, in charge\n'
    f"    {BUGGY_STATEMENT}\n"
    "KeyError: 'currency'"
)


def log_lines(now: datetime | None = None) -> list[dict[str, Any]]:
    now = now or datetime.now(UTC)
    lines = []
    for n in range(120):
        at = now - timedelta(seconds=240 - 2 * n)
        stamp = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        lines.append(
            {
                "timestamp": stamp,
                "level": "INFO",
                "service": "checkout-1",
                "message": f"GET /api/cart/{1000 + n} 200 {10 + n % 7}ms",
            }
        )
        if n >= 60 and n % 3 == 0:
            lines.append(
                {"timestamp": stamp, "level": "ERROR", "service": "checkout-2", "message": TRACEBACK}
            )
    return lines


ERRORS_QUERY = 'sum(rate(http_errors_total{service="checkout"}[1m]))'
REQUESTS_QUERY = 'sum(rate(http_requests_total{service="checkout"}[1m]))'
PROMETHEUS_VALUES = {ERRORS_QUERY: 2.5, REQUESTS_QUERY: 10.0}

ROOT_CAUSE = "Orders without a currency raise KeyError in charge()"
FIX = 'Use order.get("currency", "EUR") and validate orders at the API'
