"""Pure parsing and checks of an Alertmanager webhook (v4): bytes in, AlertGroup or a reason out."""

import base64
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


@dataclass(frozen=True)
class Credentials:
    """What Alertmanager's `http_config` may send: `authorization` (Bearer) or `basic_auth`."""

    token: str | None = None
    basic_user: str | None = None
    basic_password: str | None = None
    allow_anonymous: bool = False

    @property
    def challenge(self) -> str:
        schemes = [
            f'{name} realm="oncall"'
            for name, on in (("Bearer", self.token), ("Basic", self.basic_user))
            if on
        ]
        return ", ".join(schemes) or 'Bearer realm="oncall"'


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def check_credentials(authorization: str | None, creds: Credentials) -> Rejection | None:
    """None when the request may pass. Secrets are compared in constant time."""
    if creds.token is None and creds.basic_user is None:
        if creds.allow_anonymous:
            return None
        return Rejection(401, "no credentials are configured (INGEST_TOKEN or INGEST_BASIC_USER)")
    scheme, _, value = (authorization or "").partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and creds.token and value and _same(value, creds.token):
        return None
    if scheme.lower() == "basic" and creds.basic_user is not None:
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except ValueError:  # binascii.Error, non-ASCII input and UnicodeDecodeError are all ValueErrors
            return Rejection(401, "malformed basic credentials")
        # Both compared, always: no early exit that tells which one was wrong.
        user_ok = _same(user, creds.basic_user)
        password_ok = _same(password, creds.basic_password or "")
        if user_ok and password_ok:
            return None
    return Rejection(401, "missing or wrong credentials")


JSON_TYPES = ("application/json", "text/json")


def check_content_type(content_type: str | None) -> Rejection | None:
    """Alertmanager sends application/json; a missing type is tolerated, another one is refused."""
    if not content_type:
        return None
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type in JSON_TYPES or media_type.endswith("+json"):
        return None
    return Rejection(415, f"content type {media_type!r} is not JSON (Alertmanager sends application/json)")


# Fields of ours that a webhook may not set (an operator's replay on the bus may).
OURS = frozenset({"incident_id", "change", "force"})


def parse_webhook(body: bytes) -> AlertGroup | Rejection:
    """A valid webhook is parsed by pydantic straight from the bytes; anything else goes through
    the checks below, which say what is wrong with it."""
    try:
        group = AlertGroup.model_validate_json(body)
    except ValueError:  # ValidationError, and whatever else pydantic's JSON parser refuses
        return parse_checked(body)
    if group.version != "4" or "version" not in group.model_fields_set or OURS & group.model_fields_set:
        return parse_checked(body)
    return refuse_surrogates(body, group)


def parse_checked(body: bytes) -> AlertGroup | Rejection:
    try:
        # Strict UTF-8 first: json.loads(bytes) would let encoded surrogates through.
        raw = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return Rejection(400, f"body is not UTF-8: {exc.reason} at byte {exc.start}")
    except RecursionError:
        return Rejection(400, "body is not JSON this agent accepts: nested too deeply")
    except ValueError as exc:  # JSONDecodeError, and integers too long to convert
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
    for ours in OURS:  # not for webhooks to set
        raw.pop(ours, None)
    try:
        group = AlertGroup.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return Rejection(422, f"{where}: {err['msg']}")
    return refuse_surrogates(body, group)


def refuse_surrogates(body: bytes, group: AlertGroup) -> AlertGroup | Rejection:
    if may_hold_surrogates(body):
        try:
            group.to_bytes().decode("utf-8")  # what will be published must be valid UTF-8 JSON
        except (UnicodeError, ValueError):
            return Rejection(422, "a string holds an unpaired surrogate (\\ud800-\\udfff): not valid Unicode")
    return group


def may_hold_surrogates(body: bytes) -> bool:
    """The body was decoded as strict UTF-8, so a surrogate can only come from a JSON escape
    (\\ud800-\\udfff); only then is the group serialized to check it."""
    return b"\\ud" in body or b"\\uD" in body


def notification_id(group: AlertGroup) -> str:
    """Same content -> same id: Alertmanager's repeats and retries are dropped by JetStream dedup."""
    alerts = sorted(
        (a.fingerprint or json.dumps(a.labels, sort_keys=True), a.status, str(a.starts_at), str(a.ends_at))
        for a in group.alerts
    )
    # The incident is part of it: the same content in a new incident is a new notification.
    content = [group.incident_id, group.group_key, group.status, alerts]
    digest = hashlib.sha256(json.dumps(content).encode()).hexdigest()
    return f"am-{digest[:32]}"


def subject_status(group: AlertGroup) -> str:
    """A group with any firing alert is firing, whatever the group-level status says."""
    return "firing" if group.firing else "resolved"
