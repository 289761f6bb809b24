"""The comments on an incident's ticket: a follow-up request, and the resolution with its times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from fakes.jira_fake import is_adf_document
from ticketing.helpers import texts

from services.contracts.models import IncidentResolved, TicketRequested
from services.ticketing import comments


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (-5, "0 s"),
        (45.9, "45 s"),
        (60, "1 min"),
        (23 * 60 + 59, "23 min"),
        (3600, "1 h"),
        (3600 + 23 * 60 + 30, "1 h 23 min"),
        (86400, "1 d"),
        (2 * 86400 + 3 * 3600 + 59 * 60, "2 d 3 h"),
    ],
)
def test_format_duration(seconds: float, said: str) -> None:
    assert comments.format_duration(seconds) == said


def _resolved(started: datetime | None, resolved: datetime) -> IncidentResolved:
    return IncidentResolved(incident_id="a1b2c3", title="t", started_at=started, resolved_at=resolved)


def test_resolution_on_one_day() -> None:
    event = _resolved(datetime(2024, 5, 1, 6, 2, tzinfo=UTC), datetime(2024, 5, 1, 7, 25, 10, tzinfo=UTC))

    document = comments.resolution(event)

    assert is_adf_document(document)
    assert texts(document) == [
        "Resolved after 1 h 23 min: from 06:02 to 07:25 UTC on 2024-05-01 (incident #a1b2c3)."
    ]


def test_resolution_across_midnight_in_another_offset() -> None:
    ist = timezone(timedelta(hours=5, minutes=30))
    event = _resolved(datetime(2024, 5, 2, 5, 0, tzinfo=ist), datetime(2024, 5, 2, 0, 10))  # naive = UTC

    assert comments.resolution_text(event) == (
        "Resolved after 40 min: from 2024-05-01 23:30 to 2024-05-02 00:10 UTC (incident #a1b2c3)."
    )


def test_resolution_without_a_start() -> None:
    event = _resolved(None, datetime(2024, 5, 1, 7, 25, tzinfo=UTC))

    assert comments.resolution_text(event) == "Resolved at 07:25 UTC on 2024-05-01 (incident #a1b2c3)."


def test_follow_up_says_who_asked_and_lists_only_the_changes() -> None:
    req = TicketRequested(
        request_id="r", incident_id="a1b2c3", requested_by="Priya", title="t", summary="s", priority="P1"
    )

    plain = comments.follow_up(req, None, None)
    changed = comments.follow_up(req, "Alice Smith", "P1 (Highest)")

    assert is_adf_document(plain) and is_adf_document(changed)
    assert [n["type"] for n in plain["content"]] == ["paragraph"]
    assert texts(changed)[1:] == ["Assigned to Alice Smith.", "Priority asked: P1 (Highest)."]
    assert texts(changed)[0].startswith("Priya asked again for a ticket for incident #a1b2c3")
