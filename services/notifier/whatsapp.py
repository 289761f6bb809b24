"""WhatsApp through the Twilio Messages API: the one module that talks to Twilio.

The SDK does not retry (docs/vendor-contracts.md §3.4), so a send retries Twilio's 429 and 5xx itself
under the outbound retry policy (services/runtime/outbound.py: jittered exponential backoff,
honouring Retry-After, within a small budget); beyond that the consumer's redelivery takes over.
Everything else Twilio refuses is final for that message.
"""

import asyncio
import json
import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from services.contracts.settings import normalize_phone
from services.notifier import metrics
from services.notifier.delivery import SendError, Thread
from services.notifier.settings import NotifierSettings
from services.notifier.webhook import STATUS_PATH
from services.runtime.outbound import OutboundError, RetryPolicy, is_transient, parse_retry_after

log = logging.getLogger("oncall.notifier.whatsapp")

# The SDK has no timeout by default: a hung connection would hold a consumer forever.
HTTP_TIMEOUT_SECONDS: Final = 15.0
# Retries of one send: a consumer is never held long (4 tries within 10 s, waits from 0.5 s to 4 s).
SEND_RETRY: Final = RetryPolicy(attempts=4, budget_seconds=10.0, max_wait_seconds=4.0)
# Our clock and Twilio's may differ: a message is looked for from this long before the send began.
CLOCK_SKEW: Final = timedelta(seconds=30)
# Messages read when looking for one we may have sent: pages of 50, newest first.
LIST_PAGE_SIZE: Final = 50
LIST_LIMIT: Final = 1000


class WhatsAppClient:
    """Sends WhatsApp messages from our Twilio number (`whatsapp:+…` on both ends)."""

    name = "whatsapp"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str,
        api_base_url: str | None = None,
        *,
        status_callback: str | None = None,
        template_sid: str | None = None,
        retry: RetryPolicy = SEND_RETRY,
        timeout_seconds: float = HTTP_TIMEOUT_SECONDS,
    ):
        self._from = f"whatsapp:{normalize_phone(from_number)}"
        self._status_callback = status_callback
        self._template_sid = template_sid
        self._retry = retry
        self._http = _HeaderKeepingHttpClient(timeout=timeout_seconds)
        self._client = Client(account_sid, auth_token, http_client=self._http)
        if api_base_url:
            # Replaces https://api.twilio.com: messages go to {base}/2010-04-01/Accounts/{sid}/Messages.json
            self._client.api.base_url = api_base_url.rstrip("/")

    @classmethod
    def from_settings(cls, settings: NotifierSettings, retry: RetryPolicy = SEND_RETRY) -> "WhatsAppClient":
        sid, token, number = (
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            settings.twilio_whatsapp_number,
        )
        if not (sid and token and number):
            raise ValueError(
                "Twilio is not configured: set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_WHATSAPP_NUMBER"
            )
        return cls(
            sid,
            token.get_secret_value(),
            number,
            settings.twilio_api_base_url,
            status_callback=status_callback_url(settings.public_base_url),
            template_sid=settings.twilio_template_sid,
            retry=retry,
        )

    async def send(self, to: str, body: str, thread: Thread | None = None) -> str:
        """Send `body` to the E.164 number `to`; returns the MessageSid. Raises SendError.
        (`thread` is not shown: the answer is headed by who asked what instead.)"""
        return await self._create(to, {"body": body})

    async def send_template(self, to: str, invitation: str) -> str:
        """Send the approved template (TWILIO_TEMPLATE_SID) with `invitation` as its variable 1:
        what can still reach a person whose 24-hour window is closed. Raises SendError."""
        if not self._template_sid:
            raise SendError(
                permanent=True,
                code=None,
                message="the 24-hour window is closed and TWILIO_TEMPLATE_SID is unset: no template to send",
            )
        # No Body: a Body beside ContentSid outside the window fails with 63016 again.
        variables = json.dumps({"1": invitation}, ensure_ascii=False)
        return await self._create(to, {"content_sid": self._template_sid, "content_variables": variables})

    async def find_sent(self, to: str, body: str, since: float) -> list[str]:
        """The MessageSids, newest first, of the messages with exactly `body` (which carries the
        incident tag and the part marker) sent from our number to `to` at or after `since`
        (epoch seconds): how a send whose outcome is unknown is reconciled before any resend.
        Raises SendError (transient) when Twilio cannot be asked."""
        try:
            recipient = f"whatsapp:{normalize_phone(to)}"
        except ValueError as exc:
            raise SendError(permanent=True, code=None, message=str(exc)) from exc
        start = datetime.fromtimestamp(since, UTC) - CLOCK_SKEW
        return await self._retry.call(
            lambda: asyncio.to_thread(self._find_blocking, recipient, body, start),
            on_retry=_count_retry,
            what="Twilio message list",
            logger=log,
        )

    def _find_blocking(self, recipient: str, body: str, start: datetime) -> list[str]:
        try:
            # `DateSent>=YYYY-MM-DD` filters by GMT day only: the time is compared here.
            listed = self._client.messages.stream(
                to=recipient,
                from_=self._from,
                date_sent_after=start.strftime("%Y-%m-%d"),
                page_size=LIST_PAGE_SIZE,
                limit=LIST_LIMIT,
            )
            return [
                str(message.sid)
                for message in listed
                if message.body == body
                and ((sent := message.date_sent or message.date_created) is None or sent >= start)
            ]
        except (TwilioRestException, TwilioServiceException) as exc:
            raise send_error(exc, parse_retry_after(self._http.last_retry_after())) from exc
        except (OSError, TwilioException) as exc:
            raise SendError(permanent=False, code=None, message=f"{type(exc).__name__}: {exc}") from exc

    async def _create(self, to: str, content: dict[str, str]) -> str:
        try:
            recipient = f"whatsapp:{normalize_phone(to)}"
        except ValueError as exc:
            raise SendError(permanent=True, code=None, message=str(exc)) from exc
        params: dict[str, Any] = {"to": recipient, "from_": self._from, **content}
        if self._status_callback:
            params["status_callback"] = self._status_callback
        # The SDK is synchronous: keep its blocking HTTP call off the event loop.
        return await self._retry.call(
            lambda: asyncio.to_thread(self._create_blocking, params),
            may_retry=_answered,
            on_retry=_count_retry,
            what="Twilio send",
            logger=log,
        )

    def _create_blocking(self, params: dict[str, Any]) -> str:
        try:
            return str(self._client.messages.create(**params).sid)
        except (TwilioRestException, TwilioServiceException) as exc:
            # Read in this thread: the headers kept are this request's.
            raise send_error(exc, parse_retry_after(self._http.last_retry_after())) from exc
        except (OSError, TwilioException) as exc:
            # requests' connection errors and timeouts are OSErrors; TwilioException covers an
            # unreadable answer. Neither says the message itself is wrong. Not retried here: a
            # lost answer may hide a message Twilio did create.
            raise SendError(permanent=False, code=None, message=f"{type(exc).__name__}: {exc}") from exc


class _HeaderKeepingHttpClient(TwilioHttpClient):
    """The SDK's exceptions drop the response headers: keep Retry-After of the last response,
    per thread, since several sends run at once in worker threads."""

    def __init__(self, timeout: float):
        super().__init__(timeout=timeout)
        self._local = threading.local()

    def request(self, *args: Any, **kwargs: Any) -> Response:
        response = super().request(*args, **kwargs)
        self._local.retry_after = (response.headers or {}).get("Retry-After")
        return response

    def last_retry_after(self) -> str | None:
        value: str | None = getattr(self._local, "retry_after", None)
        return value


# --- decisions (pure) -------------------------------------------------------------------------


def status_callback_url(public_base_url: str | None) -> str | None:
    """Where Twilio reports delivered/read/failed; nothing without a public URL to call."""
    return public_base_url.rstrip("/") + STATUS_PATH if public_base_url else None


def send_error(exc: TwilioRestException | TwilioServiceException, retry_after: float | None) -> SendError:
    """What Twilio's refusal means, by the outbound status classifier: 429 (rate limit) and 5xx
    (Twilio's trouble) may pass later; any other 4xx refuses this very message (bad number,
    body, credentials) for good."""
    # exc.msg / exc.detail, not str(exc): the latter is colourised for terminals.
    message = exc.msg if isinstance(exc, TwilioRestException) else (exc.detail or exc.title)
    code = exc.code if isinstance(exc.code, int) else None
    return SendError(
        permanent=not is_transient(exc.status),
        code=code,
        message=message,
        status=exc.status,
        retry_after=retry_after,
    )


def _answered(error: OutboundError) -> bool:
    # Only when Twilio answered that it did not take the message (429) or failed (5xx): after a
    # lost answer (no status) the message may exist, and the consumer's redelivery decides.
    return error.status is not None


def _count_retry(_: OutboundError) -> None:
    metrics.whatsapp_sends.labels(channel=WhatsAppClient.name, outcome="retried").inc()
