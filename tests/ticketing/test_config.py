"""JIRA_PRIORITY_MAP and JIRA_RESOLVE_TRANSITION, parsed once at wiring."""

from __future__ import annotations

import pytest

from services.ticketing.config import DEFAULT_PRIORITY_NAMES, TicketingConfig, parse_priority_map
from services.ticketing.settings import TicketingSettings


def test_the_default_map_is_jiras_default_priority_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("JIRA_PRIORITY_MAP", "JIRA_RESOLVE_TRANSITION", "JIRA_PROJECT_KEY", "JIRA_ISSUE_TYPE"):
        monkeypatch.delenv(name, raising=False)

    config = TicketingConfig.from_settings(TicketingSettings())

    assert (
        config.priority_names
        == DEFAULT_PRIORITY_NAMES
        == {
            "P1": "Highest",
            "P2": "High",
            "P3": "Medium",
            "P4": "Low",
        }
    )
    assert (config.project_key, config.issue_type, config.resolve_transition) == (None, "Task", None)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JIRA_PRIORITY_MAP", " p1 = Blocker , P2=Critical,")
    monkeypatch.setenv("JIRA_RESOLVE_TRANSITION", " Done ")
    monkeypatch.setenv("JIRA_PROJECT_KEY", "OPS")
    monkeypatch.setenv("JIRA_ISSUE_TYPE", "Incident")

    config = TicketingConfig.from_settings(TicketingSettings())

    assert config == TicketingConfig(
        project_key="OPS",
        issue_type="Incident",
        priority_names={"P1": "Blocker", "P2": "Critical"},
        resolve_transition="Done",
    )


@pytest.mark.parametrize("blank", ["", "  "])
def test_blank_values_mean_no_priority_and_no_transition(blank: str) -> None:
    config = TicketingConfig.from_settings(
        TicketingSettings(JIRA_PRIORITY_MAP=blank, JIRA_RESOLVE_TRANSITION=blank)
    )

    assert config.priority_names == {} and config.resolve_transition is None


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("P5=Trivial", "'P5=Trivial' is not `<P1..P4>=<Jira priority name>`"),
        ("P1", "'P1' is not"),
        ("P1=", "'P1=' is not"),
        ("Highest", "'Highest' is not"),
        ("P1=Highest,p1=High", "P1 is mapped twice"),
    ],
)
def test_a_bad_map_stops_the_service_with_the_reason(text: str, error: str) -> None:
    with pytest.raises(ValueError, match="JIRA_PRIORITY_MAP") as raised:
        parse_priority_map(text)

    assert error in str(raised.value)


def test_priority_names_may_contain_spaces() -> None:
    assert parse_priority_map("P1=P1 - Critical") == {"P1": "P1 - Critical"}
