"""The notifier's settings: Twilio (without them, the console channel), the public URL Twilio
signs with, and who is on call (shared with `oncall reply`)."""

from pydantic import Field, SecretStr, field_validator

from services.contracts.settings import OnCallPeople, normalize_phone


class NotifierSettings(OnCallPeople):
    twilio_account_sid: str | None = Field(default=None, alias="TWILIO_ACCOUNT_SID")
    twilio_auth_token: SecretStr | None = Field(default=None, alias="TWILIO_AUTH_TOKEN")
    twilio_whatsapp_number: str | None = Field(default=None, alias="TWILIO_WHATSAPP_NUMBER")
    twilio_api_base_url: str | None = Field(default=None, alias="TWILIO_API_BASE_URL")
    public_base_url: str | None = Field(default=None, alias="PUBLIC_BASE_URL")
    # Approved WhatsApp template (Content API, HX…) with one variable, sent instead of free text
    # when a person's 24-hour window is closed (Twilio error 63016).
    twilio_template_sid: str | None = Field(default=None, alias="TWILIO_TEMPLATE_SID")

    @field_validator("twilio_whatsapp_number")
    @classmethod
    def _normalize_sender(cls, value: str | None) -> str | None:
        return normalize_phone(value) if value else value

    @property
    def twilio_configured(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token and self.twilio_whatsapp_number)
