"""Fake Twilio Messages API (docs/vendor-contracts.md §3.3); set client.api.base_url = fake.url."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from .base import FakeHTTPServer, RecordedRequest, Response, json_response

API_VERSION = "2010-04-01"
MAX_BODY_CHARS = 1600
_MESSAGES_PATH = re.compile(rf"^/{API_VERSION}/Accounts/(?P<sid>[^/]+)/Messages\.json$")
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")


def twilio_error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return json_response(status, body, headers)


class FakeTwilio(FakeHTTPServer):
    """POST /2010-04-01/Accounts/{AccountSid}/Messages.json with Twilio's validation and error codes."""

    def __init__(
        self,
        account_sid: str = "AC" + "0123456789abcdef" * 2,
        auth_token: str = "twilio-test-token",
        delay_seconds: float = 0.0,
    ) -> None:
        super().__init__(delay_seconds)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self._messages: list[dict[str, str]] = []

    @property
    def messages(self) -> list[dict[str, str]]:
        """Accepted messages' form fields plus the generated "sid", in arrival order."""
        with self._lock:
            return [dict(m) for m in self._messages]

    def fail_next(
        self, status: int, code: int, message: str, times: int = 1, retry_after: int | str = 1
    ) -> None:
        """Answer the next `times` authenticated message requests with this error (429 adds Retry-After:
        delta-seconds, or an HTTP-date given as text)."""
        headers = {"Retry-After": str(retry_after)} if status == 429 else {}
        self._inject(twilio_error(status, code, message, headers), times)

    def handle(self, req: RecordedRequest) -> Response:
        if req.basic_auth() != (self.account_sid, self.auth_token):
            return twilio_error(401, 20003, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'})
        match = _MESSAGES_PATH.match(req.path)
        if req.method != "POST" or not match or match["sid"] != self.account_sid:
            return twilio_error(404, 20404, f"The requested resource {req.path} was not found")
        if injected := self._take_injected():
            return injected

        # Twilio reads only form parameters: any other body looks like no parameters at all.
        is_form = req.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
        lists = req.form_lists() if is_form else {}
        fields = {name: values[0] for name, values in lists.items()}
        media_count = len(lists.get("MediaUrl", []))
        if error := self._validate(fields, media_count):
            return error

        sid = "SM" + uuid.uuid4().hex
        with self._lock:
            self._messages.append({**fields, "sid": sid})
        return json_response(201, self._resource(sid, fields, media_count))

    @staticmethod
    def _validate(fields: dict[str, str], media_count: int) -> Response | None:
        to, sender = fields.get("To", ""), fields.get("From", "")
        if not to:
            return twilio_error(400, 21604, "A 'To' phone number is required.")
        if not sender and not fields.get("MessagingServiceSid"):
            return twilio_error(
                400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a message."
            )
        if sender.startswith("whatsapp:") and not _E164.match(sender.removeprefix("whatsapp:")):
            return twilio_error(
                400,
                21212,
                f"The 'From' number {sender} is not a valid phone number, shortcode, "
                "or alphanumeric sender ID.",
            )
        # A WhatsApp sender can only reach a WhatsApp address.
        same_channel = to.startswith("whatsapp:") or not sender.startswith("whatsapp:")
        if not (same_channel and _E164.match(to.removeprefix("whatsapp:"))):
            return twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not fields.get("Body") and not fields.get("ContentSid") and media_count == 0:
            return twilio_error(400, 21619, "A text message body or media urls must be specified.")
        if len(fields.get("Body", "")) > MAX_BODY_CHARS:
            return twilio_error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        return None

    def _resource(self, sid: str, fields: dict[str, str], media_count: int) -> dict[str, Any]:
        now = format_datetime(datetime.now(UTC))
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": fields.get("Body", ""),
            "date_created": now,
            "date_sent": None,  # not sent yet while queued
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": fields.get("From"),
            "num_media": str(media_count),
            "num_segments": "1",
            "price": None,
            "price_unit": None,
            "messaging_service_sid": fields.get("MessagingServiceSid"),
            "sid": sid,
            "status": "queued",
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": fields["To"],
            "uri": f"{uri}.json",
        }
