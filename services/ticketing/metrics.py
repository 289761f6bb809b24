"""Ticketing's metrics, in the process's one registry (`runtime.metrics.REGISTRY`)."""

from prometheus_client import Counter

from services.runtime.metrics import REGISTRY

tickets = Counter("oncall_tickets_total", "Ticket requests by outcome", ["outcome"], registry=REGISTRY)
