"""Ticketing's settings: Jira's site (shared, see `JiraSite`), the token its pods alone get, and
how issues are made (type, priorities, the transition on resolution)."""

from pydantic import Field, SecretStr

from services.contracts.settings import JiraSite


class TicketingSettings(JiraSite):
    jira_api_token: SecretStr | None = Field(default=None, alias="JIRA_API_TOKEN")
    jira_issue_type: str = Field(default="Task", alias="JIRA_ISSUE_TYPE")
    jira_priority_map: str = Field(default="P1=Highest,P2=High,P3=Medium,P4=Low", alias="JIRA_PRIORITY_MAP")
    jira_resolve_transition: str | None = Field(default=None, alias="JIRA_RESOLVE_TRANSITION")
