"""The settings of the process that hosts services: NATS, HTTP, logs, the data dir (see README's
table). Each service declares its own settings class beside its code (`services/<name>/settings.py`);
settings several services share are in `services.contracts.settings`."""

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from services.contracts.settings import EnvSettings


class ProcessSettings(EnvSettings):
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

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_name(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value
