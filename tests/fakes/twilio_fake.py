"""Fake Twilio Messages API (docs/vendor-contracts.md §3.3); set client.api.base_url = fake.url.

POST creates a message; GET lists them, newest first, filtered as Twilio documents it: `To`,
`From`, and `DateSent` / `DateSent<` / `DateSent>` (the query `DateSent>=2026-11-24` is the
parameter `DateSent>` with the value `2026-11-24`): GMT dates, compared by day, on or before /
on or after; a time given after the date is ignored. Pages of `PageSize` (default 50, at most
1000), followed through `next_page_uri` (`Page` and `PageToken`)."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, date, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

from .base import FakeHTTPServer, RecordedRequest, Response, json_response

API_VERSION = "2010-04-01"
MAX_BODY_CHARS = 1600
_MESSAGES_PATH = re.compile(rf"^/{API_VERSION}/Accounts/(?P<sid>[^/]+)/Messages\.json$")
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")


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
        create_answer_seconds: float = 0.0,
    ) -> None:
        super().__init__(delay_seconds)
        self.account_sid = account_sid
        self.auth_token = auth_token
        # A slow send: the message is created (and sent) at once, the answer comes this much
        # later, past a client's timeout if longer than it.
        self.create_answer_seconds = create_answer_seconds
        # How many more creates are answered that late; None: every one.
        self.slow_creates: int | None = None
        self._messages: list[dict[str, str]] = []
        self._sent_at: dict[str, datetime] = {}  # sid -> date_sent (sent at once: WhatsApp is quick)

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
        if req.method not in ("POST", "GET") or not match or match["sid"] != self.account_sid:
            return twilio_error(404, 20404, f"The requested resource {req.path} was not found")
        if injected := self._take_injected():
            return injected
        if req.method == "GET":
            return self._list(req)

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
            self._sent_at[sid] = datetime.now(UTC)
        if self._take_slow():
            time.sleep(self.create_answer_seconds)
        return json_response(201, self._resource(sid, fields, media_count))

    def _take_slow(self) -> bool:
        with self._lock:
            if self.create_answer_seconds <= 0 or self.slow_creates == 0:
                return False
            if self.slow_creates is not None:
                self.slow_creates -= 1
            return True

    def _list(self, req: RecordedRequest) -> Response:
        """GET Messages.json: one page of the messages matching the filters, newest first."""
        try:
            on, before, after = (_day(req.arg(name)) for name in ("DateSent", "DateSent<", "DateSent>"))
            page_size = int(req.arg("PageSize") or DEFAULT_PAGE_SIZE)
            page = int(req.arg("Page") or 0)
        except ValueError as exc:
            return twilio_error(400, 20001, f"Invalid parameter: {exc}")
        if not 1 <= page_size <= MAX_PAGE_SIZE or page < 0:
            return twilio_error(400, 20001, "Invalid PageSize or Page")
        to, sender = req.arg("To"), req.arg("From")
        with self._lock:
            listed = [(dict(m), self._sent_at[m["sid"]]) for m in self._messages]
        found = [
            (m, sent)
            for m, sent in reversed(listed)
            if (to is None or m.get("To") == to)
            and (sender is None or m.get("From") == sender)
            and (on is None or sent.date() == on)
            and (before is None or sent.date() <= before)
            and (after is None or sent.date() >= after)
        ]
        start = page * page_size
        chunk = found[start : start + page_size]
        filters = {k: v[0] for k, v in req.query.items() if k not in ("Page", "PageToken", "PageSize")}
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"

        def page_uri(number: int, token: str | None = None) -> str:
            query = {**filters, "PageSize": page_size, "Page": number}
            if token:
                query["PageToken"] = token
            return f"{base}?{urlencode(query)}"

        more = start + page_size < len(found)
        return json_response(
            200,
            {
                "messages": [self._listed(m, sent) for m, sent in chunk],
                "page": page,
                "page_size": page_size,
                "start": start,
                "end": start + max(len(chunk) - 1, 0),
                "uri": page_uri(page),
                "first_page_uri": page_uri(0),
                "next_page_uri": page_uri(page + 1, "PA" + chunk[-1][0]["sid"]) if more else None,
                "previous_page_uri": page_uri(page - 1) if page > 0 else None,
            },
        )

    def _listed(self, fields: dict[str, str], sent: datetime) -> dict[str, Any]:
        resource = self._resource(fields["sid"], fields, 0)
        when = format_datetime(sent)
        return {**resource, "status": "sent", "date_sent": when, "date_created": when, "date_updated": when}

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


def _day(value: str | None) -> date | None:
    """A `DateSent` filter's day (GMT); whatever follows `YYYY-MM-DD` is ignored."""
    if value is None:
        return None
    match = _DATE.match(value.strip())
    if match is None:
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)")
    return date(int(match[1]), int(match[2]), int(match[3]))
