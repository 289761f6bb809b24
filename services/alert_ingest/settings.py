"""alert_ingest's settings: the credentials Alertmanager must send, the webhook size limit, and
Alertmanager's API for the silences asked for on WhatsApp."""

from pydantic import Field, SecretStr

from services.contracts.settings import AlertmanagerApi


class AlertIngestSettings(AlertmanagerApi):
    ingest_token: SecretStr | None = Field(default=None, alias="INGEST_TOKEN")
    ingest_basic_user: str | None = Field(default=None, alias="INGEST_BASIC_USER")
    ingest_basic_password: SecretStr | None = Field(default=None, alias="INGEST_BASIC_PASSWORD")
    ingest_allow_anonymous: bool = Field(default=False, alias="INGEST_ALLOW_ANONYMOUS")
    ingest_max_bytes: int = Field(default=1024 * 1024, alias="ONCALL_INGEST_MAX_BYTES")

    def unauthenticated(self) -> str | None:
        """Why intake must not start: it would refuse every webhook (or accept anyone's)."""
        if self.ingest_allow_anonymous:
            return None
        if self.ingest_token or (self.ingest_basic_user and self.ingest_basic_password):
            return None
        return (
            "oncall: alert_ingest needs credentials for Alertmanager's webhook: set INGEST_TOKEN "
            "(or INGEST_BASIC_USER and INGEST_BASIC_PASSWORD), or INGEST_ALLOW_ANONYMOUS=true to accept "
            "webhooks from anyone"
        )
