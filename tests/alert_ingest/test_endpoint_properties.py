"""Properties of `POST /alerts` on a real nats-server, on 650 generated requests.

Requests mix valid webhooks (new ones, and captured ones sent again), hostile bodies, bodies just
under, at and over ONCALL_INGEST_MAX_BYTES, every kind of Authorization and Content-Type, a
Content-Length or a chunked body, and the same request sent up to three times at once. Whatever
comes in: the answer is one of 202/400/401/413/415/422 (NATS is up, so never a 5xx), the one the
documented checks lead to; each distinct notification accepted is stored exactly once in
ONCALL_ALERTS (a repeat answers `"duplicate": true`), as a valid AlertGroup with its incident id;
nothing is stored for any other answer.
"""

import asyncio
import base64
import json
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from alert_ingest.strategies import (
    BASIC_PASSWORD,
    BASIC_USER,
    FOUND,
    TOKEN,
    AlertsRequest,
    Payload,
    alerts_requests,
)
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from nats.js.api import RawStreamMsg

from services.alert_ingest.app import wire
from services.alert_ingest.settings import AlertIngestSettings
from services.alert_ingest.webhook import Rejection, notification_id, parse_webhook, subject_status
from services.contracts import streams
from services.contracts.models import AlertGroup
from services.runtime.broker import make_broker
from services.runtime.bus import Bus
from services.runtime.http import build_http_app
from services.runtime.service import ServiceContext

LIMIT = 8192  # ONCALL_INGEST_MAX_BYTES: small, so that bodies around it are cheap to send
ANSWERS = {202, 400, 401, 413, 415, 422}
INGEST_FIELDS = {"incident_id", "change"}
T = TypeVar("T")


@dataclass(frozen=True)
class StreamState:
    messages: int
    last_seq: int


@dataclass
class Exchange:
    """One request sent `copies` times at once, and what the stream held before and after."""

    responses: list[httpx.Response]
    before: StreamState
    after: StreamState
    stored: list[RawStreamMsg]


@dataclass(repr=False)
class Ingest:
    """alert_ingest (the real app, broker and bus) with an HTTP client, on an event loop that runs
    in a thread of its own for the whole test.

    Why a thread: hypothesis calls a plain function once per example and cannot await. The nats
    client must stay on the loop it connected on, and that loop must keep running between
    examples (nats-py answers the server's PINGs and reads acks in background tasks), so one
    asyncio.run per example cannot work. And pytest-asyncio's session loop is not running during
    a sync test, but is this thread's current loop: asyncio.run, or a Runner without a
    loop_factory, here would replace it and unset it on exit, under the async tests that follow.
    A loop in a thread of its own meets all three: each example is handed to it with
    run_coroutine_threadsafe and waited for, and nothing else ever runs on it.
    """

    url: str
    published: dict[str, str] = field(default_factory=dict)  # Nats-Msg-Id -> incident id
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self.loop.run_forever, name="ingest-loop", daemon=True)

    def __repr__(self) -> str:  # hypothesis prints the test's arguments with a failing example
        return f"Ingest({self.url!r}, {len(self.published)} notifications published)"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=60)

    def __enter__(self) -> "Ingest":
        self.thread.start()
        self.run(self._open())
        return self

    def __exit__(self, *_: object) -> None:
        try:
            self.run(self._close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            self.loop.close()

    async def _open(self) -> None:
        self.broker = make_broker(self.url, "prop")
        self.bus = Bus(self.broker)
        await self.broker.connect()
        await self.bus.declare()
        settings = AlertIngestSettings.model_validate(
            {
                "INGEST_TOKEN": TOKEN,
                "INGEST_BASIC_USER": BASIC_USER,
                "INGEST_BASIC_PASSWORD": BASIC_PASSWORD,
                "INGEST_ALLOW_ANONYMOUS": False,
                "ONCALL_INGEST_MAX_BYTES": LIMIT,
            }
        )
        parts = wire(ServiceContext(settings=settings, bus=self.bus))
        app = build_http_app(parts.routes, _ready)
        # raise_app_exceptions=False: an exception in the app is the 500 a client would get.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        self.client = httpx.AsyncClient(transport=transport, base_url="http://test")

    async def _close(self) -> None:
        await self.client.aclose()
        await self.broker.stop()

    async def state(self) -> StreamState:
        info = await self.bus.js.stream_info(streams.ALERTS.name)
        return StreamState(info.state.messages, info.state.last_seq)

    async def stored(self, first: int, last: int) -> list[RawStreamMsg]:
        return [await self.bus.js.get_msg(streams.ALERTS.name, seq) for seq in range(first, last + 1)]

    async def post(self, request: AlertsRequest) -> httpx.Response:
        headers: dict[bytes, bytes] = {}  # bytes: some values are not ASCII (latin-1 on the wire)
        if request.authorization is not None:
            headers[b"authorization"] = latin1(request.authorization)
        if request.content_type is not None:
            headers[b"content-type"] = latin1(request.content_type)
        content: bytes | AsyncIterator[bytes] = request.body
        if request.framing == "declared":
            headers[b"content-length"] = latin1(request.declared_length)
        elif request.framing == "chunked":  # no Content-Length: the app must count as it reads
            content = chunks(request.body, request.chunk_size)
        return await self.client.post("/alerts", content=content, headers=headers)

    async def exchange(self, request: AlertsRequest) -> Exchange:
        before = await self.state()
        responses = await asyncio.gather(*(self.post(request) for _ in range(request.copies)))
        after = await self.state()
        stored = await self.stored(before.last_seq + 1, after.last_seq)
        return Exchange(list(responses), before, after, stored)


async def _ready() -> tuple[bool, str]:
    return True, "ok"


def latin1(value: str | bytes) -> bytes:
    return value.encode("latin-1") if isinstance(value, str) else value


async def chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


# --- what the documented checks say the answer is ------------------------------------------------


def authorised(header: str | bytes | None) -> bool:
    """`Bearer <INGEST_TOKEN>` or `Basic base64(user:password)`; the scheme in any case."""
    if header is None:
        return False
    text = header.decode("latin-1") if isinstance(header, bytes) else header
    scheme, _, value = text.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() == TOKEN
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except ValueError:  # binascii.Error, UnicodeDecodeError, or not ASCII at all
            return False
        return decoded == f"{BASIC_USER}:{BASIC_PASSWORD}"
    return False


def json_content_type(content_type: str | None) -> bool:
    """None or empty (tolerated), application/json, text/json or any +json, parameters aside."""
    if not content_type:
        return True
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type in ("application/json", "text/json") or media_type.endswith("+json")


def expected_status(request: AlertsRequest) -> int:
    if not authorised(request.authorization):
        return 401
    if not json_content_type(request.content_type):
        return 415
    declared = request.declared_length if request.framing == "declared" else ""
    if (declared.isdigit() and int(declared) > LIMIT) or len(request.body) > LIMIT:
        return 413
    parsed = parse_webhook(request.body)
    return parsed.status if isinstance(parsed, Rejection) else 202


# --- the test --------------------------------------------------------------------------------------


@pytest.fixture
def ingest(clean_bus: str) -> Iterator[Ingest]:
    """On an empty bus (clean_bus), so that every message in ONCALL_ALERTS is one of ours."""
    with Ingest(clean_bus) as running:
        yield running
        # Belt and braces after the per-request checks: everything stored is a valid AlertGroup.
        state = running.run(running.state())
        for message in running.run(running.stored(1, state.last_seq)):
            assert message.data is not None, message
            assert AlertGroup.model_validate_json(message.data).incident_id, message


class Requests:
    """The request strategy, with a short repr: hypothesis prints it with a failing example."""

    def __init__(self, strategy: st.SearchStrategy[AlertsRequest]):
        self.strategy = strategy

    def __repr__(self) -> str:
        return "Requests(alerts_requests(LIMIT, <the captured webhooks>))"


@pytest.fixture(scope="module")
def requests(fixtures_dir: Path) -> Requests:
    """Requests whose valid bodies include the captured webhooks, sent again and again."""
    replays: list[Payload] = [
        json.loads(path.read_bytes())
        for path in sorted(fixtures_dir.glob("alertmanager_webhook_real*.json"))
        if not path.name.endswith("_headers.json")
    ]
    assert len(replays) >= 4
    return Requests(alerts_requests(LIMIT, replays))


def check(ingest: Ingest, request: AlertsRequest, exchange: Exchange) -> None:
    statuses = [r.status_code for r in exchange.responses]
    assert set(statuses) <= ANSWERS, [(r.status_code, r.text[:300]) for r in exchange.responses]
    assert statuses == [expected_status(request)] * request.copies, [r.text[:300] for r in exchange.responses]
    added = exchange.after.messages - exchange.before.messages
    assert added == exchange.after.last_seq - exchange.before.last_seq == len(exchange.stored)
    if statuses[0] != 202:
        assert added == 0, "published although refused"
        for response in exchange.responses:
            assert isinstance(response.json()["error"], str) and response.json()["error"]
            assert (response.status_code == 401) == ("www-authenticate" in response.headers)
        return

    group = parse_webhook(request.body)
    assert isinstance(group, AlertGroup)
    answers = [r.json() for r in exchange.responses]
    # The message id is the content within its incident (a new incident is a new notification).
    group.incident_id = answers[0]["incident_ids"][0]
    msg_id = notification_id(group)
    fresh = [a for a in answers if a["duplicate"] is False]
    # Exactly one message per distinct notification, whatever the number of copies at once.
    assert len(fresh) == added == (0 if msg_id in ingest.published else 1), answers
    for answer in answers:
        assert answer["status"] == subject_status(group)
        assert answer["change"] in ("new", "changed", "repeat", "resolved")
        assert answer["duplicate"] in (True, False)
        (incident_id,) = answer["incident_ids"]
        assert isinstance(incident_id, str) and incident_id
    for message, answer in zip(exchange.stored, fresh, strict=True):
        assert message.data is not None
        stored = AlertGroup.model_validate_json(message.data)
        assert stored.incident_id is not None and stored.incident_id == answer["incident_ids"][0]
        assert stored.change == answer["change"]
        assert message.subject == f"oncall.alerts.{subject_status(group)}"
        assert message.headers is not None and message.headers["Nats-Msg-Id"] == msg_id
        assert stored.model_dump(exclude=INGEST_FIELDS) == group.model_dump(exclude=INGEST_FIELDS)
        ingest.published[msg_id] = stored.incident_id


@settings(
    max_examples=650,
    deadline=None,
    phases=[Phase.explicit, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # `ingest` is meant to live across the examples
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
@given(data=st.data())
def test_every_request_gets_a_4xx_or_a_202_with_its_message_stored_once(
    ingest: Ingest, requests: Requests, data: st.DataObject
) -> None:
    request = data.draw(requests.strategy, label="request")
    exchange = ingest.run(ingest.exchange(request))
    for response in exchange.responses:  # the mix, with --hypothesis-show-statistics
        duplicate = response.status_code == 202 and response.json().get("duplicate") is True
        event(f"answer {response.status_code}{' duplicate' if duplicate else ''}")
    check(ingest, request, exchange)


FOUND_REQUESTS = {
    **{
        name: AlertsRequest(body, f"Bearer {TOKEN}", "application/json", "length")
        for name, body in FOUND.items()
    },
    # base64.b64decode raises ValueError (not binascii.Error) on a non-ASCII str: a 500 before
    # the credentials are even checked, for anyone who can reach /alerts.
    "non-ascii-basic-credentials": AlertsRequest(b"{}", b"Basic \xe9", "application/json", "length"),
}


@pytest.mark.parametrize("name", list(FOUND_REQUESTS))
def test_requests_found_by_the_properties_get_a_4xx_or_a_202(ingest: Ingest, name: str) -> None:
    """The minimal examples of the bugs the properties found (and alert_ingest.strategies.FOUND)."""
    request = FOUND_REQUESTS[name]
    exchange = ingest.run(ingest.exchange(request))
    assert exchange.responses[0].status_code in ANSWERS, exchange.responses[0].text[:300]
    check(ingest, request, exchange)
