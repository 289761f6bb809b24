"""Log compression: templates, ranking by level and novelty, and the token budget, on data shaped
like real logs (stack traces: test_stack_traces.py; secrets: test_redaction.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from log_samples import entry

from services.contracts.tool_results import StackFrame
from services.runtime.demo import DEMO_BUGGY_FILE, DEMO_BUGGY_LINE, demo_log_lines
from services.tools.log_compression import (
    LogEntry,
    compress_logs,
    merge_continuations,
    size_in_tokens,
    template_of,
    top_frame,
)

NOW = datetime(2026, 11, 24, 6, 5, tzinfo=UTC)


def test_the_demo_incident_compresses_to_its_story() -> None:
    entries = [LogEntry.model_validate(line) for line in demo_log_lines(NOW)]

    result = compress_logs(entries, max_tokens=2000)

    assert size_in_tokens(result) <= 2000
    assert result.total_lines == len(entries)
    assert (result.window.first, result.window.last) == (entries[0].timestamp, entries[-1].timestamp)
    assert sum(result.levels.values()) == len(entries)
    top = result.templates[0]
    assert top.level == "ERROR"
    assert top.template == (
        "Unhandled exception in POST /api/v<n>/reservations | TypeError: '<*>' object is not subscriptable"
    )
    assert top.count == result.stack_traces[0].count > 10
    assert top.first_seen <= top.last_seen
    (trace,) = result.stack_traces
    assert trace.exception == "TypeError: 'NoneType' object is not subscriptable"
    assert [(f.file, f.line, f.function) for f in trace.frames] == [
        ("/app/inventory/api.py", 88, "create_reservation"),
        (f"/app/{DEMO_BUGGY_FILE}", DEMO_BUGGY_LINE, "reserve_stock"),
    ]
    assert trace.frames[-1].code == 'available = entry["available"] - entry["reserved"]'
    assert trace.text.startswith("Unhandled exception in POST /api/v1/reservations\nTraceback")
    assert "levels INFO)" in result.omitted  # only routine lines were left out
    assert {t.level for t in result.templates} >= {"ERROR", "WARN"}
    assert top_frame(result.stack_traces) == result.top_frame == trace.frames[-1]


def test_templates_rank_errors_first_then_by_count() -> None:
    entries = [entry(f"GET /items/{i} 200 {i}ms") for i in range(5)]
    entries += [entry("cache miss for key 'a'", "WARN"), entry("cache miss for key 'b'", "WARN")]
    entries += [entry("db down at 10.0.0.7:5432", "ERROR")]

    templates = compress_logs(entries).templates

    assert [(t.level, t.template, t.count) for t in templates] == [
        ("ERROR", "db down at <ip>", 1),
        ("WARN", "cache miss for key '<*>'", 2),
        ("INFO", "GET /items/<n> 200 <n>ms", 5),
    ]
    assert templates[2].example == "GET /items/0 200 0ms"


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
    assert len(compress_logs(entries).templates) == 2


def test_no_secret_leaves_in_any_field() -> None:
    trace = (
        "login failed for ravi@example.com password=hunter2\nTraceback (most recent call last):\n"
        '  File "/app/auth.py", line 3, in login\n    connect("postgres://u:hunter2@db")\n'
        "ValueError: bad password=hunter2 for ravi@example.com"
    )
    result = compress_logs([entry(trace, "ERROR"), entry("hello ravi@example.com")])
    for dumped in (result.model_dump_json(), json.dumps(result.for_model())):  # on the bus, to the model
        assert "hunter2" not in dumped
        assert "ravi@example.com" not in dumped
    assert result.stack_traces[0].frames[0].code == 'connect("postgres://u:[REDACTED]@db")'


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
    assert result.total_lines == 3
    (trace,) = result.stack_traces
    assert trace.exception == "KeyError: 'sku-1'"
    assert trace.frames[-1] == StackFrame(
        file="/app/inventory/api.py", line=12, function="get_x", code="return items[key]", language="python"
    )


def test_same_trace_with_different_values_groups_together() -> None:
    def crash(sku: str) -> LogEntry:
        return entry(
            "Traceback (most recent call last):\n"
            f"  File \"/app/a.py\", line 5, in f\n    x[k]\nKeyError: '{sku}'",
            "ERROR",
        )

    traces = compress_logs([crash("sku-1"), crash("sku-2"), crash("sku-3")]).stack_traces
    assert [(t.exception, t.count) for t in traces] == [("KeyError: 'sku-1'", 3)]


def test_empty_input() -> None:
    assert compress_logs([]).for_model() == {
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

    result = compress_logs(entries, max_tokens=1000)

    assert size_in_tokens(result) <= 1000
    assert result.stack_traces
    kept_errors = [t for t in result.templates if t.level == "ERROR"]
    assert len(kept_errors) == 6
    dropped = 306 - len(result.templates)
    assert result.omitted.startswith(f"Left out to stay under 1000 tokens: {dropped} of 306 templates")


def test_a_huge_trace_is_shortened_not_dropped() -> None:
    frames = "".join(f'  File "/app/m{i}.py", line {i}, in f{i}\n    call_{i}()\n' for i in range(400))
    result = compress_logs(
        [entry(f"Traceback (most recent call last):\n{frames}RecursionError: deep", "ERROR")], max_tokens=800
    )

    assert size_in_tokens(result) <= 800
    (trace,) = result.stack_traces
    assert "characters left out" in trace.text
    assert trace.text.endswith("RecursionError: deep")
    assert trace.frames[-1].file == "/app/m399.py"


def test_novelty_ranks_what_appeared_with_the_alert_first() -> None:
    before, after = "2026-11-24T06:00:00Z", "2026-11-24T06:03:00Z"
    entries = [entry("db pool exhausted, waited 5000ms", "ERROR", ts=before) for _ in range(5)]
    entries += [entry("db pool exhausted, waited 5000ms", "ERROR", ts=after)]
    entries += [entry("payment gateway answered 502", "ERROR", ts=after) for _ in range(2)]
    entries += [entry("GET /healthz 200 1ms", ts=after)]

    alert = datetime(2026, 11, 24, 6, 2, tzinfo=UTC)
    templates = compress_logs(entries, alert_start=alert).templates

    assert [(t.template, t.new, t.count) for t in templates] == [
        ("payment gateway answered <n>", True, 2),  # new since the alert beats the more frequent
        ("db pool exhausted, waited <n>ms", False, 6),
        ("GET /healthz 200 <n>ms", True, 1),
    ]
    unanchored = compress_logs(entries).templates[0]  # no alert start: no novelty claimed
    assert unanchored.new is None and "new" not in unanchored.for_model()


def test_a_new_trace_is_the_top_frame_over_an_older_more_frequent_one() -> None:
    def crash(file: str, ts: str) -> LogEntry:
        text = f'Traceback (most recent call last):\n  File "{file}", line 3, in f\n    g()\nValueError: x'
        return entry(text, "ERROR", ts=ts)

    entries = [crash("/app/old.py", "2026-11-24T05:00:00Z") for _ in range(9)]
    entries += [crash("/app/new.py", "2026-11-24T06:03:00Z")]

    result = compress_logs(entries, alert_start=datetime(2026, 11, 24, 6, 2, tzinfo=UTC))

    assert result.top_frame is not None and result.top_frame.file == "/app/new.py"
    assert [t.new for t in result.stack_traces] == [True, False]


ROUTINE = [f"{verb} /api/v1/{noun}/{{n}} 200 {{n}}ms" for verb in ("GET", "PUT") for noun in "abcdefghij"]
WORDS = ["stock", "payment", "ledger", "quota", "session", "invoice", "cart", "search", "mail", "auth"]
error_messages = st.lists(
    st.tuples(
        st.sampled_from(WORDS), st.sampled_from(WORDS), st.sampled_from(["timeout", "refused", "corrupt"])
    ),
    min_size=1,
    max_size=8,
    unique=True,
).map(lambda parts: [f"{a} call to {b} failed: {why} after {{n}} tries" for a, b, why in parts])


@settings(max_examples=60, deadline=None)
@given(
    errors=error_messages,
    routine=st.lists(st.sampled_from(ROUTINE), max_size=600),
    repeats=st.integers(1, 30),
    max_tokens=st.integers(1500, 4000),  # room for eight error templates: the default is 2000
)
def test_every_distinct_error_template_survives_within_the_budget(
    errors: list[str], routine: list[str], repeats: int, max_tokens: int
) -> None:
    entries = [entry(line.format(n=i)) for i, line in enumerate(routine)]
    entries += [entry(message.format(n=r), "ERROR") for message in errors for r in range(repeats)]

    result = compress_logs(entries, max_tokens=max_tokens)

    assert size_in_tokens(result) <= max_tokens
    kept = {t.template for t in result.templates if t.level == "ERROR"}
    assert kept == {template_of(message.format(n=1)) for message in errors}
    assert (result.omitted is None) == (
        len(result.templates) == len({template_of(r) for r in routine}) + len(errors)
    )


def test_structured_lines_keep_the_words_of_their_message_field() -> None:
    # JSON and logfmt lines of one shape used to be one template (every quoted value masked):
    # two unrelated errors with the same keys must stay two templates.
    disk = (
        '{"level":"error","msg":"thumbnail write failed","error":"ENOSPC: no space left on device","id":"a1"}'
    )
    s3 = (
        '{"level":"error","msg":"upload failed",'
        '"error":"AccessDenied: not authorized to perform: s3:PutObject","id":"b2"}'
    )
    assert template_of(disk) != template_of(s3)
    assert "no space left on device" in template_of(disk)
    assert template_of(disk) == template_of(disk.replace("a1", "c3"))
    # What varies inside the message is still masked; an HTTP status in it is kept.
    assert template_of('level=error msg="accept failed: retrying in 40ms" conn=7') == (
        'level=error msg="accept failed: retrying in <n>ms" conn=<n>'
    )
    assert " 500 " in template_of('level=error msg="GET /api/cart 500 Internal Server Error" dur=3ms')


def test_a_json_status_code_is_kept() -> None:
    ok = '{"msg":"request completed","res":{"statusCode":200},"ms":12}'
    failed = '{"msg":"request completed","res":{"statusCode":500},"ms":12}'
    assert template_of(ok) != template_of(failed)
