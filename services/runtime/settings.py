"""Settings from the environment, with the seed's variable names (see README's table)."""

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")

# The seed's error-rate queries; `{selector}` -> `{service="X"}`, `{matchers}` -> `service="X"`.
DEFAULT_ERRORS_QUERY = "sum(rate(http_errors_total{selector}[1m]))"
DEFAULT_REQUESTS_QUERY = "sum(rate(http_requests_total{selector}[1m]))"


def normalize_phone(raw: str) -> str:
    """`whatsapp:+E164` or `+E164` -> `+E164`; raises ValueError on anything else."""
    number = raw.strip().removeprefix("whatsapp:").replace(" ", "")
    if not _E164.match(number):
        raise ValueError(f"not an E.164 phone number: {raw!r} (expected +15551234567)")
    return number


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    # NATS and the process
    nats_url: str | None = Field(default=None, alias="NATS_URL")
    js_replicas: int = Field(default=1, ge=1, le=5, alias="ONCALL_JS_REPLICAS")
    # Replaces every durable consumer's ack wait (contracts ConsumerSpec.ack_wait_seconds).
    ack_wait_seconds: float | None = Field(default=None, ge=1, le=600, alias="ONCALL_ACK_WAIT_SECONDS")
    data_dir: Path = Field(default=Path(".oncall"), alias="ONCALL_DATA_DIR")
    http_host: str = Field(default="127.0.0.1", alias="ONCALL_HTTP_HOST")
    http_port: int = Field(default=8080, alias="ONCALL_HTTP_PORT")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO", alias="ONCALL_LOG_LEVEL"
    )
    log_format: Literal["text", "json"] = Field(default="text", alias="ONCALL_LOG_FORMAT")

    # alert_ingest
    ingest_token: SecretStr | None = Field(default=None, alias="INGEST_TOKEN")
    ingest_basic_user: str | None = Field(default=None, alias="INGEST_BASIC_USER")
    ingest_basic_password: SecretStr | None = Field(default=None, alias="INGEST_BASIC_PASSWORD")
    ingest_allow_anonymous: bool = Field(default=False, alias="INGEST_ALLOW_ANONYMOUS")
    ingest_max_bytes: int = Field(default=1024 * 1024, alias="ONCALL_INGEST_MAX_BYTES")

    # Alertmanager API (silences)
    alertmanager_url: str | None = Field(default=None, alias="ALERTMANAGER_URL")

    # tools
    lb_url: str | None = Field(default=None, alias="LB_URL")
    loki_url: str | None = Field(default=None, alias="LOKI_URL")
    prom_url: str | None = Field(default=None, alias="PROM_URL")
    github_token: SecretStr | None = Field(default=None, alias="GITHUB_TOKEN")
    github_owner: str | None = Field(default=None, alias="GITHUB_OWNER")
    github_repo: str | None = Field(default=None, alias="GITHUB_REPO")
    github_ref: str = Field(default="main", alias="GITHUB_REF")
    github_api_url: str = Field(default="https://api.github.com", alias="GITHUB_API_URL")
    code_dir: Path | None = Field(default=None, alias="CODE_DIR")
    tool_timeout_seconds: float = Field(default=10.0, alias="ONCALL_TOOL_TIMEOUT_SECONDS")
    tool_max_workers: int = Field(default=64, ge=1, alias="ONCALL_TOOL_MAX_WORKERS")
    tool_max_tokens: int = Field(default=2000, ge=200, alias="ONCALL_TOOL_MAX_TOKENS")
    prom_errors_query: str = Field(default=DEFAULT_ERRORS_QUERY, alias="ONCALL_PROM_ERRORS_QUERY")
    prom_requests_query: str = Field(default=DEFAULT_REQUESTS_QUERY, alias="ONCALL_PROM_REQUESTS_QUERY")

    # diagnoser
    openai_api_key: SecretStr | None = Field(default=None, alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, alias="OPENAI_BASE_URL")
    openai_model: str = Field(default="gpt-4o", alias="OPENAI_MODEL")
    openai_timeout_seconds: float = Field(default=60.0, alias="ONCALL_OPENAI_TIMEOUT_SECONDS")
    max_rounds: int = Field(default=6, ge=1, le=20, alias="ONCALL_MAX_ROUNDS")
    max_concurrent_diagnoses: int = Field(default=8, ge=1, alias="ONCALL_MAX_CONCURRENT_DIAGNOSES")
    token_budget: int = Field(default=60_000, ge=1_000, alias="ONCALL_TOKEN_BUDGET")

    # notifier
    twilio_account_sid: str | None = Field(default=None, alias="TWILIO_ACCOUNT_SID")
    twilio_auth_token: SecretStr | None = Field(default=None, alias="TWILIO_AUTH_TOKEN")
    twilio_whatsapp_number: str | None = Field(default=None, alias="TWILIO_WHATSAPP_NUMBER")
    twilio_api_base_url: str | None = Field(default=None, alias="TWILIO_API_BASE_URL")
    user_whatsapp_numbers: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="USER_WHATSAPP_NUMBER"
    )
    public_base_url: str | None = Field(default=None, alias="PUBLIC_BASE_URL")
    # Approved WhatsApp template (Content API, HX…) with one variable, sent instead of free text
    # when a person's 24-hour window is closed (Twilio error 63016).
    twilio_template_sid: str | None = Field(default=None, alias="TWILIO_TEMPLATE_SID")

    # ticketing
    jira_url: str | None = Field(default=None, alias="JIRA_URL")
    jira_email: str | None = Field(default=None, alias="JIRA_EMAIL")
    jira_api_token: SecretStr | None = Field(default=None, alias="JIRA_API_TOKEN")
    jira_project_key: str | None = Field(default=None, alias="JIRA_PROJECT_KEY")
    jira_issue_type: str = Field(default="Task", alias="JIRA_ISSUE_TYPE")
    jira_priority_map: str = Field(default="P1=Highest,P2=High,P3=Medium,P4=Low", alias="JIRA_PRIORITY_MAP")
    jira_resolve_transition: str | None = Field(default=None, alias="JIRA_RESOLVE_TRANSITION")

    @field_validator("user_whatsapp_numbers", mode="before")
    @classmethod
    def _split_numbers(cls, value: object) -> object:
        if isinstance(value, str):
            return [normalize_phone(part) for part in value.split(",") if part.strip()]
        return value

    @field_validator("openai_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        """A mistyped OPENAI_BASE_URL would only show as a failing model at the first incident:
        refuse it at start, in one line. Empty means unset (the SDK's default)."""
        if value is None or not value.strip():
            return None
        try:
            parts = urlsplit(value.strip())
            valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
        except ValueError:  # e.g. "http://[::1" or a port that is not a number
            valid = False
        if not valid:
            # The variable and the value are named beside the message (`oncall: OPENAI_BASE_URL: ...`).
            raise ValueError("must be an http(s) URL such as https://api.openai.com/v1")
        return value.strip()

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_name(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("twilio_whatsapp_number")
    @classmethod
    def _normalize_sender(cls, value: str | None) -> str | None:
        return normalize_phone(value) if value else value

    @property
    def twilio_configured(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token and self.twilio_whatsapp_number)

    @property
    def jira_configured(self) -> bool:
        return bool(self.jira_url and self.jira_email and self.jira_api_token and self.jira_project_key)

    @property
    def llm_configured(self) -> bool:
        return self.openai_api_key is not None and bool(self.openai_api_key.get_secret_value())

    @property
    def github_configured(self) -> bool:
        return bool(self.github_owner and self.github_repo)
