"""Requests from Twilio, trusted only when `X-Twilio-Signature` matches.

The signature covers the URL Twilio was told to call, `PUBLIC_BASE_URL` + the route's path (plus
the query string), never the Host we see: we sit behind proxies. Replies and status callbacks
are verified the same way.
"""

import logging
from collections.abc import Callable, Mapping
from typing import Final
from urllib.parse import parse_qsl

from starlette.datastructures import ImmutableMultiDict
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from services.notifier.settings import NotifierSettings

log = logging.getLogger("oncall.notifier.webhook")

REPLY_PATH: Final = "/webhook/twilio"
STATUS_PATH: Final = "/webhook/twilio/status"
SIGNATURE_HEADER: Final = "X-Twilio-Signature"
# Twilio's form posts are a few KB; anything far bigger is not Twilio.
MAX_FORM_BYTES: Final = 64 * 1024
EMPTY_TWIML: Final = str(MessagingResponse())
NOT_CONFIGURED: Final = "Twilio webhook not configured: set TWILIO_AUTH_TOKEN and PUBLIC_BASE_URL"

Form = ImmutableMultiDict[str, str]
CountRefusal = Callable[[str], None]  # called with the reason of a refusal, for a metric


class TwilioRequests:
    """Verifies the requests Twilio makes to one of our paths."""

    def __init__(self, settings: NotifierSettings, path: str, count_refusal: CountRefusal):
        self._auth_token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else ""
        self._public_base_url = settings.public_base_url or ""
        self._path = path
        self._count_refusal = count_refusal

    async def form(self, request: Request) -> Form | Response:
        """The signed form, or the response refusing the request."""
        if not self._auth_token or not self._public_base_url:
            # Without the token nothing can be verified, and without the public URL nothing
            # can be verified correctly: refuse rather than trust.
            return self.refuse("not_configured", 403, NOT_CONFIGURED)
        signature = request.headers.get(SIGNATURE_HEADER)
        if not signature:
            return self.refuse("bad_signature", 403, f"missing {SIGNATURE_HEADER}")
        raw = await read_body(request, MAX_FORM_BYTES)
        if raw is None:
            return self.refuse("too_large", 413, f"body over {MAX_FORM_BYTES} bytes")
        form = parse_form(raw)
        url = signed_url(self._public_base_url, self._path, request.url.query)
        if not verify_signature(self._auth_token, url, form, signature):
            log.warning("rejected a request whose signature does not match %s (check PUBLIC_BASE_URL)", url)
            return self.refuse("bad_signature", 403, f"invalid {SIGNATURE_HEADER}")
        return form

    def refuse(self, outcome: str, status: int, reason: str) -> Response:
        self._count_refusal(outcome)
        return PlainTextResponse(reason, status_code=status)


def twiml() -> Response:
    return Response(EMPTY_TWIML, media_type="text/xml")


# --- decisions (pure) ---------------------------------------------------------------------


def parse_form(raw: bytes) -> Form:
    """The x-www-form-urlencoded body, blank values kept (they are signed too)."""
    return ImmutableMultiDict(parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=True))


def signed_url(public_base_url: str, path: str, query_string: str = "") -> str:
    """The URL Twilio signed: the configured public one, plus the query string it called with."""
    url = public_base_url.rstrip("/") + path
    return f"{url}?{query_string}" if query_string else url


def verify_signature(auth_token: str, url: str, params: Mapping[str, str], signature: str | None) -> bool:
    if not auth_token or not signature:
        return False
    return bool(RequestValidator(auth_token).validate(url, params, signature))


async def read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is over `limit` bytes (read no further than that)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)
