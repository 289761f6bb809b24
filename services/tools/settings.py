"""The tools service's settings: where the logs, the metrics and the code are, and how much a tool
may take (time: `ONCALL_TOOL_TIMEOUT_SECONDS`, shared with the diagnoser; output; concurrency)."""

from pathlib import Path

from pydantic import Field, SecretStr

from services.contracts.settings import ToolDeadline

# The seed's error-rate queries; `{selector}` -> `{service="X"}`, `{matchers}` -> `service="X"`.
DEFAULT_ERRORS_QUERY = "sum(rate(http_errors_total{selector}[1m]))"
DEFAULT_REQUESTS_QUERY = "sum(rate(http_requests_total{selector}[1m]))"


class ToolsSettings(ToolDeadline):
    lb_url: str | None = Field(default=None, alias="LB_URL")
    loki_url: str | None = Field(default=None, alias="LOKI_URL")
    prom_url: str | None = Field(default=None, alias="PROM_URL")
    github_token: SecretStr | None = Field(default=None, alias="GITHUB_TOKEN")
    github_owner: str | None = Field(default=None, alias="GITHUB_OWNER")
    github_repo: str | None = Field(default=None, alias="GITHUB_REPO")
    github_ref: str = Field(default="main", alias="GITHUB_REF")
    github_api_url: str = Field(default="https://api.github.com", alias="GITHUB_API_URL")
    code_dir: Path | None = Field(default=None, alias="CODE_DIR")
    tool_max_workers: int = Field(default=64, ge=1, alias="ONCALL_TOOL_MAX_WORKERS")
    tool_max_tokens: int = Field(default=2000, ge=200, alias="ONCALL_TOOL_MAX_TOKENS")
    prom_errors_query: str = Field(default=DEFAULT_ERRORS_QUERY, alias="ONCALL_PROM_ERRORS_QUERY")
    prom_requests_query: str = Field(default=DEFAULT_REQUESTS_QUERY, alias="ONCALL_PROM_REQUESTS_QUERY")

    @property
    def github_configured(self) -> bool:
        return bool(self.github_owner and self.github_repo)
