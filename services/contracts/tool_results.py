"""Typed results of the read-only tools: what the tools service answers and the diagnoser reads.

A result is data: the diagnoser reads its fields by name, never by string key, and never parses
rendered text back (a code window carries its lines as numbers and text). `for_model()` renders
the compact JSON the model reads; the tools service measures that rendering against its token
budget, so what the model gets is what was measured. The bus carries the whole model, some of
it the model is not shown (each frame's language, the code window's target line as text).

Each result names its tool in `tool`, the discriminator of `ToolData`; `ToolResult.data`
(models.py) holds one of them.
"""

import json
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field


def model_json(value: Any, default: Callable[[Any], Any] = str) -> str:
    """JSON as the model reads it, and as its size is measured: compact (whitespace is tokens)."""
    return json.dumps(value, default=default, ensure_ascii=False, separators=(",", ":"))


# --- fetch_logs ------------------------------------------------------------------------------

Language = Literal["python", "java", "node", "go", "dotnet", "rust", "php", "ruby"]
# How a template's (or a trace's) rate moved at the alert's start: first seen then (or just
# before), several times its earlier rate, about the same as before, or seen only before it.
Change = Literal["new", "jumped", "steady", "stopped"]


class StackFrame(BaseModel):
    """One frame of a stack trace."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    file: str = Field(description="As the trace printed it (a container path, or a Java source file)")
    line: int | None
    function: str
    code: str | None = Field(default=None, description="The source line the trace printed (Python)")
    language: Language
    source_path: str | None = Field(
        default=None,
        description="Where the package or namespace puts the file (`com/shop/Cart.java` for "
        "`com.shop.Cart.total` in `Cart.java`), when the trace printed no directory",
    )

    @property
    def lookup_path(self) -> str:
        """What to look the file up by in the repository: the package's path when the trace gave
        only a file name (or no file), else the file as printed."""
        return self.source_path or self.file

    def for_model(self) -> dict[str, Any]:
        view: dict[str, Any] = {"file": self.file, "line": self.line, "function": self.function}
        view["code"] = self.code
        if self.source_path is not None:
            view["source_path"] = self.source_path
        return view


class LogTemplate(BaseModel):
    """Log events of one level whose message is the same once what varies is masked."""

    model_config = ConfigDict(extra="ignore")

    template: str = Field(description="The message with what varies masked: <n>, <uuid>, <ip>, ...")
    level: str
    count: int
    first_seen: str = Field(description="HH:MM:SS (UTC) when the window is one day, else as logged")
    last_seen: str
    example: str = Field(description="One occurrence, redacted (its first line when a trace follows)")
    new: bool | None = Field(default=None, description="First seen at or after the alert's start")
    before: int | None = Field(default=None, description="Occurrences before the alert's start")
    change: Change | None = Field(default=None, description="How its rate moved at the alert's start")
    service: str | None = Field(default=None, description="Whose lines these are (neighbours only)")

    def for_model(self) -> dict[str, Any]:
        view: dict[str, Any] = {
            "template": self.template,
            "level": self.level,
            "count": self.count,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "example": self.example,
        }
        if self.service is not None:
            view = {"service": self.service, **view}
        if self.new is not None:
            view["new"] = self.new
        if self.change is not None:
            view["change"] = self.change
        return view


class StackTrace(BaseModel):
    """Occurrences of one stack trace (same exception type and frames)."""

    model_config = ConfigDict(extra="ignore")

    exception: str
    count: int
    first_seen: str
    frames: list[StackFrame] = Field(description="Innermost LAST, whatever the language")
    text: str = Field(description="The whole event, redacted; cut in the middle when too long")
    new: bool | None = Field(default=None, description="First seen at or after the alert's start")
    change: Change | None = Field(default=None, description="How its rate moved at the alert's start")

    def for_model(self) -> dict[str, Any]:
        view: dict[str, Any] = {
            "exception": self.exception,
            "count": self.count,
            "first_seen": self.first_seen,
            "frames": [frame.for_model() for frame in self.frames],
            "text": self.text,
        }
        if self.new is not None:
            view["new"] = self.new
        if self.change is not None:
            view["change"] = self.change
        return view


class LogWindow(BaseModel):
    """The first and last timestamps of the lines read."""

    first: str | None = None
    last: str | None = None


class TimeRange(BaseModel):
    start: str
    end: str


class LogsQuery(BaseModel):
    """What fetch_logs asked its sources and scanned."""

    model_config = ConfigDict(extra="ignore")

    service: str | None = None
    level: str | None = None
    seconds: int
    lines_scanned: int
    sources: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per source (lb, loki) what it was asked and the lines it gave; `failed`: "
        "the sources that failed, with why",
    )
    window: TimeRange | None = Field(default=None, description="Around the alert's start, when given")
    note: str | None = None
    services_seen: list[str] | None = Field(
        default=None, description="Set when the service filter matched nothing: the services there were"
    )

    def for_model(self) -> dict[str, Any]:
        view: dict[str, Any] = {
            "service": self.service,
            "level": self.level,
            "seconds": self.seconds,
            "lines_scanned": self.lines_scanned,
            "sources": self.sources,
        }
        if self.window is not None:
            view["window"] = self.window.model_dump()
        if self.note is not None:
            view["note"] = self.note
        if self.services_seen is not None:
            view["services_seen"] = self.services_seen
        return view


class LogsResult(BaseModel):
    """fetch_logs: the lines compressed into templates and stack traces, fitted to the token budget."""

    model_config = ConfigDict(extra="ignore")

    tool: Literal["fetch_logs"] = "fetch_logs"
    total_lines: int = Field(default=0, description="Log events (a trace logged line by line counts once)")
    window: LogWindow = Field(default_factory=LogWindow)
    levels: dict[str, int] = Field(default_factory=dict, description="Events per level, worst first")
    templates: list[LogTemplate] = Field(
        default_factory=list, description="Worst level first; then new since the alert; then most frequent"
    )
    stack_traces: list[StackTrace] = Field(default_factory=list, description="New first, then most frequent")
    omitted: str | None = Field(default=None, description="What was left out to fit the budget, if anything")
    top_frame: StackFrame | None = Field(
        default=None,
        description="The innermost application frame (with a file) of the first stack trace that has one",
    )
    code_frames: list[StackFrame] = Field(
        default_factory=list,
        description="The application frames of that trace, innermost first (top_frame, then its "
        "callers): the next to look up when a file is not in the repository",
    )
    neighbours: list[LogTemplate] = Field(
        default_factory=list,
        description="Warnings and errors of other services that name this one (its callers' view) "
        "or that this one names (its dependencies' own view)",
    )
    query: LogsQuery | None = None

    def for_model(self) -> dict[str, Any]:
        view: dict[str, Any] = {
            "total_lines": self.total_lines,
            "window": self.window.model_dump(),
            "levels": self.levels,
            "templates": [template.for_model() for template in self.templates],
            "stack_traces": [trace.for_model() for trace in self.stack_traces],
            "omitted": self.omitted,
            "top_frame": self.top_frame.for_model() if self.top_frame is not None else None,
        }
        if self.neighbours:
            view["neighbours"] = [template.for_model() for template in self.neighbours]
        if self.query is not None:
            view["query"] = self.query.for_model()
        return view


# --- compute_error_rate ---------------------------------------------------------------------


class ErrorRateTrend(BaseModel):
    start: str
    step_seconds: float
    error_rate_percent: list[float | None] = Field(description="One per step; None: no traffic then")


class ErrorRateResult(BaseModel):
    """compute_error_rate: errors / requests per second now, and whether to trust the figure."""

    model_config = ConfigDict(extra="ignore")

    tool: Literal["compute_error_rate"] = "compute_error_rate"
    service: str | None = None
    errors_per_second: float | None = None
    requests_per_second: float | None = None
    error_rate: float | None = Field(default=None, description="errors / requests; None: no traffic")
    error_rate_percent: float | None = None
    # int | float: a whole number of seconds stays `60` in the JSON, not `60.0`.
    window_seconds: int | float | None = Field(default=None, description="The rate window of the queries")
    young: bool | None = Field(
        default=None, description="A series is younger than the rate window (rates underestimated)"
    )
    series_age_seconds: float | None = None
    trend: ErrorRateTrend | None = None
    queries: list[str] = Field(default_factory=list, description="The errors and requests queries")
    note: str | None = None

    def for_model(self) -> dict[str, Any]:
        """The rate once, as a percentage with its sign: given the ratio 0.123 beside 12.3, the
        1.5B answered "0.123% now" (wrong a hundredfold)."""
        data = self.model_dump(exclude={"tool", "error_rate", "error_rate_percent"}, exclude_none=True)
        if self.error_rate is None:
            return data
        return {"error_rate": f"{self.error_rate * 100:.3g}%", **data}


# --- fetch_code_from_github -------------------------------------------------------------------


class CodeWindow(BaseModel):
    """fetch_code_from_github: numbered lines of a file around a target line, redacted."""

    model_config = ConfigDict(extra="ignore")

    tool: Literal["fetch_code_from_github"] = "fetch_code_from_github"
    path: str = Field(description="Where the file was found in the repository (or CODE_DIR)")
    ref: str = Field(description='The git ref read, "local" for CODE_DIR')
    line: int | None = Field(default=None, description="The target line asked for")
    total_lines: int
    lines: list[tuple[int, str]] = Field(description="(number, text) of each line of the window")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def line_text(self) -> str | None:
        """The text of the target line, when it is in the window."""
        return next((text for number, text in self.lines if number == self.line), None)

    @property
    def start_line(self) -> int:
        return self.lines[0][0] if self.lines else 1

    @property
    def end_line(self) -> int:
        return self.lines[-1][0] if self.lines else 0

    @staticmethod
    def numbered(number: int, text: str, width: int, target: bool) -> str:
        """`> 47 | text` for the target line, `  48 | text` for the others."""
        return f"{'>' if target else ' '} {number:>{width}} | {text}\n"

    def numbered_text(self) -> str:
        """The window as the model reads it: numbered lines, the target marked with `>`."""
        width = len(str(self.end_line))
        return "".join(self.numbered(n, text, width, n == self.line) for n, text in self.lines)

    def for_model(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "ref": self.ref,
            "start_line": self.start_line,
            "end_line": self.end_line,
            "total_lines": self.total_lines,
            "code": self.numbered_text(),
            "line": self.line,
        }


# --- recent_commits ---------------------------------------------------------------------------


class CommitSummary(BaseModel):
    """Who changed it, when, and why."""

    model_config = ConfigDict(extra="ignore")

    sha: str = Field(description="The first 12 hex digits")
    author: str
    date: str | None = Field(default=None, description="ISO 8601, as the source gave it")
    title: str = Field(description="The subject line of the message, clipped and redacted")
    url: str | None = None

    def for_model(self) -> dict[str, Any]:
        return self.model_dump()


class CommitsResult(BaseModel):
    """recent_commits: commits touching a path, newest first."""

    model_config = ConfigDict(extra="ignore")

    tool: Literal["recent_commits"] = "recent_commits"
    path: str | None = Field(default=None, description="The path whose history this is; None: everything")
    since: str
    until: str | None = None
    source: str = Field(description="Where the history was read (a repository, or git log in CODE_DIR)")
    commits: list[CommitSummary] = Field(default_factory=list)
    more: bool = Field(default=False, description="There were more than the ones given")
    paths_tried: list[str] | None = Field(
        default=None, description="Set when no candidate path of a stack-frame path had commits"
    )

    def for_model(self) -> dict[str, Any]:
        view: dict[str, Any] = {
            "path": self.path,
            "since": self.since,
            "until": self.until,
            "source": self.source,
            "commits": [commit.for_model() for commit in self.commits],
            "more": self.more,
        }
        if self.paths_tried is not None:
            view["paths_tried"] = self.paths_tried
        return view


# --- query_prometheus -------------------------------------------------------------------------

# Four significant digits, "+Inf"/"-Inf" spelt out, None for NaN or a gap; a string query's text.
SampleValue = float | str | None
# Prometheus' own timestamp: whole seconds stay whole in the JSON.
Timestamp = int | float


class RangeSeries(BaseModel):
    """A series of a range query: one value per step of the grid."""

    metric: dict[str, str] = Field(default_factory=dict)
    values: list[SampleValue]


class InstantSample(BaseModel):
    """A sample of an instant vector."""

    metric: dict[str, str] = Field(default_factory=dict)
    value: SampleValue


class InstantSeries(BaseModel):
    """A range selector queried at an instant: its newest samples, as [timestamp, value]."""

    metric: dict[str, str] = Field(default_factory=dict)
    samples: list[tuple[Timestamp, SampleValue]]


PrometheusSeries = RangeSeries | InstantSample | InstantSeries


class PrometheusResult(BaseModel):
    """query_prometheus: an instant or range query, its series ranked and capped."""

    model_config = ConfigDict(extra="ignore")

    tool: Literal["query_prometheus"] = "query_prometheus"
    query: str
    result_type: str | None = Field(default=None, description="matrix, vector, scalar or string")
    # A range query: its grid.
    start: str | None = None
    end: str | None = None
    step_seconds: int | None = None
    # An instant query: when it was evaluated, and the answer of a scalar or string query.
    at: str | None = None
    value: SampleValue = None
    series_total: int | None = None
    series: list[PrometheusSeries] = Field(default_factory=list, description="Highest peaks first")
    omitted: str | None = None
    warnings: list[str] = Field(default_factory=list)

    @property
    def is_range(self) -> bool:
        return self.step_seconds is not None

    @property
    def is_single_value(self) -> bool:
        """A scalar or string answer: a value, no series."""
        return not self.is_range and self.result_type in ("scalar", "string")

    def for_model(self) -> dict[str, Any]:
        view: dict[str, Any] = {"query": self.query, "result_type": self.result_type}
        if self.is_range:
            view |= {"start": self.start, "end": self.end, "step_seconds": self.step_seconds}
        else:
            view["at"] = self.at
        if self.is_single_value:
            view["value"] = self.value
        if self.warnings:
            view["warnings"] = self.warnings
        if not self.is_single_value:
            series = [s.model_dump() for s in self.series]
            view |= {"series_total": self.series_total, "series": series, "omitted": self.omitted}
        return view


# --- the union --------------------------------------------------------------------------------

ToolOutput = LogsResult | ErrorRateResult | CodeWindow | CommitsResult | PrometheusResult
ToolData = Annotated[ToolOutput, Field(discriminator="tool")]
