"""What Twilio posts to the notifier, signed with the twilio SDK's own RequestValidator."""

import uuid
from urllib.parse import urlencode

import httpx
from twilio.request_validator import RequestValidator

from services.notifier.app import wire
from services.notifier.settings import NotifierSettings
from services.runtime.bus import Bus
from services.runtime.http import build_http_app
from services.runtime.service import ServiceContext

SENDER = "+15551230001"  # on call in the conftest settings
TWILIO_NUMBER = "whatsapp:+14155238886"
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
REPLY_PATH = "/webhook/twilio"
STATUS_PATH = "/webhook/twilio/status"
# The address behind our proxy: what the request's Host says, never what Twilio signed.
INTERNAL_BASE = "http://notifier.oncall.svc:8080"


def twilio_form(body: str = "status", sender: str = SENDER, **extra: str) -> dict[str, str]:
    """A WhatsApp reply as Twilio posts it (docs/vendor-contracts.md §3.1)."""
    sid = "SM" + uuid.uuid4().hex
    return {
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ProfileName": "Alice",
        "MessageType": "text",
        "SmsSid": sid,
        "WaId": sender.removeprefix("+"),
        "SmsStatus": "received",
        "Body": body,
        "To": TWILIO_NUMBER,
        "NumSegments": "1",
        "ReferralNumMedia": "0",
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": f"whatsapp:{sender}",
        "ApiVersion": "2010-04-01",
        **extra,
    }


def status_form(message_sid: str, status: str, to: str = SENDER, **extra: str) -> dict[str, str]:
    """A status callback of one of our messages (docs/vendor-contracts.md §3.3)."""
    return {
        "MessageSid": message_sid,
        "SmsSid": message_sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "AccountSid": ACCOUNT_SID,
        "From": TWILIO_NUMBER,
        "To": f"whatsapp:{to}",
        "ApiVersion": "2010-04-01",
        "ChannelPrefix": "whatsapp",
        **extra,
    }


async def _ready() -> tuple[bool, str]:
    return True, "ok"


class Webhook:
    """Posts forms to the notifier's routes as Twilio would, signed for `PUBLIC_BASE_URL`."""

    def __init__(self, settings: NotifierSettings, bus: Bus):
        parts = wire(ServiceContext(settings=settings, bus=bus))
        app = build_http_app(parts.routes, _ready)
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=INTERNAL_BASE)
        self.token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else "unset"
        self.public_base_url = settings.public_base_url or ""
        self.public_url = f"{self.public_base_url}{REPLY_PATH}"

    def sign(self, url: str, form: dict[str, str], token: str | None = None) -> str:
        return str(RequestValidator(token or self.token).compute_signature(url, form))

    async def post(
        self,
        form: dict[str, str],
        signature: str | None = "auto",
        query: str = "",
        body: bytes | None = None,
        path: str = REPLY_PATH,
    ) -> httpx.Response:
        target = path + (f"?{query}" if query else "")
        if signature == "auto":
            signature = self.sign(self.public_base_url + target, form)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if signature is not None:
            headers["X-Twilio-Signature"] = signature
        content = body if body is not None else urlencode(form).encode()
        return await self.client.post(target, content=content, headers=headers)

    async def post_status(self, form: dict[str, str], signature: str | None = "auto") -> httpx.Response:
        return await self.post(form, signature=signature, path=STATUS_PATH)
