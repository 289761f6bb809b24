"""The diagnoser's settings: the model, its limits, and which systems the write actions need are
there (Jira and Alertmanager, as every service knows them; the tool deadline it waits for)."""

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, SecretStr, field_validator

from services.contracts.settings import AlertmanagerApi, JiraSite, ToolDeadline
from services.diagnoser.flapping import parse_window


class DiagnoserSettings(JiraSite, AlertmanagerApi, ToolDeadline):
    openai_api_key: SecretStr | None = Field(default=None, alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, alias="OPENAI_BASE_URL")
    openai_model: str = Field(default="gpt-4o", alias="OPENAI_MODEL")
    openai_timeout_seconds: float = Field(default=60.0, alias="ONCALL_OPENAI_TIMEOUT_SECONDS")
    max_rounds: int = Field(default=6, ge=1, le=20, alias="ONCALL_MAX_ROUNDS")
    max_concurrent_diagnoses: int = Field(default=8, ge=1, alias="ONCALL_MAX_CONCURRENT_DIAGNOSES")
    token_budget: int = Field(default=60_000, ge=1_000, alias="ONCALL_TOKEN_BUDGET")
    # The model's prices per 1,000 tokens, as the provider publishes them. 0 (the default): no cost
    # is computed or shown, rather than a guess (a local model costs nothing per token).
    price_input_per_1k_usd: float = Field(default=0.0, ge=0, alias="ONCALL_MODEL_PRICE_INPUT_PER_1K_USD")
    price_output_per_1k_usd: float = Field(default=0.0, ge=0, alias="ONCALL_MODEL_PRICE_OUTPUT_PER_1K_USD")
    # What an incident's model may cost before the conclusion is forced (like the token budget);
    # 0: no limit. Needs a price: without one the cost is unknown.
    cost_limit_usd: float = Field(default=0.0, ge=0, alias="ONCALL_COST_LIMIT_USD")
    # Flapping (flapping.py): more firings than this within the window mark a group flapping.
    flap_count: int = Field(default=3, ge=1, alias="ONCALL_FLAP_COUNT")
    flap_window_seconds: Annotated[float, BeforeValidator(parse_window)] = Field(
        default=3600.0, alias="ONCALL_FLAP_WINDOW"
    )
    # What the model's server holds (prompt + answer): every request is cut to fit it. 128k is
    # OpenAI's gpt-4o; a small local model is typically served with 4,096-32,768.
    model_context_tokens: int = Field(default=128_000, ge=2_048, alias="ONCALL_MODEL_CONTEXT_TOKENS")
    model_max_output_tokens: int = Field(default=1_024, ge=128, alias="ONCALL_MODEL_MAX_OUTPUT_TOKENS")
    # The model's share of one incident (or one human turn), every attempt and retry included:
    # a hanging model delays the page by at most this, then the rules answer.
    model_budget_seconds: float = Field(default=150.0, gt=0, alias="ONCALL_MODEL_BUDGET_SECONDS")
    # After this long without the model's diagnosis, the rules' first look is sent with a note
    # that the model is still working; 0 turns the notice off.
    slow_notice_seconds: float = Field(default=20.0, ge=0, alias="ONCALL_SLOW_NOTICE_SECONDS")

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

    @property
    def llm_configured(self) -> bool:
        return self.openai_api_key is not None and bool(self.openai_api_key.get_secret_value())
