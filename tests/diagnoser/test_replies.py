import pytest

from services.diagnoser.replies import HELP_TEXT, not_understood, parse_reply


@pytest.mark.parametrize(
    ("text", "kind", "assignee", "priority"),
    [
        ("create jira task and assign to Ravi", "ticket", "Ravi", None),
        ("Create Jira task assign to ravi", "ticket", "ravi", None),
        ("open a ticket, assign it to Ravi Kumar with priority P1", "ticket", "Ravi Kumar", "P1"),
        ("ticket please", "ticket", None, None),
        ("jira P3", "ticket", None, "P3"),
        ("status", "status", None, None),
        ("what's the error rate now?", "status", None, None),
        ("help", "help", None, None),
        ("lol", "unknown", None, None),
        # The assignee, however it is said (issue 10).
        ("create a ticket for priya, priority P2", "ticket", "priya", "P2"),
        ("ticket for Priya", "ticket", "Priya", None),
        ("assign it to priya", "ticket", "priya", None),
        ("create jira task and assign to ravi", "ticket", "ravi", None),
        ("reassign to Ravi Kumar", "ticket", "Ravi Kumar", None),
        ("assignee: @priya", "ticket", "priya", None),
        ("create ticket, assign priya", "ticket", "priya", None),
        ("#a1b2c3 ticket for priya", "ticket", "priya", None),
        # "for" naming no person is no assignee.
        ("create a ticket for this incident", "ticket", None, None),
        ("ticket for the payments team", "ticket", None, None),
        ("#a1b2c3 status", "status", None, None),
        ("?", "help", None, None),
        ("what can you do?", "help", None, None),
    ],
)
def test_rule_parser_understands_the_seed_replies(
    text: str, kind: str, assignee: str | None, priority: str | None
) -> None:
    intent = parse_reply(text)
    assert (intent.kind, intent.assignee, intent.priority) == (kind, assignee, priority)


def test_what_is_not_understood_is_quoted_before_the_help() -> None:
    answer = not_understood("  can you   page Bob ")
    assert answer.startswith('I did not understand "can you page Bob".\n\n')
    assert answer.endswith(HELP_TEXT)
