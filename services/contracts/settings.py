"""Settings more than one part of the product reads, each declared once here: the shared part of
the deployment's configuration (the ConfigMap every service gets). A service's own settings class
(`services/<name>/settings.py`) inherits the ones it needs, and whether a system is configured is
decided here, once.

Every settings class of the product derives from `EnvSettings`: the same environment rules for
all, and how the tests find them all (the README's table, the Kubernetes manifests).
"""

import re
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


class EnvSettings(BaseSettings):
    """Read from the environment by the variable names of the README's table (each field's alias)."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)


def normalize_phone(raw: str) -> str:
    """`whatsapp:+E164` or `+E164` -> `+E164`; raises ValueError on anything else."""
    number = raw.strip().removeprefix("whatsapp:").replace(" ", "")
    if not _E164.match(number):
        raise ValueError(f"not an E.164 phone number: {raw!r} (expected +15551234567)")
    return number


class OnCallPeople(EnvSettings):
    """Who is paged and may command the agent (notifier), and who `oncall reply` speaks as."""

    user_whatsapp_numbers: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="USER_WHATSAPP_NUMBER"
    )

    @field_validator("user_whatsapp_numbers", mode="before")
    @classmethod
    def _split_numbers(cls, value: object) -> object:
        if isinstance(value, str):
            return [normalize_phone(part) for part in value.split(",") if part.strip()]
        return value


class JiraSite(EnvSettings):
    """Jira Cloud as every service knows it, without credentials: ticketing creates the issues
    (its pods alone get JIRA_API_TOKEN), the diagnoser refuses to promise one without Jira."""

    jira_url: str | None = Field(default=None, alias="JIRA_URL")
    jira_email: str | None = Field(default=None, alias="JIRA_EMAIL")
    jira_project_key: str | None = Field(default=None, alias="JIRA_PROJECT_KEY")

    @property
    def jira_configured(self) -> bool:
        return bool(self.jira_url and self.jira_email and self.jira_project_key)


class AlertmanagerApi(EnvSettings):
    """Alertmanager's API: alert_ingest silences through it, the diagnoser offers silences."""

    alertmanager_url: str | None = Field(default=None, alias="ALERTMANAGER_URL")

    @property
    def alertmanager_configured(self) -> bool:
        return bool(self.alertmanager_url)


class ToolDeadline(EnvSettings):
    """How long one tool call may take: the tools stop it there, the diagnoser waits a little longer."""

    tool_timeout_seconds: float = Field(default=10.0, alias="ONCALL_TOOL_TIMEOUT_SECONDS")
