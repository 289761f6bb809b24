"""WhatsApp through the Twilio Messages API: the one module that talks to Twilio."""

import asyncio
from typing import Final

from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from services.notifier.delivery import SendError
from services.runtime.settings import Settings, normalize_phone

# The SDK has no timeout by default: a hung connection would hold a consumer forever.
HTTP_TIMEOUT_SECONDS: Final = 15.0
TOO_MANY_REQUESTS: Final = 429


class WhatsAppClient:
    """Sends WhatsApp messages from our Twilio number (`whatsapp:+…` on both ends)."""

    name = "whatsapp"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str,
        api_base_url: str | None = None,
        timeout_seconds: float = HTTP_TIMEOUT_SECONDS,
    ):
        self._from = f"whatsapp:{normalize_phone(from_number)}"
        self._client = Client(account_sid, auth_token, http_client=TwilioHttpClient(timeout=timeout_seconds))
        if api_base_url:
            # Replaces https://api.twilio.com: messages go to {base}/2010-04-01/Accounts/{sid}/Messages.json
            self._client.api.base_url = api_base_url.rstrip("/")

    @classmethod
    def from_settings(cls, settings: Settings) -> "WhatsAppClient":
        sid, token, number = (
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            settings.twilio_whatsapp_number,
        )
        if not (sid and token and number):
            raise ValueError(
                "Twilio is not configured: set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_WHATSAPP_NUMBER"
            )
        return cls(sid, token.get_secret_value(), number, settings.twilio_api_base_url)

    async def send(self, to: str, body: str) -> str:
        """Send `body` to the E.164 number `to`; returns the MessageSid. Raises SendError."""
        try:
            recipient = f"whatsapp:{normalize_phone(to)}"
        except ValueError as exc:
            raise SendError(permanent=True, code=None, message=str(exc)) from exc
        try:
            # The SDK is synchronous: keep its blocking HTTP call off the event loop.
            message = await asyncio.to_thread(
                self._client.messages.create, to=recipient, from_=self._from, body=body
            )
        except TwilioRestException as exc:
            # exc.msg, not str(exc): the latter is colourised for terminals.
            raise SendError(permanent=is_permanent(exc.status), code=exc.code, message=exc.msg) from exc
        except (OSError, TwilioException) as exc:
            # requests' connection errors and timeouts are OSErrors; TwilioException covers an
            # unreadable answer. Neither says the message itself is wrong.
            raise SendError(permanent=False, code=None, message=f"{type(exc).__name__}: {exc}") from exc
        sid: str = message.sid
        return sid


def is_permanent(status: int) -> bool:
    """4xx means Twilio refused this very request (bad number, body, credentials): sending it
    again cannot help. 429 (rate limit) and 5xx (Twilio's trouble) may pass later."""
    return 400 <= status < 500 and status != TOO_MANY_REQUESTS
