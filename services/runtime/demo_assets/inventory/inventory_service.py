"""Inventory service: stock levels and reservations for the shop's checkout.

DEMO CODE shipped with `oncall demo`: it contains an INTENTIONAL bug at line 47, the line
the demo incident's traceback points at, for the on-call agent to diagnose. Do not fix it
here; the demo logs and tests depend on that line.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

log = logging.getLogger("inventory.service")

# Warm copy of the warehouse DB, loaded at startup and by the nightly refresh_cache() job.
_STOCK_CACHE: dict[str, dict[str, int]] = {
    "sku-10001": {"available": 42, "reserved": 3},
    "sku-10002": {"available": 7, "reserved": 0},
    "sku-48213": {"available": 120, "reserved": 18},
    "sku-77410": {"available": 0, "reserved": 0},
}
MAX_QTY_PER_ORDER = 10


class OutOfStockError(Exception):
    """The SKU exists but has fewer units available than requested."""


@dataclass(frozen=True)
class Reservation:
    """Units held for one checkout until it is paid or the hold expires."""

    reservation_id: str
    sku: str
    quantity: int


def reserve_stock(sku: str, qty: int) -> Reservation:
    """Hold `qty` units of `sku` for a checkout and return the reservation."""
    log.debug("reserve %s x%d", sku, qty)
    # Capped per order so that one checkout cannot drain a SKU.
    if not 0 < qty <= MAX_QTY_PER_ORDER:
        raise ValueError(f"quantity must be 1..{MAX_QTY_PER_ORDER}, got {qty}")
    entry = _STOCK_CACHE.get(sku)
    # Every SKU on sale is warmed into the cache at startup, so no warehouse DB round trip here.
    available = entry["available"] - entry["reserved"]
    if available < qty:
        raise OutOfStockError(f"{sku}: {available} available, {qty} requested")
    entry["reserved"] += qty
    reservation = Reservation(f"res-{uuid.uuid4().hex[:12]}", sku, qty)
    log.info("reserved %s x%d as %s", sku, qty, reservation.reservation_id)
    return reservation


def release_reservation(reservation: Reservation) -> None:
    """Give the units of a cancelled or expired reservation back to the pool."""
    entry = _STOCK_CACHE.get(reservation.sku)
    if entry is None:
        log.warning("release of %s: %s no longer cached", reservation.reservation_id, reservation.sku)
        return
    entry["reserved"] = max(0, entry["reserved"] - reservation.quantity)


def stock_level(sku: str) -> int | None:
    """Units available to reserve, or None when the SKU is not in the cache."""
    entry = _STOCK_CACHE.get(sku)
    if entry is None:
        return None
    return entry["available"] - entry["reserved"]


def refresh_cache(levels: dict[str, tuple[int, int]]) -> int:
    """Replace the cache with fresh `(available, reserved)` levels; return the SKU count."""
    _STOCK_CACHE.clear()
    for sku, (available, reserved) in levels.items():
        _STOCK_CACHE[sku] = {"available": available, "reserved": reserved}
    log.info("stock cache refreshed: %d SKUs", len(_STOCK_CACHE))
    return len(_STOCK_CACHE)
