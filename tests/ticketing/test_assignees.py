"""Choosing the assignee among Jira's prefix matches, and the question when the name is ambiguous."""

from __future__ import annotations

import pytest

from services.ticketing.assignees import Ambiguous, Assignment, choice_question, choose_assignee
from services.ticketing.jira import JiraUser

RAVI_KUMAR = JiraUser("acc-ravi", "Ravi Kumar", "ravi@example.com")
RAVI_SHAH = JiraUser("acc-ravi-shah", "Ravi Shah", "rshah@example.com")
RAVINDRA = JiraUser("acc-ravindra", "Ravindra Rao")


@pytest.mark.parametrize(
    ("wanted", "users", "expected"),
    [
        ("Ravi", [RAVI_KUMAR], Assignment("acc-ravi", "Ravi Kumar")),
        ("ravi kumar", [RAVI_KUMAR, RAVI_SHAH], Assignment("acc-ravi", "Ravi Kumar")),
        ("RSHAH@example.com", [RAVI_KUMAR, RAVI_SHAH], Assignment("acc-ravi-shah", "Ravi Shah")),
        ("ravi", [RAVI_KUMAR, RAVINDRA], Assignment("acc-ravi", "Ravi Kumar")),  # the only first name "Ravi"
        ("Ravi", [RAVI_KUMAR, RAVI_SHAH, RAVINDRA], Ambiguous("Ravi", ("Ravi Kumar", "Ravi Shah"))),
        ("Rav", [RAVI_KUMAR, RAVINDRA], Ambiguous("Rav", ("Ravi Kumar", "Ravindra Rao"))),
        ("Ravi", [JiraUser("acc-x", ""), RAVI_SHAH], Assignment("acc-ravi-shah", "Ravi Shah")),
    ],
)
def test_choose_assignee(wanted: str, users: list[JiraUser], expected: Assignment | Ambiguous) -> None:
    assert choose_assignee(wanted, users, "OPS") == expected


def test_nobody_is_a_note_not_an_error() -> None:
    assert choose_assignee("Zed", [], "OPS") == Assignment(
        note="Nobody called 'Zed' can be assigned in OPS; the ticket is unassigned."
    )


def test_the_question_lists_at_most_five_and_suggests_a_reply_the_diagnoser_understands() -> None:
    names = tuple(f"Sam {surname}" for surname in ("Lee", "Patel", "Ng", "Cho", "Diaz", "Ito", "Roy"))

    question = choice_question(Ambiguous("Sam", names), new_ticket=False)

    assert question == (
        "Several people match 'Sam': Sam Lee, Sam Patel, Sam Ng, Sam Cho, Sam Diaz and 2 more. "
        "Reply `create jira task and assign to Sam Lee`."
    )
