"""Log compression for the model: templates with counts, ranked by level and novelty, stack
traces kept whole, secrets redacted, the whole fitted to a token budget (tokens.py).

Pure functions only: entries in, a `LogsResult` (contracts/tool_results.py) out. Log text is
written by strangers, so every string that leaves here has been through `redact` (runtime/redaction.py).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from services.contracts.tool_results import Change, LogsResult, LogTemplate, LogWindow, StackTrace, model_json
from services.runtime.redaction import redact
from services.runtime.text import clip
from services.tools.stack_traces import (
    Trace,
    TraceSignature,
    code_frames,
    continues,
    parse_trace,
    top_frame,
)
from services.tools.times import parse_timestamp
from services.tools.tokens import estimate_tokens

# Caps on single strings, so one huge line cannot eat the whole budget.
MAX_EXAMPLE_CHARS = 300
MAX_TEMPLATE_CHARS = 300
# What a trace is cut down to before it is dropped for lack of room.
MIN_FRAMES = 5
MIN_TRACE_TEXT = 300
DEFAULT_MAX_TOKENS = 2_000
# Room kept for the "omitted" sentence when trimming to the budget.
_OMITTED_RESERVE_TOKENS = 80

# --- log entries -------------------------------------------------------------------------------


class LogEntry(BaseModel):
    """One line of the load balancer's `/logs/tail` (or several, once continuation lines are merged)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    timestamp: str = ""
    level: str = ""
    message: str = ""
    service: str = ""

    @field_validator("*", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> str:
        # Other log sources send epoch numbers or nulls; text keeps every field comparable.
        return "" if value is None else str(value)


_LEVEL_RANKS = {
    "TRACE": 0,
    "DEBUG": 10,
    "INFO": 20,
    "NOTICE": 25,
    "WARN": 30,
    "WARNING": 30,
    "ERR": 40,
    "ERROR": 40,
    "CRITICAL": 50,
    "CRIT": 50,
    "FATAL": 50,
    "PANIC": 50,
    "ALERT": 50,
    "EMERG": 50,
}
ERROR_RANK = _LEVEL_RANKS["ERROR"]
KNOWN_LEVELS = tuple(_LEVEL_RANKS)


def level_rank(level: str) -> int | None:
    """Severity of a level name (None when unknown), so WARN and WARNING compare equal."""
    return _LEVEL_RANKS.get(level.strip().upper())


def _rank_or_info(level: str) -> int:
    rank = level_rank(level)
    return _LEVEL_RANKS["INFO"] if rank is None else rank


# --- templates -------------------------------------------------------------------------------

_MASKS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\b"), "<uuid>"),
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"), "<ts>"),
    (re.compile(r"\b\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\b"), "<ts>"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"\b(?:[0-9a-fA-F]{1,4}:){3,7}[0-9a-fA-F]{1,4}\b"), "<ip>"),
    (re.compile(r"(?<!\w)'[^'\n]*'"), "'<*>'"),
    (re.compile(r'(?<!\w)"[^"\n]*"'), '"<*>"'),
    (
        re.compile(r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"),
        "<hex>",
    ),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
)


# HTTP status codes tell a 500 from a 201 of the same endpoint: they are kept, not masked
# (`GET /x 500`, `HTTP/1.1" 429`, `status=503`, JSON's `"statusCode":500`).
_HTTP_STATUS = re.compile(
    r"(?:\b(?:GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) \S+ |HTTP/\d(?:\.\d)?\"? "
    r"|\b[Ss]tatus(?:_?[Cc]ode)?\"?[=:]\s*\"?)"
    r"(?P<code>[1-5]\d\d)\b"
)
# In structured lines (JSON, logfmt) the statement is the quoted value of its message field:
# masking it whole as a quoted string would make every line of one shape a single template.
_MESSAGE_FIELD = re.compile(
    r"(?:\"(?:msg|message|error|err|event|reason)\"\s*:\s*|\b(?:msg|message|error|err|event|reason)=)"
    r"\"(?P<value>(?:[^\"\\\n]|\\.)*)\""
)
# Inside a message field, quotes are words: every mask but the quoted-string ones.
_INNER_MASKS = tuple((pattern, replacement) for pattern, replacement in _MASKS if "<*>" not in replacement)
_INNER_MASK = re.compile("|".join(f"({pattern.pattern})" for pattern, _ in _INNER_MASKS))
_INNER_REPLACEMENTS = tuple(replacement for _, replacement in _INNER_MASKS)


def template_of(text: str) -> str:
    """Mask what varies between occurrences of the same log statement (but not HTTP status codes,
    nor the words of a structured line's message field)."""
    pieces, start = [], 0
    for match in _MESSAGE_FIELD.finditer(text):
        inner = _keep_status(match["value"], _mask_inner)
        pieces += [_keep_status(text[start : match.start("value")], _mask), inner + '"']
        start = match.end()
    pieces.append(_keep_status(text[start:], _mask))
    return clip("".join(pieces), MAX_TEMPLATE_CHARS)


def _keep_status(text: str, mask: Callable[[str], str]) -> str:
    pieces, start = [], 0
    for match in _HTTP_STATUS.finditer(text):
        pieces += [mask(text[start : match.start("code")]), match["code"]]
        start = match.end("code")
    pieces.append(mask(text[start:]))
    return "".join(pieces)


def _mask_inner(text: str) -> str:
    """A message field's words with what varies in them masked (quotes inside it are words)."""
    return _INNER_MASK.sub(lambda match: _INNER_REPLACEMENTS[(match.lastindex or 1) - 1], text)


# The masks as one alternation, in their order: one scan of the line instead of one per mask.
# Every mask starts with a digit, a hex letter or a quote: the lookahead skips every other
# position without trying the nine alternatives there (a third of the cost per line).
_MASK_START = "(?=[0-9a-fA-F'\"])"
_MASK = re.compile(_MASK_START + "(?:" + "|".join(f"({pattern.pattern})" for pattern, _ in _MASKS) + ")")
_MASK_REPLACEMENTS = tuple(replacement for _, replacement in _MASKS)


def _mask(text: str) -> str:
    return _MASK.sub(lambda match: _MASK_REPLACEMENTS[(match.lastindex or 1) - 1], text)


# --- continuation lines ------------------------------------------------------------------------


def merge_continuations(entries: Iterable[LogEntry]) -> list[LogEntry]:
    """Join continuation lines (trace frames logged one per entry) to the event they belong to.

    Replicas interleave their lines, so a continuation joins the latest event of its own service.
    Idempotent: merged events start with a line that is not a continuation.
    """
    events: list[LogEntry] = []
    latest_of: dict[str, int] = {}
    for entry in entries:
        at = latest_of.get(entry.service)
        if at is not None and continues(events[at].message, entry.message):
            events[at] = events[at].model_copy(update={"message": f"{events[at].message}\n{entry.message}"})
            continue
        latest_of[entry.service] = len(events)
        events.append(entry)
    return events


# --- compression -------------------------------------------------------------------------------


@dataclass
class _Template:
    template: str
    level: str
    first_seen: str
    last_seen: str
    example: str
    count: int = 0
    before: int = 0  # occurrences before the alert's start

    def result(self, window: _Window | None) -> LogTemplate:
        return LogTemplate(
            template=self.template,
            level=self.level,
            count=self.count,
            first_seen=self.first_seen,
            last_seen=self.last_seen,
            example=self.example,
            new=None if window is None else is_new(self.first_seen, window.alert_start),
            before=None if window is None else self.before,
            change=None if window is None else window.change(self.before, self.count, self.first_seen),
        )


@dataclass
class _TraceGroup:
    trace: Trace
    text: str
    first_seen: str
    count: int = 0
    before: int = 0

    def result(self, window: _Window | None) -> StackTrace:
        return StackTrace(
            exception=self.trace.exception,
            count=self.count,
            first_seen=self.first_seen,
            frames=list(self.trace.frames),
            text=self.text,
            new=None if window is None else is_new(self.first_seen, window.alert_start),
            change=None if window is None else window.change(self.before, self.count, self.first_seen),
        )


@dataclass
class _Digest:
    templates: dict[tuple[str, str], _Template] = field(default_factory=dict)
    traces: dict[TraceSignature, _TraceGroup] = field(default_factory=dict)


def is_new(first_seen: str, alert_start: datetime) -> bool:
    """Not seen before the alert started: what changed is where the cause usually is."""
    seen = parse_timestamp(first_seen)
    return seen is not None and seen >= alert_start


# A line first seen this long before the alert's start began with it: an alert fires a `for:`
# duration (and a rate window) after its cause. Only when it was absent for ONSET_QUIET_SECONDS
# of the window before: a line there from the window's start may have been there for hours.
ONSET_GRACE_SECONDS = 120.0
ONSET_QUIET_SECONDS = 60.0
# A rate this many times the one before the alert (and at least MIN_JUMP_COUNT lines) jumped.
JUMP_FACTOR = 3.0
MIN_JUMP_COUNT = 3


def change_of(
    before: int, total: int, first_seen: datetime | None, alert_start: datetime, spans: tuple[float, float]
) -> Change:
    """How a template's rate moved at `alert_start`, from its occurrences before it (`before` of
    `total`) and the seconds of the window before and after it (`spans`)."""
    after = total - before
    lead = (alert_start - first_seen).total_seconds() if first_seen is not None else spans[0]
    onset = lead <= ONSET_GRACE_SECONDS and spans[0] - lead >= ONSET_QUIET_SECONDS
    if before == 0 or onset:
        return "new"
    if after <= 0:
        return "stopped"
    rate_before, rate_after = before / max(spans[0], 1.0), after / max(spans[1], 1.0)
    if after >= MIN_JUMP_COUNT and rate_after >= JUMP_FACTOR * rate_before:
        return "jumped"
    return "steady"


@dataclass(frozen=True)
class _Window:
    """The alert's start and the seconds of lines read before and after it."""

    alert_start: datetime
    spans: tuple[float, float]

    def change(self, before: int, total: int, first_seen: str) -> Change:
        return change_of(before, total, parse_timestamp(first_seen), self.alert_start, self.spans)


def _window(
    events: Sequence[LogEntry], alert_start: datetime | None, span: tuple[datetime, datetime] | None
) -> _Window | None:
    """The seconds read before and after the alert's start: of `span` (what the sources gave,
    every service's lines), else of these events."""
    if alert_start is None:
        return None
    if span is None:
        moments = [m for m in (parse_timestamp(e.timestamp) for e in events) if m is not None]
        if not moments:
            return _Window(alert_start, (0.0, 0.0))
        span = (min(moments), max(moments))
    before = (alert_start - span[0]).total_seconds()
    after = (span[1] - alert_start).total_seconds()
    return _Window(alert_start, (max(before, 0.0), max(after, 0.0)))


def time_span(entries: Iterable[LogEntry]) -> tuple[datetime, datetime] | None:
    """The first and last time of the lines read."""
    moments = [m for m in (parse_timestamp(e.timestamp) for e in entries) if m is not None]
    return (min(moments), max(moments)) if moments else None


def _summary_line(message: str, trace: Trace | None) -> str:
    """What identifies an event: its first line, plus the exception when a trace follows."""
    head = message.split("\n", 1)[0].strip()
    if trace is not None and trace.exception not in head:
        return f"{head} | {trace.exception}" if head else trace.exception
    return head


def _earlier(timestamp: str, alert_start: datetime | None) -> bool:
    moment = parse_timestamp(timestamp) if alert_start is not None else None
    return moment is not None and alert_start is not None and moment < alert_start


# Lines repeat from one fetch_logs call to the next: the evidence phase, then the model's own calls
# over the same window, re-diagnoses, other alerts of the same service. What a line becomes
# (redacted, parsed, templated: ~40 µs) is kept for the next call: at most LINE_CACHE lines of at
# most LINE_CACHE_CHARS characters (~2 MB); longer ones (stack traces) are rarer and done anew.
LINE_CACHE = 4096
LINE_CACHE_CHARS = 400


def _line(message: str) -> tuple[str, Trace | None, str, str]:
    """A raw message's redacted text, its stack trace, summary line and template."""
    return _line_cached(message) if len(message) <= LINE_CACHE_CHARS else _line_uncached(message)


def _line_uncached(message: str) -> tuple[str, Trace | None, str, str]:
    redacted = redact(message)
    trace = parse_trace(redacted)
    summary = _summary_line(redacted, trace)
    return redacted, trace, summary, template_of(summary)


_line_cached = functools.lru_cache(maxsize=LINE_CACHE)(_line_uncached)


def _digest(events: Sequence[LogEntry], alert_start: datetime | None = None) -> _Digest:
    digest = _Digest()
    for event in events:
        message, trace, summary, template = _line(event.message)
        level = event.level.strip().upper()
        key = (level, template)
        earlier = _earlier(event.timestamp, alert_start)
        group = digest.templates.get(key)
        if group is None:
            example = summary if trace is not None else message
            group = digest.templates[key] = _Template(
                key[1], level, event.timestamp, event.timestamp, clip(example, MAX_EXAMPLE_CHARS)
            )
        group.count += 1
        group.before += earlier
        if event.timestamp:
            group.first_seen = min(group.first_seen or event.timestamp, event.timestamp)
            group.last_seen = max(group.last_seen, event.timestamp)
        if trace is not None:
            traced = digest.traces.setdefault(trace.signature, _TraceGroup(trace, message, event.timestamp))
            traced.count += 1
            traced.before += earlier
            if event.timestamp:
                traced.first_seen = min(traced.first_seen or event.timestamp, event.timestamp)
    return digest


def changed(item: LogTemplate | StackTrace) -> bool:
    """New or jumped at the alert's start (or, without one, new)."""
    return item.change in ("new", "jumped") if item.change is not None else bool(item.new)


def _rank_key(item: LogTemplate) -> tuple[int, bool, int, str]:
    """Worst level first; within a level what changed at the alert's start (new, or its rate
    jumped), then the most frequent."""
    return (-_rank_or_info(item.level), not changed(item), -item.count, item.first_seen)


def compress_logs(
    entries: Sequence[LogEntry],
    max_tokens: int = DEFAULT_MAX_TOKENS,
    alert_start: datetime | None = None,
    reserved_tokens: int = 0,
    span: tuple[datetime, datetime] | None = None,
) -> LogsResult:
    """The `fetch_logs` result for `entries` (oldest first), at most `max_tokens` of JSON (as the
    model reads it) once the caller has added what it `reserved_tokens` for (fetch_logs' `query`).

    Continuation lines are merged first, so `total_lines` counts log events (a trace logged line
    by line counts once). Templates are ranked by level, then change (`change`, when `alert_start`
    is given: new or jumped at the alert's start before steady or stopped, measured over `span`,
    the times of all the lines read, when given), then count; stack
    traces changed first, then by count. `top_frame` and `code_frames` are precomputed for the
    diagnoser. When over budget the least important templates and traces are left out and
    `omitted` says so.
    """
    events = merge_continuations(entries)
    digest = _digest(events, alert_start)
    window = _window(events, alert_start, span)
    levels: dict[str, int] = {}
    for event in events:
        name = event.level.strip().upper()
        levels[name] = levels.get(name, 0) + 1
    templates = sorted((t.result(window) for t in digest.templates.values()), key=_rank_key)
    traces = sorted(
        (t.result(window) for t in digest.traces.values()), key=lambda t: (not changed(t), -t.count)
    )
    stamps = [e.timestamp for e in events if e.timestamp]
    result = LogsResult(
        total_lines=len(events),
        window=LogWindow(first=min(stamps, default=None), last=max(stamps, default=None)),
        levels=dict(sorted(levels.items(), key=lambda item: -_rank_or_info(item[0]))),
        # Here and not only as a function: other services read results but may not import this module.
        top_frame=top_frame(traces),
        code_frames=code_frames(traces),
    )
    day = _one_day(result.window.first, result.window.last)
    templates = [t.model_copy(update=_clock_times(t.first_seen, t.last_seen, day)) for t in templates]
    traces = [t.model_copy(update=_clock_times(t.first_seen, None, day)) for t in traces]
    return _fit(result, templates, traces, max_tokens, reserved_tokens)


def _one_day(first: str | None, last: str | None) -> date | None:
    """The UTC day the whole window falls in, if it does."""
    start, end = parse_timestamp(first or ""), parse_timestamp(last or "")
    if start is None or end is None or start.astimezone(UTC).date() != end.astimezone(UTC).date():
        return None
    return start.astimezone(UTC).date()


def _clock_times(first_seen: str, last_seen: str | None, day: date | None) -> dict[str, str]:
    """`first_seen`/`last_seen` as HH:MM:SS (UTC) when the window is one day, which `window`
    states in full: a third of the tokens of a full timestamp, on every template."""
    if day is None:
        return {}
    times = {"first_seen": _clock(first_seen, day)}
    if last_seen is not None:
        times["last_seen"] = _clock(last_seen, day)
    return times


def _clock(stamp: str, day: date) -> str:
    moment = parse_timestamp(stamp)
    if moment is None or moment.astimezone(UTC).date() != day:
        return stamp
    return moment.astimezone(UTC).strftime("%H:%M:%S")


def size_in_tokens(value: Any) -> int:
    """What `value` costs in the model's context, as the JSON it is sent as: a tool result (or a
    part of one) as its `for_model()` rendering."""
    return estimate_tokens(model_json(value, default=_for_model))


def _for_model(value: Any) -> Any:
    if isinstance(value, BaseModel) and hasattr(value, "for_model"):
        return value.for_model()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _fit(
    result: LogsResult,
    templates: list[LogTemplate],
    traces: list[StackTrace],
    max_tokens: int,
    reserved_tokens: int,
) -> LogsResult:
    """Fill `result` in order of importance while it fits: the top trace, error templates, other
    traces, then the rest; the top trace is shortened rather than dropped, and nothing of a rank
    gets in while something of a higher rank was left out.

    Each item is measured once, and the whole as the sum of its parts: joined JSON never costs
    more tokens than its parts apart (pieces only merge at the seams). The top trace gets at most
    half of the room, so that a long trace cannot push out every error template.
    """
    frame = size_in_tokens(result) + reserved_tokens  # the result with empty lists and no note
    is_error = [_rank_or_info(t.level) >= ERROR_RANK for t in templates]
    phases: list[list[tuple[str, int]]] = [
        [("trace", 0)] if traces else [],
        [("template", i) for i, error in enumerate(is_error) if error],
        [("trace", i) for i in range(1, len(traces))],
        [("template", i) for i, error in enumerate(is_error) if not error],
    ]
    items: dict[str, list[LogTemplate] | list[StackTrace]] = {"template": templates, "trace": traces}
    budget = max_tokens - frame - _OMITTED_RESERVE_TOKENS
    kept: list[tuple[str, int, int]] = []  # kind, index, cost
    for phase in phases:
        complete = True
        for kind, index in phase:
            if kind == "trace" and index == 0:
                traces[0] = _shorten_trace(traces[0], budget // 2)  # half: room for the error templates
            cost = size_in_tokens(items[kind][index]) + 1  # the ", " between list items
            if cost <= budget:
                kept.append((kind, index, cost))
                budget -= cost
            else:
                complete = False  # a shorter item of the same rank may still fit
        if not complete:
            break  # nothing of a lower rank while something of this one is left out
    while True:
        chosen = {kind: {i for k, i, _ in kept if k == kind} for kind in items}
        note = _omitted_note(templates, chosen["template"], traces, chosen["trace"], max_tokens)
        if not kept or frame + size_in_tokens(note) + sum(cost for *_, cost in kept) <= max_tokens:
            break
        kept.pop()  # a note longer than its reserve: make room for it
    result.templates = [t for i, t in enumerate(templates) if i in chosen["template"]]
    result.stack_traces = [t for i, t in enumerate(traces) if i in chosen["trace"]]
    result.omitted = note
    return result


def _shorten_trace(trace: StackTrace, budget: int) -> StackTrace:
    """Fit a trace into `budget` tokens: keep its innermost frames, then cut the middle of its
    text (the head says what failed, the end says where)."""
    if size_in_tokens(trace) <= budget:
        return trace
    trace = trace.model_copy(update={"frames": trace.frames[-MIN_FRAMES:]})
    text = trace.text
    keep = len(text)
    while (size := size_in_tokens(trace)) > budget and keep > MIN_TRACE_TEXT:
        # A token is at least one character: cut a quarter more characters than tokens over.
        excess = size - budget
        keep = max(min(keep - excess - excess // 4 - 60, int(keep * 0.9)), MIN_TRACE_TEXT)
        head, tail = text[: keep // 3], text[len(text) - (keep - keep // 3) :]
        cut = len(text) - len(head) - len(tail)
        trace = trace.model_copy(update={"text": f"{head}\n…[{cut} characters left out]…\n{tail}"})
    return trace


def _omitted_note(
    templates: list[LogTemplate],
    kept_templates: set[int],
    traces: list[StackTrace],
    kept_traces: set[int],
    max_tokens: int,
) -> str | None:
    dropped = [t for i, t in enumerate(templates) if i not in kept_templates]
    dropped_traces = len(traces) - len(kept_traces)
    parts = []
    if dropped:
        lines = sum(t.count for t in dropped)
        levels = sorted({t.level for t in dropped}, key=lambda name: -_rank_or_info(name))
        parts.append(
            f"{len(dropped)} of {len(templates)} templates ({lines} lines, levels {', '.join(levels)})"
        )
    if dropped_traces:
        parts.append(f"{dropped_traces} of {len(traces)} stack traces")
    if not parts:
        return None
    return (
        f"Left out to stay under {max_tokens} tokens: {' and '.join(parts)} "
        "(errors, new and frequent lines were kept first; ask with level=ERROR or a narrower service)."
    )
