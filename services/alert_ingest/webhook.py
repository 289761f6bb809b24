"""Pure parsing and checks of an Alertmanager webhook (v4): bytes in, AlertGroup or a reason out."""

import hashlib
import hmac
import json
from dataclasses import dataclass

from pydantic import ValidationError

from services.contracts.models import AlertGroup


@dataclass(frozen=True)
class Rejection:
    status: int
    reason: str


def check_bearer(authorization: str | None, token: str | None, allow_anonymous: bool) -> Rejection | None:
    """None when the request may pass. Constant-time comparison of the token."""
    if token is None:
        return None if allow_anonymous else Rejection(401, "INGEST_TOKEN is not set on the server")
    scheme, _, credentials = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(credentials.strip().encode(), token.encode()):
        return Rejection(401, "missing or wrong bearer token")
    return None


def parse_webhook(body: bytes) -> AlertGroup | Rejection:
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Rejection(400, f"body is not JSON: {exc}")
    if not isinstance(raw, dict):
        return Rejection(422, "payload must be a JSON object (Alertmanager webhook v4)")
    if raw.get("version") != "4":
        return Rejection(422, f'version: expected "4", got {raw.get("version")!r}')
    if not isinstance(raw.get("alerts"), list):
        return Rejection(422, "alerts: must be a list")
    for index, alert in enumerate(raw["alerts"]):
        if not isinstance(alert, dict) or not isinstance(alert.get("labels"), dict):
            return Rejection(422, f"alerts[{index}].labels: required object")
    raw.pop("incident_id", None)  # only alert_ingest assigns incidents
    try:
        return AlertGroup.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return Rejection(422, f"{where}: {err['msg']}")


def notification_id(group: AlertGroup) -> str:
    """Same content -> same id: Alertmanager's repeats and retries are dropped by JetStream dedup."""
    alerts = sorted(
        (a.fingerprint or json.dumps(a.labels, sort_keys=True), a.status, str(a.starts_at), str(a.ends_at))
        for a in group.alerts
    )
    digest = hashlib.sha256(json.dumps([group.group_key, group.status, alerts]).encode()).hexdigest()
    return f"am-{digest[:32]}"


def subject_status(group: AlertGroup) -> str:
    """A group with any firing alert is firing, whatever the group-level status says."""
    return "firing" if group.firing else "resolved"
