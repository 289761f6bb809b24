"""KV `oncall_memory`: what the agent remembers across incidents (the diagnoser keeps it).

- `sig-<hash>`: one `ProblemRecord` per problem signature (the service and its decisive
  signature: exception type and failing frame, or the decisive subject of a latency or
  dependency incident), listing the incidents that had it, newest last.
- `flap-<group hash>`: one `FlapRecord` per Alertmanager group that fires and resolves often.
"""

import hashlib
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from services.contracts.models import Verdict, utc_now

# Incidents remembered per signature: enough for "seen 12 times", bounded so the record stays small.
MAX_REMEMBERED = 20


def signature_key(signature: str) -> str:
    return "sig-" + hashlib.sha256(signature.encode()).hexdigest()[:20]


def flap_key(group_hash: str) -> str:
    return f"flap-{group_hash}"


class PastIncident(BaseModel):
    model_config = ConfigDict(extra="ignore")

    incident_id: str
    started_at: datetime
    resolved_at: datetime | None = None
    root_cause: str = ""
    affected_file: str | None = None
    line: int | None = None
    method: str = "rules"
    ticket_key: str | None = None
    ticket_status: str | None = Field(default=None, description="As the agent last knew it")
    verdict: Verdict | None = None
    correction: str | None = Field(default=None, description='"wrong: the cause was X": the X')


class ProblemRecord(BaseModel):
    """KV `oncall_memory[sig-<hash>]`."""

    model_config = ConfigDict(extra="ignore")

    signature: str = Field(description="Readable: `checkout | KeyError at checkout/payments.py in charge`")
    service: str | None = None
    incidents: list[PastIncident] = Field(default_factory=list)
    right: int = 0
    wrong: int = 0
    updated_at: datetime = Field(default_factory=utc_now)


class FlapRecord(BaseModel):
    """KV `oncall_memory[flap-<group hash>]`: when the group fired and resolved lately."""

    model_config = ConfigDict(extra="ignore")

    group_key: str
    title: str = ""
    firings: list[datetime] = Field(default_factory=list, description="Within the window, oldest first")
    last_change: datetime = Field(default_factory=utc_now)
    flapping_since: datetime | None = None
    announced_incident: str | None = Field(default=None, description="Whose tag the flapping message had")
    flaps: int = Field(default=0, description="Firings since it was marked flapping, announced one included")
    resolved: bool = False
    last_incident: str | None = Field(default=None, description="The incident counted last (redeliveries)")
