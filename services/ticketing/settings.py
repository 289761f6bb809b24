"""Ticketing's settings: Jira's site (shared, see `JiraSite`), the token its pods alone get, and
how issues are made (type, priorities, the transition on resolution)."""

from pydantic import Field, SecretStr

from services.contracts.settings import JiraSite


class TicketingSettings(JiraSite):
    jira_api_token: SecretStr | None = Field(default=None, alias="JIRA_API_TOKEN")
    jira_issue_type: str = Field(default="Task", alias="JIRA_ISSUE_TYPE")
    jira_priority_map: str = Field(default="P1=Highest,P2=High,P3=Medium,P4=Low", alias="JIRA_PRIORITY_MAP")
    jira_resolve_transition: str | None = Field(default=None, alias="JIRA_RESOLVE_TRANSITION")
    # One ticket per problem (lifecycle.py): a repeat reopens a ticket done fewer days ago than this,
    # by the first of these transition names its workflow offers ("Reopen" in classic workflows; a
    # simplified workflow names transitions after their target status).
    jira_reopen_transition: str = Field(default="Reopen,To Do", alias="JIRA_REOPEN_TRANSITION")
    reopen_days: float = Field(default=7.0, ge=0, alias="ONCALL_REOPEN_DAYS")
