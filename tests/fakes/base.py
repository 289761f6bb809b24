"""A tiny threaded HTTP server that records every request, shared by all vendor fakes."""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import json
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

# What a fake's `handle` returns: status, response headers, body.
Response = tuple[int, dict[str, str], bytes]


@dataclass
class RecordedRequest:
    method: str
    path: str  # raw (still percent-encoded) path, without the query string
    query: dict[str, list[str]]
    headers: dict[str, str]  # keys lower-cased, so lookups are case-insensitive
    body: bytes
    started_at: float = 0.0  # time.monotonic() when handling began
    finished_at: float = 0.0  # time.monotonic() after handling, artificial delay included

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        """The x-www-form-urlencoded body; the first value wins for repeated keys."""
        return {k: v[0] for k, v in self.form_lists().items()}

    def form_lists(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode(), keep_blank_values=True)

    def arg(self, name: str, default: str | None = None) -> str | None:
        """First value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else default

    def basic_auth(self) -> tuple[str, str] | None:
        scheme, _, value = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return (user, password) if sep else None


def http_date(epoch_seconds: float) -> str:
    """An HTTP-date (IMF-fixdate, RFC 9110 §5.6.7), as a `Retry-After` header may carry it."""
    return email.utils.formatdate(epoch_seconds, usegmt=True)


def wall_clock(monotonic: float) -> float:
    """A RecordedRequest's `started_at`/`finished_at` as epoch seconds, to compare with an HTTP-date."""
    return monotonic + time.time() - time.monotonic()


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return (
        status,
        {"Content-Type": "application/json; charset=utf-8", **(headers or {})},
        json.dumps(payload).encode(),
    )


@dataclass
class _Injected:
    """A canned failure answered instead of normal handling, `times` more times."""

    response: Response
    times: int


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps connections alive like the real vendors do; every response sets Content-Length.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without TCP_NODELAY delayed ACKs add ~40 ms per request.
    disable_nagle_algorithm = True
    server: _Server

    def _serve(self) -> None:
        fake = self.server.fake
        split = urlsplit(self.path)
        req = RecordedRequest(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers=self._lowercase_headers(),
            body=self._read_body(),
        )
        req.started_at = time.monotonic()
        fake._arrive(req)
        if fake.delay_seconds > 0:
            time.sleep(fake.delay_seconds)
        try:
            status, headers, body = fake.handle(req)
        except Exception:
            # Surface fake bugs to the client instead of a silently dropped connection.
            status, headers, body = 500, {"Content-Type": "text/plain"}, traceback.format_exc().encode()
        req.finished_at = time.monotonic()
        # Record before answering so a test that has the response also sees the request.
        fake._record(req)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _lowercase_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return headers

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # CRLF after each chunk
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean


class _Server(ThreadingHTTPServer):
    # socketserver's default listen backlog of 5 drops simultaneous connects (the client then
    # retries after 1 s); a real server listens with a deep backlog.
    request_queue_size = 128
    daemon_threads = True

    def __init__(self, fake: FakeHTTPServer) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)  # port 0: the OS picks a free port

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (a timeout, a killed process) is what fault tests do on purpose.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class FakeHTTPServer:
    """Base for vendor fakes: subclasses implement `handle`; use as a context manager or start()/stop()."""

    def __init__(self, delay_seconds: float = 0.0) -> None:
        self.delay_seconds = delay_seconds
        self._requests: list[RecordedRequest] = []
        self._arrivals: list[RecordedRequest] = []  # on arrival, before any delay or answer
        self._lock = threading.Lock()
        self._injected: list[_Injected] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def handle(self, req: RecordedRequest) -> Response:
        raise NotImplementedError

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def arrivals(self) -> list[RecordedRequest]:
        """Requests as they arrived, before the fake's delay and answer: what a client has sent
        and may still be waiting on (`requests` lists them once answered)."""
        with self._lock:
            return list(self._arrivals)

    def _arrive(self, req: RecordedRequest) -> None:
        with self._lock:
            self._arrivals.append(req)

    def _inject(self, response: Response, times: int) -> None:
        with self._lock:
            self._injected.append(_Injected(response, times))

    def _take_injected(self) -> Response | None:
        """Pop one use of the oldest injected failure, if any; subclasses call it after auth checks."""
        with self._lock:
            if not self._injected:
                return None
            entry = self._injected[0]
            entry.times -= 1
            if entry.times <= 0:
                self._injected.pop(0)
            return entry.response

    def _record(self, req: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(req)

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> Self:
        if self._server is None:
            self._server = _Server(self)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=type(self).__name__,
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def wait_for(self, predicate: Callable[[Self], bool], timeout: float = 10.0) -> None:
        """Poll until predicate(self) is true; raise TimeoutError otherwise. Blocks: use from sync code."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{type(self).__name__}: condition not met within {timeout}s")
            time.sleep(0.01)

    # Same signature as wait_for so tests read alike; hence the timeout parameter ruff would rather avoid.
    async def wait_for_async(self, predicate: Callable[[Self], bool], timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Like wait_for, but yields to the event loop so the code under test keeps running."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{type(self).__name__}: condition not met within {timeout}s")
            await asyncio.sleep(0.01)
