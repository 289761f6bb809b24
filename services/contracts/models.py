"""Pydantic models of every message on the bus and of the state kept in KV.

Every bus payload carries `schema_version`. Unknown fields are ignored so that a newer
producer does not break an older consumer (and a raw Alertmanager webhook published with
the NATS CLI is a valid `AlertGroup`).
"""

import hashlib
import re
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.contracts.tool_results import ToolData, ToolOutput

SCHEMA_VERSION = 1
# Alertmanager writes this for "no end time" on firing alerts.
GO_ZERO_TIME = "0001-01-01T00:00:00Z"

Priority = Literal["P1", "P2", "P3", "P4"]
AlertChange = Literal["new", "changed", "repeat", "resolved"]
DiagnosisMethod = Literal["model", "rules"]


def utc_now() -> datetime:
    return datetime.now(UTC)


class BusMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    schema_version: int = SCHEMA_VERSION

    def to_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True, exclude_none=False).encode()


# --- alerts ---------------------------------------------------------------------------


class Alert(BaseModel):
    """One alert of an Alertmanager webhook (v4); field names as Alertmanager sends them."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime | None = Field(default=None, alias="startsAt")
    ends_at: datetime | None = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str = ""

    @field_validator("ends_at", "starts_at", mode="before")
    @classmethod
    def _go_zero_time_is_none(cls, value: Any) -> Any:
        if value in (GO_ZERO_TIME, "", None):
            return None
        return value

    @field_validator("ends_at", "starts_at")
    @classmethod
    def _naive_is_utc(cls, value: datetime | None) -> datetime | None:
        """Alertmanager always sends UTC; a naive time must still compare with aware ones."""
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class AlertGroup(BusMessage):
    """`oncall.alerts.firing|resolved`: an Alertmanager group notification.

    The body is the Alertmanager webhook itself plus the incident id alert_ingest assigned,
    so a captured webhook can be replayed with `nats pub oncall.alerts.firing --file hook.json`.
    """

    version: str = "4"
    group_key: str = Field(alias="groupKey")
    status: Literal["firing", "resolved"]
    receiver: str = ""
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL")
    alerts: list[Alert]
    truncated_alerts: int = Field(default=0, ge=0, alias="truncatedAlerts")
    incident_id: str | None = None
    # No service decides on it (the diagnoser compares with the conversation): it tells whoever reads
    # the stream, as alert_ingest's HTTP answer tells Alertmanager's operator, why this was published.
    # When it was received is the stored message's own time (no field for it).
    change: AlertChange | None = Field(
        default=None, description="What alert_ingest saw: new incident, alerts changed, or a repeat"
    )
    force: bool = Field(default=False, description="Operator replay: investigate again even if diagnosed")

    @property
    def firing(self) -> list[Alert]:
        return [a for a in self.alerts if a.status == "firing"]

    @property
    def alertname(self) -> str:
        return self.common_labels.get("alertname") or self.group_labels.get("alertname") or "alert"

    @property
    def service(self) -> str | None:
        for labels in (self.common_labels, self.group_labels, *(a.labels for a in self.alerts)):
            for key in ("service", "app", "job"):
                if labels.get(key):
                    return labels[key]
        return None

    @property
    def title(self) -> str:
        return f"{self.alertname} on {self.service}" if self.service else self.alertname

    def earliest_start(self) -> datetime | None:
        starts = [a.starts_at for a in (self.firing or self.alerts) if a.starts_at is not None]
        return min(starts) if starts else None

    @property
    def effective_incident_id(self) -> str:
        """The id alert_ingest assigned, else the one it would derive (a raw webhook replayed
        with the NATS CLI has none)."""
        return self.incident_id or incident_id_for(self.group_key, self.earliest_start())

    def annotation(self, name: str) -> str | None:
        if self.common_annotations.get(name):
            return self.common_annotations[name]
        return next((a.annotations[name] for a in self.alerts if a.annotations.get(name)), None)


def group_hash(group_key: str) -> str:
    return hashlib.sha256(group_key.encode()).hexdigest()[:16]


def incident_id_for(group_key: str, first_starts_at: datetime | None) -> str:
    """Deterministic incident id: the same group firing from the same start is the same incident,
    so replays land on the same conversation, and a group firing again after resolution
    (new startsAt) is a new incident."""
    started = first_starts_at.isoformat() if first_starts_at else ""
    return hashlib.sha256(f"{group_key}|{started}".encode()).hexdigest()[:6]


def incident_tag(incident_id: str) -> str:
    return f"#{incident_id}"


# `#a1b2c3`, not inside a word or a longer hex run (incident ids are 6 hex characters).
_INCIDENT_TAG = re.compile(r"(?<![\w#])#([0-9a-fA-F]{6})(?![0-9a-zA-Z_])")


def incident_tag_in(text: str) -> str | None:
    """The incident a person names by typing its tag (`#a1b2c3 status`), on any channel."""
    found = _INCIDENT_TAG.search(text)
    return found.group(1).lower() if found else None


# --- diagnosis -------------------------------------------------------------------------


# A diagnosis as the model sends it: the arguments of the `send_diagnosis` tool (contracts/tools.py),
# and the fields of every `Diagnosis`. No docstring: it would become part of the schema the model
# is given.
class SendDiagnosisArgs(BaseModel):
    root_cause: str = Field(description="What broke and why, in one or two sentences")
    affected_file: str | None = Field(default=None, description="Repository path of the faulty file")
    line: int | None = Field(default=None, description="Line number of the faulty statement")
    evidence: list[str] = Field(default_factory=list, description="Quoted log lines or figures")
    priority: Priority = Field(description="P1 (outage) .. P4 (cosmetic)")
    suggested_fix: str = Field(description="The change that fixes it")
    next_steps: list[str] = Field(default_factory=list, description="What the on-call person does now")
    confidence: float = Field(ge=0.0, le=1.0, description="0..1")


# What a diagnosis not written by the model (or an older record) may leave out; the model may not.
DIAGNOSIS_DEFAULTS: dict[str, Any] = {"priority": "P2", "suggested_fix": "", "confidence": 0.5}


def _diagnosis_schema(schema: dict[str, Any]) -> None:
    for name, default in DIAGNOSIS_DEFAULTS.items():
        schema["properties"][name]["default"] = default
    schema["required"] = [name for name in schema["required"] if name not in DIAGNOSIS_DEFAULTS]


class Diagnosis(SendDiagnosisArgs):
    """A diagnosis as sent and stored: the model's `send_diagnosis` arguments, or the rules'
    diagnosis in the same fields, and how it was made."""

    model_config = ConfigDict(extra="ignore", json_schema_extra=_diagnosis_schema)

    method: DiagnosisMethod = "model"
    fallback_reason: str | None = Field(
        default=None,
        description='Why the rules diagnosed rather than the model: "no model configured" or '
        '"the model at <host> failed (<reason>)"',
    )
    model: str | None = Field(default=None, description="The model that wrote it (method model)")
    unverified: list[str] = Field(
        default_factory=list,
        description="The model's claims the evidence does not show: `file:line`, quoted log lines",
    )
    rules_view: str | None = Field(
        default=None,
        description="The rules' reading, when it is strong and the model's unverified location differs",
    )

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        return {**DIAGNOSIS_DEFAULTS, **data} if isinstance(data, dict) else data


class IncidentDiagnosed(BusMessage):
    """`oncall.incidents.diagnosed`: a diagnosis ready to be sent to the on-call people."""

    incident_id: str
    revision: int = 1
    title: str
    service: str | None = None
    severity: str | None = None
    started_at: datetime | None = None
    alert_count: int = 1
    truncated_alerts: int = 0
    error_rate: float | None = None
    generator_url: str | None = None
    runbook_url: str | None = None
    diagnosis: Diagnosis
    seen_before: str | None = Field(
        default=None,
        description="Incident memory: how often this problem was seen before (diagnoser/memory.py)",
    )


class TimelineEntry(BaseModel):
    """One step of an incident, as the resolution shows it."""

    at: datetime
    what: str


class IncidentResolved(BusMessage):
    """`oncall.incidents.resolved`: the group resolved; the incident is closed."""

    incident_id: str
    title: str
    started_at: datetime | None = None
    resolved_at: datetime = Field(default_factory=utc_now)
    # The incident's ticket as its conversation knows it (diagnoser/outcomes.py).
    ticket_key: str | None = None
    ticket_url: str | None = None
    timeline: list[TimelineEntry] = Field(
        default_factory=list, description="Fired, diagnosed, each reply and action, resolved, with times"
    )


# --- the human side ----------------------------------------------------------------------


class HumanReplied(BusMessage):
    """`oncall.human.replied`: an authenticated message from an on-call person."""

    message_sid: str
    sender: str = Field(description="E.164 number, e.g. +15551234567")
    body: str
    channel: Literal["whatsapp", "console"] = "whatsapp"
    incident_id: str | None = Field(default=None, description="Set when the notifier matched it")
    profile_name: str | None = None
    received_at: datetime = Field(default_factory=utc_now)


class NotifyText(BusMessage):
    """`oncall.notify.text`: a text answer for the on-call people."""

    notification_id: str = Field(description="Idempotency key: one text is sent once")
    incident_id: str | None = None
    text: str
    recipients: list[str] | None = Field(default=None, description="None = every on-call number")
    in_reply_to: str | None = Field(default=None, description="MessageSid of the human reply this answers")
    follow_up_expected: bool = Field(
        default=False,
        description="More answers to `in_reply_to` will follow (e.g. the ticket's outcome); False: final",
    )


# --- tickets -------------------------------------------------------------------------------


class TicketRequested(BusMessage):
    """`oncall.tickets.requested`: a human asked for a ticket."""

    request_id: str
    incident_id: str
    requested_by: str
    title: str
    summary: str
    priority: Priority = "P2"
    assignee: str | None = Field(default=None, description="A name as the human wrote it")
    new_ticket: bool = Field(default=False, description="A new ticket even if the incident has one")
    diagnosis: Diagnosis | None = None
    service: str | None = None
    generator_url: str | None = None
    runbook_url: str | None = None
    in_reply_to: str | None = Field(default=None, description="MessageSid of the human reply that asked")
    related_tickets: list[str] = Field(
        default_factory=list,
        description="Tickets of earlier incidents with the same signature, newest first",
    )


class TicketCreated(BusMessage):
    """`oncall.tickets.created`."""

    request_id: str
    incident_id: str
    key: str
    url: str
    assignee_name: str | None = None
    assignee_account_id: str | None = None
    note: str | None = Field(default=None, description="e.g. why it is unassigned")
    existing: bool = Field(
        default=False, description="The incident's ticket already existed: commented on it"
    )
    status: str | None = Field(
        default=None, description="The ticket's Jira status after this, when ticketing read it"
    )
    in_reply_to: str | None = Field(default=None, description="MessageSid of the human reply that asked")


class TicketFailed(BusMessage):
    """`oncall.tickets.failed`: the reason in plain words."""

    request_id: str
    incident_id: str
    reason: str
    in_reply_to: str | None = Field(default=None, description="MessageSid of the human reply that asked")


# --- silences ------------------------------------------------------------------------------


class SilenceMatcher(BaseModel):
    """An Alertmanager v2 matcher (docs/vendor-contracts.md §1.4)."""

    name: str
    value: str
    is_regex: bool = Field(default=False, alias="isRegex")
    is_equal: bool = Field(default=True, alias="isEqual")

    model_config = ConfigDict(populate_by_name=True)


class SilenceRequested(BusMessage):
    """`oncall.silences.requested`: a human asked to silence (or unsilence) an incident's alerts."""

    request_id: str
    incident_id: str
    requested_by: str
    action: Literal["create", "expire"] = "create"
    matchers: list[SilenceMatcher] = Field(default_factory=list)
    duration_seconds: int = Field(default=7200, ge=60, le=14 * 24 * 3600)
    comment: str = ""
    in_reply_to: str | None = Field(default=None, description="MessageSid of the human reply that asked")


class SilenceApplied(BusMessage):
    """`oncall.silences.applied`: what became of a SilenceRequested (also when it was refused)."""

    request_id: str
    incident_id: str
    requested_by: str
    action: Literal["create", "expire"]
    ok: bool
    silence_id: str | None = None
    ends_at: datetime | None = None
    outcome: str = Field(description="What the human was told")


# --- tools -----------------------------------------------------------------------------------

ToolErrorKind = Literal[
    "timeout", "unavailable", "not_found", "bad_request", "rate_limited", "not_configured", "internal"
]


class ToolError(BaseModel):
    kind: ToolErrorKind
    message: str
    retry_after_seconds: float | None = None


class ToolRequest(BusMessage):
    """Request on `oncall.tools.<name>`: the tool's arguments and the incident for logging."""

    args: dict[str, Any] = Field(default_factory=dict)
    incident_id: str | None = None


ResultT = TypeVar("ResultT", bound=BaseModel)


class ToolResult(BusMessage):
    """Reply to a tool request: either the tool's typed result (`data`, contracts/tool_results.py)
    or a structured `error`, never an exception."""

    tool: str
    ok: bool
    data: ToolData | None = None
    error: ToolError | None = None

    @model_validator(mode="after")
    def _result_or_error(self) -> "ToolResult":
        if self.ok != (self.error is None):
            raise ValueError("a tool result is ok without an error, or failed with one")
        if self.data is not None and not self.ok:
            raise ValueError("a failed tool result carries no data")
        if self.data is not None and self.data.tool != self.tool:
            raise ValueError(f"data of {self.data.tool} in a result of {self.tool}")
        return self

    @classmethod
    def success(cls, tool: str, data: ToolOutput | None) -> "ToolResult":
        return cls(tool=tool, ok=True, data=data)

    def output(self, kind: type[ResultT]) -> ResultT | None:
        """The result when the tool succeeded with one of this type, else None."""
        return self.data if self.ok and isinstance(self.data, kind) else None

    def for_model(self) -> Any:
        """What the model reads of it: the result's compact rendering, or the error."""
        if not self.ok:
            return {"error": self.error.model_dump() if self.error else None}
        return self.data.for_model() if self.data is not None else None

    @classmethod
    def failure(
        cls, tool: str, kind: ToolErrorKind, message: str, retry_after: float | None = None
    ) -> "ToolResult":
        return cls(
            tool=tool,
            ok=False,
            error=ToolError(kind=kind, message=message, retry_after_seconds=retry_after),
        )


# --- state in KV ---------------------------------------------------------------------------


class SilenceRecord(BaseModel):
    """One silence outcome on the incident, as `oncall inspect` shows it."""

    request_id: str
    action: Literal["create", "expire"]
    ok: bool
    by: str
    at: datetime = Field(default_factory=utc_now)
    silence_id: str | None = None
    ends_at: datetime | None = None
    outcome: str = ""


IncidentStatus = Literal["investigating", "diagnosed", "resolved"]
Verdict = Literal["right", "wrong"]


class FeedbackRecord(BaseModel):
    """What an on-call person said of the diagnosis ("right", "wrong: the cause was X")."""

    verdict: Verdict
    by: str
    at: datetime = Field(default_factory=utc_now)
    correction: str | None = None
    message_sid: str | None = Field(default=None, description="The reply that said it (once per reply)")


class HumanTurn(BaseModel):
    message_sid: str
    sender: str
    text: str
    at: datetime = Field(default_factory=utc_now)
    answer: str | None = None


class Conversation(BaseModel):
    """KV `oncall_conversations[<incident id>]`: everything the agent knows of an incident."""

    model_config = ConfigDict(extra="ignore")

    schema_version: int = SCHEMA_VERSION
    incident_id: str
    group_key: str
    status: IncidentStatus = "investigating"
    title: str
    service: str | None = None
    opened_at: datetime = Field(default_factory=utc_now)
    resolved_at: datetime | None = None
    alerts: list[Alert] = Field(default_factory=list)
    firing_fingerprints: list[str] = Field(default_factory=list)
    truncated_alerts: int = 0
    generator_url: str | None = None
    runbook_url: str | None = None
    severity: str | None = None
    evidence_summary: str = ""
    error_rate: float | None = None
    diagnosis: Diagnosis | None = None
    diagnosis_revision: int = 0
    llm_messages: list[dict[str, Any]] = Field(default_factory=list)
    turns: list[HumanTurn] = Field(default_factory=list)
    ticket_key: str | None = None
    ticket_url: str | None = None
    ticket_error: str | None = Field(default=None, description="Why the last ticket request failed")
    silences: list[SilenceRecord] = Field(default_factory=list)
    acked_by: str | None = None
    group_labels: dict[str, str] = Field(default_factory=dict)
    tokens_used: int = 0
    # What the model cost the incident (diagnoser/costs.py), its investigations and human turns
    # summed; absent in values stored before, read as none.
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float | None = Field(default=None, description="None: no model price is configured")
    model_loops: list[str] = Field(default_factory=list, description="Loops found in the model's tool calls")
    forced_conclusion: str | None = Field(
        default=None, description="Why the model's conclusion was forced: rounds, tokens, cost, loop, repair"
    )
    updated_at: datetime = Field(default_factory=utc_now)
    # Incident memory (diagnoser/memory.py): the problem's signature (key in oncall_memory and its
    # readable form) and what the first message said of earlier incidents with it.
    signature: str | None = None
    signature_text: str | None = None
    seen_before: str | None = None
    diagnosed_at: datetime | None = None
    ticket_at: datetime | None = None
    feedback: list[FeedbackRecord] = Field(default_factory=list)


class GroupIndexEntry(BaseModel):
    """KV `oncall_groups[<group hash>]`: which incident a group currently belongs to."""

    incident_id: str
    group_key: str
    status: Literal["open", "resolved"] = "open"
    opened_at: datetime = Field(default_factory=utc_now)
    firing: list[str] = Field(default_factory=list, description="Fingerprints of the firing alerts")
    episode: int = Field(default=0, description="How many incidents this group had before this one")


OPEN_INCIDENTS_KEY = "open-incidents"  # in oncall_conversations; never an incident id (6 hex)


class OpenIncident(BaseModel):
    incident_id: str
    opened_at: datetime = Field(default_factory=utc_now)


class OpenIncidents(BaseModel):
    """KV `oncall_conversations[open-incidents]`: the incidents not yet resolved, so that a reply
    naming none finds the newest without listing the bucket. One key for every sender: every
    on-call number (and the console) is paged for every incident. Kept by the diagnoser with
    compare-and-set: an incident is added before its conversation is stored and removed after it
    is resolved, so it may briefly name one that is not (yet, or any more) open; readers check."""

    model_config = ConfigDict(extra="ignore")

    incidents: list[OpenIncident] = Field(default_factory=list)
