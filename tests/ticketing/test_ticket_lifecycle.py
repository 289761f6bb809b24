"""One ticket per problem: what a repeat does with the earlier ticket, from its state in Jira."""

from datetime import UTC, datetime, timedelta

import pytest

from services.ticketing.jira import IssueState, parse_jira_time
from services.ticketing.lifecycle import plan_for

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def state(category: str, days_ago: float | None) -> IssueState:
    changed = NOW - timedelta(days=days_ago) if days_ago is not None else None
    return IssueState(key="OPS-1", status="x", category=category, category_changed=changed)


@pytest.mark.parametrize(
    ("issue", "plan"),
    [
        (state("new", 30), "comment"),
        (state("indeterminate", 1), "comment"),
        (state("done", 2), "reopen"),
        (state("done", 6.9), "reopen"),
        (state("done", 7.1), "new"),
        (state("done", None), "new"),  # done, but Jira does not say since when
        (None, "new"),  # deleted or no longer visible
    ],
)
def test_the_plan_for_a_repeat(issue: IssueState | None, plan: str) -> None:
    assert plan_for(issue, NOW, reopen_days=7) == plan


def test_jira_times_read_with_and_without_a_colon_in_the_offset() -> None:
    expected = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    assert parse_jira_time("2026-11-30T10:00:00.000+0000") == expected
    assert parse_jira_time("2026-11-30T11:00:00.000+01:00") == expected
    assert parse_jira_time("2026-11-30T10:00:00Z") == expected
    assert parse_jira_time("yesterday") is None
