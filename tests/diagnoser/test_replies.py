import pytest

from services.diagnoser.replies import parse_reply


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
        ("lol", "help", None, None),
    ],
)
def test_rule_parser_understands_the_seed_replies(
    text: str, kind: str, assignee: str | None, priority: str | None
) -> None:
    intent = parse_reply(text)
    assert (intent.kind, intent.assignee, intent.priority) == (kind, assignee, priority)
