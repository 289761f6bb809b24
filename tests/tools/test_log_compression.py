"""Log compression: templates, stack traces, redaction and the size cap, on data shaped like real logs."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from services.runtime.demo import DEMO_BUGGY_FILE, DEMO_BUGGY_LINE, demo_log_lines
from services.tools.log_compression import (
    LogEntry,
    compress_logs,
    merge_continuations,
    parse_trace,
    redact,
    template_of,
    top_frame,
)

NOW = datetime(2026, 11, 24, 6, 5, tzinfo=UTC)


def entry(
    message: str, level: str = "INFO", service: str = "inventory-1", ts: str = "2026-11-24T06:00:00Z"
) -> LogEntry:
    return LogEntry(timestamp=ts, level=level, message=message, service=service)


def test_the_demo_incident_compresses_to_its_story() -> None:
    entries = [LogEntry.model_validate(line) for line in demo_log_lines(NOW)]

    result = compress_logs(entries, max_chars=12_000)

    assert len(json.dumps(result)) <= 12_000
    assert result["total_lines"] == len(entries)
    assert result["window"] == {"first": entries[0].timestamp, "last": entries[-1].timestamp}
    assert sum(result["levels"].values()) == len(entries)
    top = result["templates"][0]
    assert top["level"] == "ERROR"
    assert top["template"] == (
        "Unhandled exception in POST /api/v<n>/reservations | TypeError: '<*>' object is not subscriptable"
    )
    assert top["count"] == result["stack_traces"][0]["count"] > 10
    assert top["first_seen"] <= top["last_seen"]
    (trace,) = result["stack_traces"]
    assert trace["exception"] == "TypeError: 'NoneType' object is not subscriptable"
    assert [(f["file"], f["line"], f["function"]) for f in trace["frames"]] == [
        ("/app/inventory/api.py", 88, "create_reservation"),
        (f"/app/{DEMO_BUGGY_FILE}", DEMO_BUGGY_LINE, "reserve_stock"),
    ]
    assert trace["frames"][-1]["code"] == 'available = entry["available"] - entry["reserved"]'
    assert trace["text"].startswith("Unhandled exception in POST /api/v1/reservations\nTraceback")
    assert result["omitted"] is None
    assert top_frame(result) == result["top_frame"] == trace["frames"][-1]


def test_templates_rank_errors_first_then_by_count() -> None:
    entries = [entry(f"GET /items/{i} 200 {i}ms") for i in range(5)]
    entries += [entry("cache miss for key 'a'", "WARN"), entry("cache miss for key 'b'", "WARN")]
    entries += [entry("db down at 10.0.0.7:5432", "ERROR")]

    templates = compress_logs(entries)["templates"]

    assert [(t["level"], t["template"], t["count"]) for t in templates] == [
        ("ERROR", "db down at <ip>", 1),
        ("WARN", "cache miss for key '<*>'", 2),
        ("INFO", "GET /items/<n> 200 <n>ms", 5),
    ]
    assert templates[2]["example"] == "GET /items/0 200 0ms"


@pytest.mark.parametrize(
    ("message", "template"),
    [
        ("user 42 paid 19.99", "user <n> paid <n>"),
        ("request 3fa2b1c4d5e6f708 failed", "request <hex> failed"),
        ("pointer 0x7ffd12 freed", "pointer <hex> freed"),
        ("job 123e4567-e89b-12d3-a456-426614174000 done", "job <uuid> done"),
        ("started at 2026-11-24T06:00:00.123Z", "started at <ts>"),
        ("started at 2026-11-24 06:00:00,123 local", "started at <ts> local"),
        ("client 192.168.1.20:51234 closed", "client <ip> closed"),
        ('lookup "alice" failed', 'lookup "<*>" failed'),
        ("can't reserve 'sku-1'", "can't reserve '<*>'"),
        ("POST /api/v1/orders 500 12ms", "POST /api/v<n>/orders 500 <n>ms"),
        ('"GET /x HTTP/1.1" 404 512', '"<*>" 404 <n>'),
        ("upstream status=503 after 3 tries", "upstream status=503 after <n> tries"),
    ],
)
def test_templates_mask_what_varies(message: str, template: str) -> None:
    assert template_of(message) == template


def test_http_status_separates_otherwise_equal_lines() -> None:
    entries = [entry("POST /api/v1/reservations 201 9ms"), entry("POST /api/v1/reservations 500 7ms")]
    assert len(compress_logs(entries)["templates"]) == 2


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abc.def-ghi_jkl123", "abc.def-ghi_jkl123"),
        ("calling with bearer sometoken12345 now", "sometoken12345"),
        ("Authorization: Basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy"),
        ("connect postgres://app:s3cr3t-pw@db:5432/shop", "s3cr3t-pw"),
        ("login password=hunter2 ok", "hunter2"),
        ('{"db_password": "hunter2"}', "hunter2"),
        ("client_secret=abcdef123", "abcdef123"),
        ("token: tok_live_123456", "tok_live_123456"),
        ("GET /x?api_key=KEY123&page=2", "KEY123"),
        ("using AKIAIOSFODNN7EXAMPLE for s3", "AKIAIOSFODNN7EXAMPLE"),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0"
            ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        ),
        (
            "key -----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY----- end",
            "MIIEpAIBAAKCAQEA",
        ),
        ("mail to ravi.k+oncall@example.co.uk failed", "ravi.k+oncall@example.co.uk"),
        ("charge 4111 1111 1111 1111 declined", "4111 1111 1111 1111"),
        ("charge 4111-1111-1111-1111 declined", "4111-1111-1111-1111"),
        ("gh token ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
    ],
)
def test_redact_removes_secrets(text: str, secret: str) -> None:
    redacted = redact(text)
    assert secret not in redacted
    assert "[REDACTED" in redacted


@pytest.mark.parametrize(
    "text",
    [
        "order 1795500262165 created",  # epoch milliseconds, not a card
        "charge 4111 1111 1111 1112 declined",  # fails the Luhn check
        "token validation failed for user 7",
        "max_tokens=512 author=Ravi",
    ],
)
def test_redact_leaves_ordinary_text_alone(text: str) -> None:
    assert redact(text) == text


def test_private_key_redaction_keeps_the_line_count() -> None:
    text = "a\n-----BEGIN PRIVATE KEY-----\nAAAA\nBBBB\n-----END PRIVATE KEY-----\nb"
    assert redact(text).count("\n") == text.count("\n")


def test_no_secret_leaves_in_any_field() -> None:
    trace = (
        "login failed for ravi@example.com password=hunter2\nTraceback (most recent call last):\n"
        '  File "/app/auth.py", line 3, in login\n    connect("postgres://u:hunter2@db")\n'
        "ValueError: bad password=hunter2 for ravi@example.com"
    )
    result = compress_logs([entry(trace, "ERROR"), entry("hello ravi@example.com")])
    dumped = json.dumps(result)
    assert "hunter2" not in dumped
    assert "ravi@example.com" not in dumped
    assert result["stack_traces"][0]["frames"][0]["code"] == 'connect("postgres://u:[REDACTED]@db")'


def test_a_traceback_logged_line_by_line_is_one_event_even_with_replicas_interleaved() -> None:
    lines = [
        entry("Unhandled exception in GET /x", "ERROR"),
        entry("GET /healthz 200 1ms", service="inventory-2"),
        entry("Traceback (most recent call last):", "ERROR"),
        entry('  File "/usr/lib/python3.11/asyncio/runners.py", line 118, in run', "ERROR"),
        entry("    return self._loop.run_until_complete(task)", "ERROR"),
        entry('  File "/app/inventory/api.py", line 12, in get_x', "ERROR"),
        entry("    return items[key]", "ERROR"),
        entry("KeyError: 'sku-1'", "ERROR"),
        entry("GET /x 500 3ms"),
    ]

    events = merge_continuations(lines)
    result = compress_logs(lines)

    assert [e.message.split("\n")[0] for e in events] == [
        "Unhandled exception in GET /x",
        "GET /healthz 200 1ms",
        "GET /x 500 3ms",
    ]
    assert merge_continuations(events) == events
    assert result["total_lines"] == 3
    (trace,) = result["stack_traces"]
    assert trace["exception"] == "KeyError: 'sku-1'"
    assert trace["frames"][-1] == {
        "file": "/app/inventory/api.py",
        "line": 12,
        "function": "get_x",
        "code": "return items[key]",
    }


def test_same_trace_with_different_values_groups_together() -> None:
    def crash(sku: str) -> LogEntry:
        return entry(
            "Traceback (most recent call last):\n"
            f"  File \"/app/a.py\", line 5, in f\n    x[k]\nKeyError: '{sku}'",
            "ERROR",
        )

    traces = compress_logs([crash("sku-1"), crash("sku-2"), crash("sku-3")])["stack_traces"]
    assert [(t["exception"], t["count"]) for t in traces] == [("KeyError: 'sku-1'", 3)]


def test_chained_python_traceback_reports_the_raised_exception() -> None:
    text = (
        'Traceback (most recent call last):\n  File "/app/db.py", line 9, in get\n    row = rows[0]\n'
        "IndexError: list index out of range\n\n"
        "The above exception was the direct cause of the following exception:\n\n"
        'Traceback (most recent call last):\n  File "/app/api.py", line 20, in handler\n    get()\n'
        "LookupError: no row"
    )
    trace = parse_trace(text)
    assert trace is not None
    assert trace.exception == "LookupError: no row"
    assert [f.file for f in trace.frames] == ["/app/api.py"]


def test_java_trace_frames_are_innermost_last_and_top_frame_skips_the_jdk() -> None:
    lines = [
        entry("Request failed", "ERROR", service="orders-1"),
        entry('java.lang.NullPointerException: Cannot invoke "Item.price()"', "ERROR", service="orders-1"),
        entry("\tat java.base/java.util.Objects.requireNonNull(Objects.java:233)", service="orders-1"),
        entry("\tat com.acme.orders.PriceService.total(PriceService.java:42)", service="orders-1"),
        entry("\tat com.acme.orders.OrderController.create(OrderController.java:17)", service="orders-1"),
        entry("Caused by: java.io.IOException: boom", service="orders-1"),
        entry("\tat com.acme.orders.Db.load(Db.java:5)", service="orders-1"),
    ]

    result = compress_logs(lines)

    (trace,) = result["stack_traces"]
    assert trace["exception"] == 'java.lang.NullPointerException: Cannot invoke "Item.price()"'
    assert [(f["file"], f["line"]) for f in trace["frames"]] == [
        ("OrderController.java", 17),
        ("PriceService.java", 42),
        ("Objects.java", 233),
    ]
    assert "Caused by: java.io.IOException: boom" in trace["text"]
    assert top_frame(result) == {
        "file": "PriceService.java",
        "line": 42,
        "function": "com.acme.orders.PriceService.total",
        "code": None,
    }


def test_node_trace() -> None:
    text = (
        "TypeError: Cannot read properties of undefined (reading 'id')\n"
        "    at getUser (/srv/app/src/users.js:42:13)\n"
        "    at Layer.handle (/srv/app/node_modules/express/lib/router/layer.js:95:5)\n"
        "    at /srv/app/src/server.js:10:3"
    )
    result = compress_logs([entry(text, "ERROR")])
    trace = result["stack_traces"][0]
    assert [(f["file"], f["line"], f["function"]) for f in trace["frames"]] == [
        ("/srv/app/src/server.js", 10, "<anonymous>"),
        ("/srv/app/node_modules/express/lib/router/layer.js", 95, "Layer.handle"),
        ("/srv/app/src/users.js", 42, "getUser"),
    ]
    assert top_frame(result) == {
        "file": "/srv/app/src/users.js",
        "line": 42,
        "function": "getUser",
        "code": None,
    }


def test_go_panic() -> None:
    text = (
        "panic: runtime error: invalid memory address or nil pointer dereference\n"
        "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a1b2c]\n\n"
        "goroutine 7 [running]:\n"
        "main.(*Store).Get(0x0, {0x6b4ec0, 0x3})\n"
        "\t/src/store/store.go:42 +0x1d\n"
        "main.handler({0x7f1c20, 0xc0000a4000}, 0xc0000b2000)\n"
        "\t/src/main.go:17 +0x85\n"
        "net/http.HandlerFunc.ServeHTTP(0x0?, {0x7f1c20?, 0xc0000a4000?}, 0x0?)\n"
        "\t/usr/local/go/src/net/http/server.go:2122 +0x2f\n"
    )
    result = compress_logs([entry(text, "ERROR")])
    trace = result["stack_traces"][0]
    assert trace["exception"].startswith("panic: runtime error: invalid memory address")
    assert [(f["file"], f["line"]) for f in trace["frames"]] == [
        ("/usr/local/go/src/net/http/server.go", 2122),
        ("/src/main.go", 17),
        ("/src/store/store.go", 42),
    ]
    assert top_frame(result) == {
        "file": "/src/store/store.go",
        "line": 42,
        "function": "main.(*Store).Get",
        "code": None,
    }


def test_top_frame_is_none_without_application_frames() -> None:
    text = (
        "Traceback (most recent call last):\n"
        '  File "/usr/local/lib/python3.11/site-packages/httpx/_client.py", line 1, in send\n    x()\n'
        "httpx.ConnectError: refused"
    )
    assert top_frame(compress_logs([entry(text, "ERROR")])) is None
    assert top_frame(compress_logs([])) is None


def test_empty_input() -> None:
    assert compress_logs([]) == {
        "total_lines": 0,
        "window": {"first": None, "last": None},
        "levels": {},
        "templates": [],
        "stack_traces": [],
        "omitted": None,
        "top_frame": None,
    }


def test_over_budget_drops_the_least_important_and_says_so() -> None:
    entries = [
        entry(f"event kind-{chr(97 + i % 26)}{chr(97 + i // 26)} happened " + "x" * 80) for i in range(300)
    ]
    entries += [entry(f"fatal kind-{chr(97 + i)}", "ERROR") for i in range(5)]
    entries += [
        entry(
            'crash\nTraceback (most recent call last):\n  File "/app/a.py", line 1, in f\n    g()\n'
            "ValueError: v",
            "ERROR",
        )
    ]

    result = compress_logs(entries, max_chars=4000)

    assert len(json.dumps(result)) <= 4000
    assert result["stack_traces"]
    kept_errors = [t for t in result["templates"] if t["level"] == "ERROR"]
    assert len(kept_errors) == 6
    dropped = 306 - len(result["templates"])
    assert result["omitted"].startswith(f"Left out to stay under 4000 characters: {dropped} of 306 templates")


def test_a_huge_trace_is_shortened_not_dropped() -> None:
    frames = "".join(f'  File "/app/m{i}.py", line {i}, in f{i}\n    call_{i}()\n' for i in range(400))
    result = compress_logs(
        [entry(f"Traceback (most recent call last):\n{frames}RecursionError: deep", "ERROR")], max_chars=3000
    )

    assert len(json.dumps(result)) <= 3000
    (trace,) = result["stack_traces"]
    assert "characters left out" in trace["text"]
    assert trace["text"].endswith("RecursionError: deep")
    assert trace["frames"][-1]["file"] == "/app/m399.py"


def test_tracebacks_logged_line_by_line_stay_apart_unless_chained() -> None:
    def crash(error: str) -> list[LogEntry]:
        lines = ["Traceback (most recent call last):", '  File "/app/a.py", line 5, in f', "    g()", error]
        return [entry(text, "ERROR") for text in lines]

    separate = merge_continuations([*crash("KeyError: 'a'"), *crash("KeyError: 'b'")])
    chained = merge_continuations(
        [
            *crash("KeyError: 'a'"),
            entry("During handling of the above exception, another exception occurred:"),
            *crash("RuntimeError: wrapped"),
        ]
    )

    assert len(separate) == 2
    assert len(chained) == 1
    trace = parse_trace(chained[0].message)
    assert trace is not None and trace.exception == "RuntimeError: wrapped"
