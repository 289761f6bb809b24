"""What the model reads is short: every prompt token costs time on a CPU model."""

import json

from diagnoser_harness import alert_group

from services.contracts.models import Conversation
from services.diagnoser.prompts import alert_message, incident_context


def test_the_alert_is_given_as_compact_json_without_empty_fields() -> None:
    text = alert_message(alert_group(incident_id="pr0001"), "pr0001")
    head, _, data = text.partition("\n")
    assert head == "Alert group from Alertmanager:" and "\n" not in data
    details = json.loads(data)
    assert details["incident"] == "pr0001" and details["alerts"][0]["labels"]
    assert "alerts_left_out_by_alertmanager" not in details  # none were
    assert "null" not in data and "[]" not in data and "{}" not in data


def test_the_incident_context_leaves_out_what_is_not_known_yet() -> None:
    conversation = Conversation(
        incident_id="pr0002", group_key="{}:{}", title="HighErrorRate on checkout", service="checkout"
    )
    context = json.loads(incident_context(conversation).partition("\n")[2])
    assert context["incident"] == "pr0002" and context["service"] == "checkout"
    assert "ticket" not in context and "diagnosis" not in context and "earlier_turns" not in context
