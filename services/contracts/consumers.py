"""Durable JetStream consumers: who reads which subject, with bounded redelivery."""

from typing import Final

from services.contracts import streams, subjects
from services.contracts.streams import ConsumerSpec

DIAGNOSER_ALERTS_FIRING: Final = ConsumerSpec(
    durable="diagnoser-alerts-firing", stream=streams.ALERTS, subjects=[subjects.ALERTS_FIRING]
)
DIAGNOSER_ALERTS_RESOLVED: Final = ConsumerSpec(
    durable="diagnoser-alerts-resolved", stream=streams.ALERTS, subjects=[subjects.ALERTS_RESOLVED]
)
DIAGNOSER_HUMAN: Final = ConsumerSpec(
    durable="diagnoser-human", stream=streams.EVENTS, subjects=[subjects.HUMAN_REPLIED]
)
# Outcomes of the human's requests, recorded on the incident's conversation (their one home).
DIAGNOSER_TICKET_CREATED: Final = ConsumerSpec(
    durable="diagnoser-ticket-created", stream=streams.EVENTS, subjects=[subjects.TICKETS_CREATED]
)
DIAGNOSER_TICKET_FAILED: Final = ConsumerSpec(
    durable="diagnoser-ticket-failed", stream=streams.EVENTS, subjects=[subjects.TICKETS_FAILED]
)
DIAGNOSER_SILENCE_APPLIED: Final = ConsumerSpec(
    durable="diagnoser-silence-applied", stream=streams.EVENTS, subjects=[subjects.SILENCES_APPLIED]
)
NOTIFIER_DIAGNOSED: Final = ConsumerSpec(
    durable="notifier-diagnosed", stream=streams.EVENTS, subjects=[subjects.INCIDENTS_DIAGNOSED]
)
NOTIFIER_RESOLVED: Final = ConsumerSpec(
    durable="notifier-resolved", stream=streams.EVENTS, subjects=[subjects.INCIDENTS_RESOLVED]
)
NOTIFIER_TEXT: Final = ConsumerSpec(
    durable="notifier-text", stream=streams.EVENTS, subjects=[subjects.NOTIFY_TEXT]
)
NOTIFIER_TICKET_CREATED: Final = ConsumerSpec(
    durable="notifier-ticket-created", stream=streams.EVENTS, subjects=[subjects.TICKETS_CREATED]
)
NOTIFIER_TICKET_FAILED: Final = ConsumerSpec(
    durable="notifier-ticket-failed", stream=streams.EVENTS, subjects=[subjects.TICKETS_FAILED]
)
TICKETING_REQUESTED: Final = ConsumerSpec(
    durable="ticketing-requested", stream=streams.EVENTS, subjects=[subjects.TICKETS_REQUESTED]
)
ALERTMANAGER_SILENCES: Final = ConsumerSpec(
    durable="alert-ingest-silences", stream=streams.EVENTS, subjects=[subjects.SILENCES_REQUESTED]
)
TICKETING_RESOLVED: Final = ConsumerSpec(
    durable="ticketing-resolved", stream=streams.EVENTS, subjects=[subjects.INCIDENTS_RESOLVED]
)
