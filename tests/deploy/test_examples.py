"""deploy/examples/webhook.json, the sample the READMEs publish and curl: a real-shaped
Alertmanager v4 webhook that the product accepts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from services.alert_ingest.webhook import Rejection, parse_webhook
from services.contracts.models import AlertGroup

WEBHOOK = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "webhook.json"

# The fields, in Alertmanager's order, of a v4 webhook as Alertmanager 0.25 sends it
# (its `template.Data` and `template.Alert`); later versions add `notification_reason`.
GROUP_FIELDS = [
    "receiver",
    "status",
    "alerts",
    "groupLabels",
    "commonLabels",
    "commonAnnotations",
    "externalURL",
    "version",
    "groupKey",
    "truncatedAlerts",
]
ALERT_FIELDS = ["status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"]


def test_shaped_like_what_alertmanager_sends() -> None:
    raw = json.loads(WEBHOOK.read_text(encoding="utf-8"))
    assert list(raw) == GROUP_FIELDS
    assert raw["version"] == "4"
    for alert in raw["alerts"]:
        assert list(alert) == ALERT_FIELDS
        assert alert["endsAt"] == "0001-01-01T00:00:00Z"  # Go's zero time: still firing
        assert all(alert["labels"][k] == v for k, v in raw["commonLabels"].items())
        assert all(alert["labels"][k] == v for k, v in raw["groupLabels"].items())
    group_labels = ", ".join(f'{k}="{v}"' for k, v in raw["groupLabels"].items())
    assert raw["groupKey"] == "{}:{" + group_labels + "}"


def test_a_valid_alert_group() -> None:
    group = AlertGroup.model_validate_json(WEBHOOK.read_bytes())
    assert (group.alertname, group.service, group.status) == ("HighErrorRate", "checkout", "firing")
    assert len(group.firing) == len(group.alerts) == 1
    assert group.alerts[0].starts_at == datetime(2026, 11, 24, 6, 2, 41, 389000, tzinfo=UTC)
    assert group.alerts[0].ends_at is None


def test_accepted_by_the_webhook_parser() -> None:
    group = parse_webhook(WEBHOOK.read_bytes())
    assert not isinstance(group, Rejection), group
    assert group.group_key == '{}:{alertname="HighErrorRate", service="checkout"}'
    assert group.incident_id is None  # alert_ingest assigns it
