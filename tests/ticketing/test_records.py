"""Ticketing's KV keys, labels and JQL: valid for NATS and Jira whatever ids come off the bus."""

from __future__ import annotations

import pytest

from services.ticketing import records

ODD_IDS = ["abc", "a.b", ".a", "a..b", "a b", "a*b>", "", "é" * 300, 'a"b', "incident.x"]


@pytest.mark.parametrize("value", ODD_IDS)
def test_keys_are_valid_nats_keys_and_labels_valid_jira_labels(value: str) -> None:
    for key in (
        records.result_key(value),
        records.intent_key(value),
        records.incident_key(value),
        records.resolution_key(value),
    ):
        tokens = key.split(".")
        assert all(t and all(c.isascii() and (c.isalnum() or c in "-_=") for c in t) for t in tokens), key
        assert len(key) <= 200
    for label in (records.incident_label(value), records.request_label(value)):
        assert " " not in label and '"' not in label and len(label) <= 255


def test_different_ids_never_share_a_key() -> None:
    ids = ["a b", "a_b", "a*b", "a.b", "a..b", "a.b.", "a_b-"]
    assert len({records.result_key(i) for i in ids}) == len(ids)


def test_a_request_id_never_lands_on_an_incident_key() -> None:
    assert records.result_key("incident.a1b2c3") != records.incident_key("a1b2c3")


def test_label_jql_quotes_what_it_names() -> None:
    assert records.label_jql("IN", "oncall-incident-a1b2c3") == (
        'project = "IN" AND labels = "oncall-incident-a1b2c3" ORDER BY created DESC'
    )
    assert records.jql_string('say "hi" \\o/') == '"say \\"hi\\" \\\\o/"'
