import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.alert_ingest.incidents import change_kind, next_group_entry
from services.alert_ingest.webhook import (
    Credentials,
    Rejection,
    check_content_type,
    check_credentials,
    notification_id,
    parse_webhook,
    subject_status,
)
from services.contracts.models import AlertGroup

FIXTURES = [
    "alertmanager_webhook_real.json",
    "alertmanager_webhook_real_mixed_resolved.json",
    "alertmanager_webhook_real_prometheus_group.json",
    "alertmanager_webhook_real_truncated.json",
]


@pytest.mark.parametrize("name", FIXTURES)
def test_every_captured_webhook_parses(fixtures_dir: Path, name: str) -> None:
    group = parse_webhook((fixtures_dir / name).read_bytes())
    assert isinstance(group, AlertGroup)
    assert group.group_key.endswith('{alertname="HighErrorRate", service="checkout"}')
    assert group.service == "checkout"


def test_the_raw_bytes_alertmanager_sent_parse(fixtures_dir: Path) -> None:
    raw = json.loads((fixtures_dir / "alertmanager_webhook_real_headers.json").read_text())["raw_body"]
    group = parse_webhook(raw.encode())
    assert isinstance(group, AlertGroup)
    assert group.alerts[0].ends_at is None  # Go's zero time means "no end"
    assert "> 0.05" in group.common_annotations["description"]


def test_per_alert_status_decides_firing(fixtures_dir: Path) -> None:
    mixed = parse_webhook((fixtures_dir / "alertmanager_webhook_real_mixed_resolved.json").read_bytes())
    assert isinstance(mixed, AlertGroup)
    assert [a.status for a in mixed.alerts] == ["firing", "resolved"]
    assert subject_status(mixed) == "firing"
    truncated = parse_webhook((fixtures_dir / "alertmanager_webhook_real_truncated.json").read_bytes())
    assert isinstance(truncated, AlertGroup) and truncated.truncated_alerts == 1


@pytest.mark.parametrize(
    ("body", "status", "names"),
    [
        (b"{oops", 400, "JSON"),
        (b"[]", 422, "object"),
        (b'{"version": "3", "alerts": []}', 422, "version"),
        (b'{"version": "4", "alerts": {}}', 422, "alerts"),
        (b'{"version": "4", "alerts": [{"status": "firing"}]}', 422, "alerts[0].labels"),
        (b'{"version": "4", "alerts": [], "status": "firing"}', 422, "groupKey"),
    ],
)
def test_bad_payloads_are_refused_with_a_readable_reason(body: bytes, status: int, names: str) -> None:
    rejection = parse_webhook(body)
    assert isinstance(rejection, Rejection)
    assert rejection.status == status and names in rejection.reason


def test_bearer_or_basic_credentials_as_alertmanager_sends_them() -> None:
    both = Credentials(token="s3cret", basic_user="amuser", basic_password="ampass")
    assert check_credentials("Bearer s3cret", both) is None
    assert check_credentials("bearer s3cret", both) is None
    assert check_credentials("Basic YW11c2VyOmFtcGFzcw==", both) is None  # amuser:ampass, as captured
    wrong = [None, "", "Bearer wrong", "Basic YW11c2VyOndyb25n", "Basic !!!", "s3cret", "Token s3cret"]
    for header in wrong:
        rejected = check_credentials(header, both)
        assert rejected is not None and rejected.status == 401, header
    assert both.challenge == 'Bearer realm="oncall", Basic realm="oncall"'


def test_an_empty_bearer_never_matches() -> None:
    for header in ("Bearer", "Bearer ", "Bearer  "):
        refused = check_credentials(header, Credentials(token="s3cret"))
        assert refused is not None and refused.status == 401


def test_without_credentials_only_anonymous_mode_lets_webhooks_in() -> None:
    assert check_credentials(None, Credentials(allow_anonymous=True)) is None
    refused = check_credentials("Bearer anything", Credentials())
    assert refused is not None and "INGEST_TOKEN" in refused.reason


def test_content_type_must_be_json_when_given() -> None:
    assert check_content_type("application/json") is None
    assert check_content_type("application/json; charset=utf-8") is None
    assert check_content_type(None) is None
    refused = check_content_type("application/x-www-form-urlencoded")
    assert refused is not None and refused.status == 415


def test_a_repeat_has_the_same_notification_id_and_a_change_does_not(fixtures_dir: Path) -> None:
    one = parse_webhook((fixtures_dir / "alertmanager_webhook_real.json").read_bytes())
    grown = parse_webhook((fixtures_dir / "alertmanager_webhook_real_prometheus_group.json").read_bytes())
    again = parse_webhook((fixtures_dir / "alertmanager_webhook_real.json").read_bytes())
    assert isinstance(one, AlertGroup) and isinstance(grown, AlertGroup) and isinstance(again, AlertGroup)
    assert notification_id(one) == notification_id(again)
    assert notification_id(one) != notification_id(grown)


def test_one_incident_per_group_until_resolved_then_a_new_one(fixtures_dir: Path) -> None:
    firing = parse_webhook((fixtures_dir / "alertmanager_webhook_real.json").read_bytes())
    assert isinstance(firing, AlertGroup)
    first = next_group_entry(None, firing)
    assert first is not None and first.status == "open"
    assert change_kind(None, first) == "new"
    assert next_group_entry(first, firing) is None  # same incident
    assert change_kind(first, first) == "repeat"
    resolved = firing.model_copy(
        update={
            "status": "resolved",
            "alerts": [a.model_copy(update={"status": "resolved"}) for a in firing.alerts],
        }
    )
    closed = next_group_entry(first, resolved)
    assert closed is not None and closed.status == "resolved" and closed.incident_id == first.incident_id
    assert change_kind(first, closed) == "resolved"
    refired = firing.model_copy(
        update={
            "alerts": [
                a.model_copy(update={"starts_at": datetime(2026, 11, 25, tzinfo=UTC)}) for a in firing.alerts
            ]
        }
    )
    reopened = next_group_entry(closed, refired)
    assert reopened is not None and reopened.status == "open" and reopened.incident_id != first.incident_id
    assert change_kind(closed, reopened) == "new"


def test_a_new_alert_joining_the_group_is_a_change_of_the_same_incident(fixtures_dir: Path) -> None:
    one = parse_webhook((fixtures_dir / "alertmanager_webhook_real.json").read_bytes())
    two = parse_webhook((fixtures_dir / "alertmanager_webhook_real_prometheus_group.json").read_bytes())
    assert isinstance(one, AlertGroup) and isinstance(two, AlertGroup)
    first = next_group_entry(None, one)
    assert first is not None
    grown = next_group_entry(first, two)
    assert grown is not None and grown.incident_id == first.incident_id and len(grown.firing) == 2
    assert change_kind(first, grown) == "changed"
