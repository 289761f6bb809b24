"""Properties of the pure webhook parser (services/alert_ingest/webhook.py), on generated bodies.

1,750 generated examples in all: whatever the bytes, `parse_webhook` answers (an AlertGroup, or a
400/422 with a reason that names the field); a valid webhook keeps every alert; the notification
id ignores the layout of the JSON but not an alert's status; what would be published parses back
to the same group; any Authorization or Content-Type header is let through or refused (401/415).
"""

import base64
import json
import re

import pytest
from alert_ingest.strategies import (
    FOUND,
    FieldPath,
    Payload,
    any_bodies,
    broken_webhooks,
    expected_time,
    serialised,
    webhooks,
)
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

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
from services.contracts.models import AlertGroup, group_hash

PROPERTY = settings(
    deadline=None,
    phases=[Phase.explicit, Phase.generate, Phase.target, Phase.shrink],  # no "explain": 20 s on a failure
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


def parsed(body: bytes) -> AlertGroup:
    group = parse_webhook(body)
    assert isinstance(group, AlertGroup), group
    return group


def assert_publishable(group: AlertGroup) -> None:
    """What alert_ingest does with an accepted group works, and what it publishes is the group."""
    notification_id(group)
    group_hash(group.group_key)
    subject_status(group)
    entry = next_group_entry(None, group)
    assert entry is not None
    change_kind(None, entry)
    published = group.model_copy(update={"incident_id": entry.incident_id, "change": "new"})
    body = published.to_bytes()
    assert AlertGroup.model_validate_json(body) == published  # what the consumers read
    assert parsed(body) == group  # a published group replayed with `nats pub` is the same webhook


@settings(PROPERTY, max_examples=600)
@given(body=any_bodies())
def test_any_body_is_a_group_or_a_400_or_422_with_a_reason(body: bytes) -> None:
    result = parse_webhook(body)
    if isinstance(result, Rejection):
        assert result.status in (400, 422)
        assert isinstance(result.reason, str) and result.reason.strip()
        result.reason.encode()  # it goes out in a JSON response
        if result.status == 422:  # "where: what", or about the payload as a whole
            assert re.match(r"\S.*?: ", result.reason) or result.reason.startswith("payload"), result
    else:
        assert isinstance(result, AlertGroup)
        assert_publishable(result)


def _names_the_field(reason: str, path: FieldPath) -> bool:
    if path[0] == "alerts" and len(path) > 1:  # alerts[2].labels or alerts.2.startsAt
        index, *rest = path[1:]
        return re.search(rf"^alerts(\[{index}\]|\.{index})(\.|:)", reason) is not None and all(
            str(step) in reason for step in rest
        )
    return reason.startswith(str(path[0])) and all(str(step) in reason for step in path[1:])


@settings(PROPERTY, max_examples=300)
@given(broken=broken_webhooks(), data=st.data())
def test_one_broken_field_is_a_422_that_names_it(
    broken: tuple[Payload, FieldPath], data: st.DataObject
) -> None:
    payload, path = broken
    result = parse_webhook(data.draw(serialised(payload)))
    assert isinstance(result, Rejection), f"accepted with {path} broken"
    assert result.status == 422
    assert _names_the_field(result.reason, path), (path, result.reason)


@settings(PROPERTY, max_examples=250)
@given(payload=webhooks(), data=st.data())
def test_a_valid_webhook_keeps_every_alert_and_is_published_as_is(
    payload: Payload, data: st.DataObject
) -> None:
    group = parsed(data.draw(serialised(payload)))
    assert group.version == "4"
    assert group.group_key == payload["groupKey"] and group.status == payload["status"]
    assert group.receiver == payload["receiver"] and group.external_url == payload["externalURL"]
    assert group.truncated_alerts == payload["truncatedAlerts"]
    assert group.group_labels == payload["groupLabels"]
    assert group.common_labels == payload["commonLabels"]
    assert group.common_annotations == payload["commonAnnotations"]
    assert group.incident_id is None and group.change is None
    assert len(group.alerts) == len(payload["alerts"])
    for alert, sent in zip(group.alerts, payload["alerts"], strict=True):
        assert alert.status == sent["status"]
        assert alert.labels == sent["labels"]
        assert alert.fingerprint == sent["fingerprint"]
        assert alert.annotations == sent["annotations"]
        assert alert.generator_url == sent["generatorURL"]
        assert alert.starts_at == expected_time(sent["startsAt"])
        assert alert.ends_at == expected_time(sent["endsAt"])  # Go's zero time: no end
    assert subject_status(group) == ("firing" if group.firing else "resolved")
    assert_publishable(group)


@settings(PROPERTY, max_examples=175)
@given(payload=webhooks(), data=st.data())
def test_the_notification_id_ignores_key_order_and_layout(payload: Payload, data: st.DataObject) -> None:
    one = parsed(data.draw(serialised(payload)))
    other = parsed(data.draw(serialised(payload)))
    assert notification_id(one) == notification_id(other)
    published = one.model_copy(update={"incident_id": "abc123", "change": "repeat"})
    assert notification_id(parsed(published.to_bytes())) == notification_id(one)


@settings(PROPERTY, max_examples=175)
@given(payload=webhooks(), data=st.data())
def test_the_notification_id_changes_with_an_alert_status(payload: Payload, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(payload["alerts"]) - 1), label="alert")
    flipped = json.loads(json.dumps(payload))
    alert = flipped["alerts"][index]
    alert["status"] = "resolved" if alert["status"] == "firing" else "firing"
    before, after = parsed(data.draw(serialised(payload))), parsed(data.draw(serialised(flipped)))
    assert notification_id(before) != notification_id(after)


CREDENTIALS = Credentials(token="t", basic_user="am", basic_password="pw")
header_values = st.one_of(
    st.text(max_size=40),  # what Starlette hands over: the header's bytes decoded as latin-1
    st.text(max_size=40).map(lambda s: f"Basic {s}"),
    st.text(max_size=40).map(lambda s: f"Bearer {s}"),
    st.binary(max_size=30).map(lambda b: "Basic " + base64.b64encode(b).decode()),
)


@settings(PROPERTY, max_examples=150)
@given(header=st.none() | header_values)
def test_any_authorization_is_let_through_or_a_401(header: str | None) -> None:
    refused = check_credentials(header, CREDENTIALS)
    assert refused is None or (refused.status == 401 and refused.reason)
    if refused is None:
        assert header is not None and header.split(" ", 1)[0].lower() in ("bearer", "basic")


@settings(PROPERTY, max_examples=100)
@given(content_type=st.none() | st.text(max_size=40))
def test_any_content_type_is_let_through_or_a_415(content_type: str | None) -> None:
    refused = check_content_type(content_type)
    assert refused is None or (refused.status == 415 and refused.reason)


@pytest.mark.parametrize("header", ["Basic \xe9", "Basic \u00e9\u00e9=="])
def test_credentials_found_by_the_properties(header: str) -> None:
    """A non-ASCII Basic value: base64.b64decode raises ValueError, not binascii.Error."""
    refused = check_credentials(header, CREDENTIALS)
    assert refused is not None and refused.status == 401


@pytest.mark.parametrize("name", list(FOUND))
def test_bodies_found_by_the_properties(name: str) -> None:
    """The minimal examples of the bugs these properties found (see FOUND)."""
    result = parse_webhook(FOUND[name])
    if isinstance(result, Rejection):
        assert result.status in (400, 422) and result.reason.strip()
        result.reason.encode()
    else:
        assert_publishable(result)
