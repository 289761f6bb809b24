"""Evidence ranked as a senior engineer reads it: what changed when the alert started, and what
can cause a failure, before what is only its symptom or was there all along.

Pure functions of typed evidence (`LogsResult`, the alert group): every log template of warning
level or worse becomes a `Candidate` with the `Signal` its text gives (an out-of-memory kill, a
configuration error at start-up, an exception, a dependency timing out or refusing connections,
a slow statement, a saturated pool, a crash, or a plain HTTP 5xx line: a symptom), and the
candidates are ranked for the kind of alert (`AlertKind`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from services.contracts.models import AlertGroup
from services.contracts.tool_results import Change, LogsResult, LogTemplate, StackTrace

AlertKind = Literal["errors", "latency", "restarts", "down"]
SignalKind = Literal[
    "oom", "config", "resource", "dependency", "exception", "probe", "slow", "pool", "memory",
    "crash", "readiness", "other", "symptom",
]  # fmt: skip

# How much a line of each kind explains a failure (a symptom explains nothing).
STRENGTH: dict[SignalKind, int] = {
    "oom": 9,
    "config": 8,
    "resource": 8,
    "dependency": 7,
    "exception": 7,
    "probe": 6,
    "slow": 6,
    "pool": 6,
    "memory": 5,
    "crash": 3,
    "readiness": 2,
    "other": 2,
    "symptom": 1,
}
# A dependency failure that names no dependency explains less.
UNNAMED_DEPENDENCY_STRENGTH = 5
# What a cause must explain at least: a crash (restarts) or an unexplained error line.
CAUSE_STRENGTH = 2
STRONG = 7

_LEVELS = {"WARN": 30, "WARNING": 30, "ERR": 40, "ERROR": 40, "SEVERE": 40}
_WORST = 50  # CRITICAL, FATAL, PANIC, ALERT, EMERG


def level_rank(level: str) -> int:
    name = level.strip().upper()
    if name in ("CRITICAL", "CRIT", "FATAL", "PANIC", "ALERT", "EMERG"):
        return _WORST
    return _LEVELS.get(name, 20)


WARN_RANK = 30
ERROR_RANK = 40

# --- the kind of alert ---------------------------------------------------------------------------

# Consumer lag and backlogs are latency too: work waits, nothing fails.
_LATENCY_ALERT = re.compile(
    r"latency|duration|p9\d|slow|response.?time|_seconds_bucket|apdex"
    r"|consumer.?(?:group.?)?lag|_lag\b|\blag\b|backlog",
    re.I,
)
_RESTART_ALERT = re.compile(
    r"restart|crash.?loop|oom|kube_pod_container_status|terminated|back.?off|exit.?code", re.I
)
_DOWN_ALERT = re.compile(r"target.?down|instance.?down|\bup\{|\bup ?==|absent\(|no.?data|heartbeat", re.I)


_THRESHOLD = re.compile(
    r"\s*(?:>=|<=|==|!=|>|<)\s*(?:bool\s+)?[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?\s*$", re.I
)


def alert_expression(group: AlertGroup) -> str | None:
    """The PromQL expression of the alert's rule, from its generatorURL (`g0.expr`)."""
    for alert in group.alerts:
        query = parse_qs(urlsplit(alert.generator_url).query)
        expression = (query.get("g0.expr") or [""])[0].strip()
        if expression:
            return expression
    return None


def measured(expression: str) -> str | None:
    """What the alert's expression measures, its threshold dropped (`... > 0.5` -> `...`)."""
    value = _THRESHOLD.sub("", expression).strip()
    return value if value and value != expression.strip() else None


def alert_text(group: AlertGroup) -> str:
    """The alert's name, annotations and expression: what says what kind of alert it is."""
    return " ".join([group.alertname, *group.common_annotations.values(), alert_expression(group) or ""])


# An alert on an accumulated quantity (consumer lag, a backlog, a queue's depth) fires minutes
# after what causes it began: the lag must first grow past the threshold.
_ACCUMULATING_ALERT = re.compile(
    r"consumer.?(?:group.?)?lag|_lag\b|\blag\b|backlog|queue.?(?:depth|size|length)|messages.?behind", re.I
)


def accumulates(group: AlertGroup) -> bool:
    return _ACCUMULATING_ALERT.search(alert_text(group)) is not None


def alert_kind(group: AlertGroup) -> AlertKind:
    """Restarts (or crash loops), latency, a target that is down, or errors (the rest)."""
    text = alert_text(group)
    if _RESTART_ALERT.search(text):
        return "restarts"
    errors_named = re.search(r"error|5xx|fail", group.alertname, re.I) is not None
    if _LATENCY_ALERT.search(group.alertname) or (_LATENCY_ALERT.search(text) and not errors_named):
        return "latency"
    if _DOWN_ALERT.search(text):
        return "down"
    return "errors"


# --- what a line says ----------------------------------------------------------------------------


def _any(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.I)


_OOM = _any(
    r"OutOfMemory",
    r"OOM.?Kill",
    r"out of memory",
    r"exit.?code[=: ]*137\b",
    r"heap (?:out of memory|limit)",
    r"Cannot allocate memory",
    r"\bMemoryError\b",
    r"memory limit exceeded",
)
_CONFIG = _any(
    r"(?:environment variable|env var|config(?:uration)?|settings?|propert(?:y|ies)|secrets?)\b[^\n]{0,80}?"
    r"\b(?:not set|is missing|missing|is required|invalid|undefined|is empty|not a valid)",
    r"refusing to start",
    r"APPLICATION FAILED TO START",
    r"(?:cannot|could not|failed to|unable to) (?:load|parse|read) (?:the )?config",
    r"Failed to bind properties",
    r"\byaml: line \d+",
    r"missing required (?:setting|option|argument|env)",
)
# What a resource failure is about: two lines of different kinds are two stories.
_RESOURCE_KINDS = {
    "disk": _any(r"No space left on device", r"\bENOSPC\b", r"disk (?:is )?full", r"quota exceeded"),
    "access": _any(
        r"AccessDenied",
        r"Access Denied",
        r"Permission denied",
        r"\bEACCES\b",
        r"\b403 Forbidden\b",
        r"not authorized to perform",
    ),
    # The process's own file descriptors: the dial that fails with it names a host that is fine.
    "descriptors": _any(r"too many open files", r"\bEMFILE\b", r"\bENFILE\b"),
    # The process's own worker pool: a worker "timeout" is not a dependency timing out.
    "workers": _any(
        r"RejectedExecution",
        r"TaskRejected",
        r"\bWORKER TIMEOUT\b",
        r"All threads \(\d+\) are currently busy",
        r"thread pool (?:is )?(?:full|exhausted)",
        r"listen queue[^\n]{0,40}full",
    ),
}
_RESOURCE = _any(*(pattern.pattern for pattern in _RESOURCE_KINDS.values()))


def resource_kind(text: str) -> str:
    return next((name for name, pattern in _RESOURCE_KINDS.items() if pattern.search(text)), "resource")


_LIVENESS = _any(r"liveness probe", r"Liveness probe failed")
_READINESS = _any(r"readiness probe", r"startup probe")
_SLOW = _any(
    r"\bslow (?:query|statement|sql|request|call|response|upstream)",
    r"Executed DbCommand \(\d[\d,]*\s?ms\)",
    r"\bquery took \d{4,}\s?ms",
    r"\bSeq Scan\b",
)
_POOL = _any(
    r"\bpool\b[^\n]{0,60}?(?:saturated|exhausted|at max|is full|\d+/\d+|idle=0|waiting)",
    r"all \d+ (?:clients|connections) (?:are )?busy",
    r"waiting for (?:a )?(?:free )?connection",
    r"could not acquire (?:a )?connection",
    r"connection pool",
)
_DEPENDENCY = _any(
    r"timed? ?out",
    r"timeout",
    r"deadline exceeded",
    r"refused",
    r"ECONNREFUSED",
    r"ECONNRESET",
    r"connection reset",
    r"reset by peer",
    r"\bUNAVAILABLE\b",
    r"ENOTFOUND",
    r"EAI_AGAIN",
    r"getaddrinfo",
    r"no such host",
    r"Name or service not known",
    r"could not resolve",
    r"Temporary failure in name resolution",
    r"\b429\b",
    r"Too Many Requests",
    r"rate.?limit",
    r"\b5\d\d\b[^\n]{0,20}\bfrom\b",
    r"broken pipe",
    r"\bx509\b",
    r"certificate",
    r"TLS handshake",
    r"unreachable",
)
_EXCEPTION = _any(
    r"\b[A-Z]\w*(?:Error|Exception|Fault)\b",
    r"\bpanic:",
    r"\bfatal error:",
    r"Traceback \(most recent call last\)",
    r"(?:^|\s)Error: ",
    r"\bassertion failed\b",
    r"\bsegmentation fault\b",
)
_MEMORY = _any(
    r"memory usage", r"heap (?:usage|in use|used)", r"approaching (?:the )?(?:memory )?limit", r"GC overhead"
)
# A garbage-collection pause this long stalls every request: a latency cause, even though GC
# logs (JVM unified logging, GODEBUG=gctrace) are written at INFO.
LONG_GC_PAUSE_MS = 500.0
_GC = re.compile(r"\bGC\b|\[gc\b|garbage.?collect|stop-the-world", re.I)
_MILLISECONDS = re.compile(r"(\d+(?:\.\d+)?)\s?ms\b")


def long_gc_pause(text: str) -> bool:
    """A GC line that says the application stopped for LONG_GC_PAUSE_MS or more."""
    return _GC.search(text) is not None and any(
        float(value) >= LONG_GC_PAUSE_MS for value in _MILLISECONDS.findall(text)
    )


# An access log (envoy, nginx) logs every request at INFO, failures too: a 429 or 5xx answered
# by a named upstream is a dependency's failure whatever the line's level. Only with an upstream
# field: the service's own access line names at most its client's referrer, and a 429 there is
# the service limiting its clients.
_ACCESS_FAILURE = re.compile(r"HTTP/\d(?:\.\d)?\"? (?:429|5\d\d)\b")
_UPSTREAM_FIELD = re.compile(
    r"\bupstream(?:_addr|_host)?\b|\"[a-z][\w.-]*\"\s+\"(?:\d{1,3}\.){3}\d{1,3}:\d{2,5}\"", re.I
)


def telling_below_warn(text: str, own: str | None) -> bool:
    """An INFO line that is evidence all the same: a long GC pause, or an access log line with
    an upstream's failure status."""
    if long_gc_pause(text):
        return True
    return (
        _ACCESS_FAILURE.search(text) is not None
        and _UPSTREAM_FIELD.search(text) is not None
        and dependency_in(text, own) is not None
    )


# Exception names that only say "an HTTP error" (`"err":{"type":"HttpError"}` in a JSON line):
# the symptom's name, not a cause.
_HTTP_ERROR_NAME = re.compile(
    r"\b\w*HTTP\w*(?:Error|Exception)\b|\b(?:InternalServer|ServiceUnavailable|BadGateway|GatewayTimeout)"
    r"(?:Error|Exception)\b",
    re.I,
)
_CRASH = _any(
    r"exited with (?:code|status)",
    r"exit (?:code|status)[=: ]*[1-9]",
    r"failed to boot",
    r"Back-off restarting",
    r"CrashLoopBackOff",
    r"\bSIGTERM\b",
    r"\bSIGKILL\b",
    r"shutting down",
    r"\bterminated\b",
    r"\bkilled\b",
)
_SYMPTOM = _any(
    r"\b(?:GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)\b[^\n]{0,200}?\b5\d\d\b",
    r"\bHTTP(?:/\d(?:\.\d)?)? 5\d\d\b",
    r"Internal Server Error",
    r"Service Unavailable",
    r"Bad Gateway",
    r"Gateway Timeout",
    r"status(?:_?code)?[\"=: ]+5\d\d\b",
    r"\brequest failed\b",
)


# Checked in this order: the first that matches is what the line says.
_TELLING: tuple[tuple[SignalKind, re.Pattern[str]], ...] = (
    ("oom", _OOM),
    ("config", _CONFIG),
    ("resource", _RESOURCE),
    ("probe", _LIVENESS),
    ("readiness", _READINESS),
    ("slow", _SLOW),
    ("pool", _POOL),
)
_WEAK: tuple[tuple[SignalKind, re.Pattern[str]], ...] = (
    ("memory", _MEMORY),
    ("crash", _CRASH),
    ("symptom", _SYMPTOM),
)


@dataclass(frozen=True)
class Signal:
    kind: SignalKind
    strength: int
    dependency: str | None = None


# A line's kind is read by a dozen patterns; every diagnosis ranks its lines several times (the
# rules, the memory's signature, the model's evidence) and the next incident mostly the same lines.
@lru_cache(maxsize=16_384)
def signal_of(text: str, has_trace: bool = False, own: str | None = None) -> Signal:
    """What kind of evidence a log line is, and how much it explains (`STRENGTH`): checked from
    the most telling kind down, so that a 500 line that says why it failed is not a symptom."""
    dependency = dependency_in(text, own)
    for kind, pattern in _TELLING:
        if pattern.search(text):
            return Signal(kind, STRENGTH[kind], dependency)
    if _DEPENDENCY.search(text) and (dependency is not None or not has_trace):
        strength = STRENGTH["dependency"] if dependency else UNNAMED_DEPENDENCY_STRENGTH
        return Signal("dependency", strength, dependency)
    if not has_trace and dependency is None and http_symptom(text):
        return Signal("symptom", STRENGTH["symptom"], dependency)
    if long_gc_pause(text):
        return Signal("memory", STRENGTH["memory"], dependency)
    if has_trace or _EXCEPTION.search(text):
        return Signal("exception", STRENGTH["exception"], dependency)
    for kind, pattern in _WEAK:
        if pattern.search(text):
            return Signal(kind, STRENGTH[kind], dependency)
    return Signal("other", STRENGTH["other"], dependency)


def http_symptom(text: str) -> bool:
    """An HTTP 5xx line whose only exception-like word is the name of an HTTP error."""
    return _SYMPTOM.search(text) is not None and not _EXCEPTION.search(_HTTP_ERROR_NAME.sub("", text))


# --- which dependency a line names ---------------------------------------------------------------

_NAME = r"[A-Za-z][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*"
# A name in running text is taken for a host only when it looks like one: dashed
# (`cdn-origin`), or dotted with a DNS-like last part (`orders-db.prod.internal`).
_DNS_TAIL = r"(?:internal|local|svc|cluster|com|net|org|io|cloud|example|lan|corp|prod)"
_DOTTED_OR_DASHED = (
    rf"[a-z][a-z0-9]*(?:-[a-z0-9]+)+(?:\.[a-z0-9-]+)*|[a-z][a-z0-9-]*(?:\.[a-z0-9-]+)*\.{_DNS_TAIL}"
)
_KEYS = "store|upstream|dependency|backend|server|target|peer|broker|db|database"
_WORDS = "upstream|calling|call to|against|from|to|reach|connect to"
_HOST_PATTERNS = (
    re.compile(rf"\b[a-z][a-z0-9+.-]*://(?:[^@/\s]+@)?(?P<host>{_NAME})", re.I),  # a URL's host
    re.compile(rf"\bhost(?:name)?=['\"]?(?P<host>{_NAME})", re.I),
    re.compile(rf"\b(?:ENOTFOUND|EAI_AGAIN|lookup|resolve|no such host:?)\s+(?P<host>{_NAME})", re.I),
    re.compile(rf"\((?P<host>{_NAME}):\d{{2,5}}\)"),
    re.compile(rf"\b(?:{_KEYS})=['\"]?(?P<host>{_NAME})", re.I),
    re.compile(rf"\b(?:{_WORDS})\s+(?P<host>{_DOTTED_OR_DASHED})\b"),
    re.compile(rf"(?<![\w./-])(?P<host>{_NAME}):\d{{2,5}}\b"),  # name:port
    re.compile(rf"\b(?P<host>{_DOTTED_OR_DASHED}|[a-z][a-z0-9]+) (?:answered|returned|responded|replied)\b"),
    # an access log's authority then upstream address: envoy's `"api.x.example" "10.8.1.4:443"`
    re.compile(rf"\"(?P<host>{_DOTTED_OR_DASHED})\"\s+\"(?:\d{{1,3}}\.){{3}}\d{{1,3}}:\d{{2,5}}\""),
)  # fmt: skip
_IP = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
_NOT_HOSTS = re.compile(
    r"\.(?:py|js|mjs|ts|java|kt|go|cs|rb|php|json|ya?ml|xml|html?|sql|log|txt|csv)$|^(?:https?|tcp|udp|dial|"
    r"read|write|line|file|level|msg|err|error|the|a|an|pid|tid|port|code|id)$",
    re.I,
)


def dependency_in(text: str, own: str | None = None) -> str | None:
    """The first host or service a line names (a URL's host, `host=`, `name:port`, `(name:port)`,
    `upstream name`, `store=name`, `ENOTFOUND name`), as written; not an IP address, a file name,
    or the service itself."""
    found: list[tuple[int, str]] = []
    for pattern in _HOST_PATTERNS:
        for match in pattern.finditer(text):
            host = match["host"].rstrip(".-")
            if _IP.match(host) or _NOT_HOSTS.search(host) or is_own(host, own):
                continue
            found.append((match.start("host"), host))
            break
    return min(found)[1] if found else None


def is_own(host: str, own: str | None) -> bool:
    """`checkout`, `checkout-2` or `checkout.prod.svc` are the service `checkout` itself."""
    if not own:
        return False
    first = host.split(".", 1)[0].lower()
    return first == own.lower() or re.fullmatch(rf"{re.escape(own.lower())}-\d+", first) is not None


def same_service(host: str, service: str) -> bool:
    """Whether a named host is the service `service` (`payments-gateway.internal`, `redis:6379`)."""
    return host.split(".", 1)[0].split(":", 1)[0].lower() == service.lower()


# --- candidates ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A log template of warning level or worse, read as a possible cause."""

    template: LogTemplate
    signal: Signal
    trace: StackTrace | None = None
    service: str | None = None  # a neighbour's; None: the alerting service's own lines

    @property
    def text(self) -> str:
        """What to quote, on one line: its trace's exception, else the line itself."""
        if self.trace is not None and self.trace.exception.strip():
            return one_line(self.trace.exception)
        return one_line(self.template.example)

    @property
    def count(self) -> int:
        return self.template.count

    @property
    def change(self) -> Change | None:
        return self.template.change

    @property
    def changed(self) -> bool:
        """New or jumped at the alert's start (unknown counts as changed: nothing says otherwise)."""
        change = self.template.change if self.trace is None else (self.trace.change or self.template.change)
        return change in ("new", "jumped", None)

    @property
    def strength(self) -> int:
        return self.signal.strength

    @property
    def subject(self) -> str:
        """What it is about: the dependency it names, or its exception's type, or its kind (for a
        resource, which one: a full disk and a denied access are two stories)."""
        if self.signal.kind == "resource":
            return f"resource:{resource_kind(self.text)}"
        if self.signal.dependency:
            return self.signal.dependency.lower()
        if self.trace is not None and self.signal.kind == "exception":
            return self.trace.exception.split(":", 1)[0].strip()
        return self.signal.kind


# Kinds that tell one story: memory filling up and the kill; a bad setting and the exits.
_FAMILIES = ({"oom", "memory"}, {"config", "crash"}, {"probe", "readiness"}, {"pool", "slow"})
_GENERIC_LABELS = {"api", "www", "svc", "cluster", "local", "internal", "prod", "example", "com", "net", "io"}


def host_labels(host: str) -> set[str]:
    """The telling parts of a host name: `api.parcelco.example:443` -> {parcelco}."""
    return {part for part in re.split(r"[.:]", host.lower()) if len(part) > 2} - _GENERIC_LABELS


def related(a: Candidate, b: Candidate) -> bool:
    """About the same thing: the same subject, one family of kinds, or the same dependency."""
    if a.subject == b.subject:
        return True
    if any({a.signal.kind, b.signal.kind} <= family for family in _FAMILIES):
        return True
    hosts = (a.signal.dependency, b.signal.dependency)
    return (
        hosts[0] is not None and hosts[1] is not None and bool(host_labels(hosts[0]) & host_labels(hosts[1]))
    )


def one_line(text: str) -> str:
    """A log example as one line: whitespace runs and banner rules (`*****`) collapsed."""
    return " ".join(re.sub(r"[*=#-]{5,}", " ", text).split())


def trace_of(template: LogTemplate, traces: Sequence[StackTrace]) -> StackTrace | None:
    """The stack trace whose events this template counts (its example, maybe clipped, carries the
    exception's beginning)."""
    return next(
        (t for t in traces if t.exception and t.exception[:TRACE_KEY_CHARS] in template.example), None
    )


TRACE_KEY_CHARS = 80


def candidates(logs: LogsResult | None, service: str | None) -> list[Candidate]:
    """The alerting service's warnings and errors, then its neighbours', as candidates."""
    if logs is None:
        return []
    found = []
    for template in logs.templates:
        if level_rank(template.level) < WARN_RANK and not telling_below_warn(template.example, service):
            continue
        trace = trace_of(template, logs.stack_traces)
        text = template.example if trace is None else f"{template.example}\n{trace.text}"
        found.append(Candidate(template, signal_of(text, trace is not None, service), trace))
    for template in logs.neighbours:
        own = template.service
        found.append(Candidate(template, signal_of(template.example, False, own), None, own))
    return found


def own(found: Iterable[Candidate]) -> list[Candidate]:
    return [c for c in found if c.service is None]


# --- ranking -------------------------------------------------------------------------------------

_LATENCY_ORDER: dict[SignalKind, int] = {"slow": 4, "dependency": 3, "pool": 2, "memory": 1}


def rank(found: Iterable[Candidate], kind: AlertKind) -> list[Candidate]:
    """Causes first. For errors: what changed at the alert's start, then the most telling kind,
    the worst level, the most frequent. For restarts: the most telling kind first (restarts add
    up before the alert fires, so what explains them was often there before it). For latency:
    slow statements, slow dependencies, then saturated pools."""
    if kind == "restarts":

        def key(c: Candidate) -> tuple[int, ...]:
            return (-c.strength, not c.changed, -level_rank(c.template.level), -c.count)

    elif kind == "latency":

        def key(c: Candidate) -> tuple[int, ...]:
            return (not c.changed, -_LATENCY_ORDER.get(c.signal.kind, 0), -c.strength, -c.count)

    else:

        def key(c: Candidate) -> tuple[int, ...]:
            return (not c.changed, -c.strength, -level_rank(c.template.level), -c.count)

    return sorted(found, key=key)


def causes(ranked: Sequence[Candidate], kind: AlertKind) -> list[Candidate]:
    """The candidates that can be the cause, best first: for errors only what changed at the
    alert's start (what was there at the same rate before it did not start the incident); for
    latency only slow work, slow dependencies and saturated pools."""
    if kind == "latency":
        return [c for c in ranked if c.changed and c.signal.kind in _LATENCY_ORDER]
    if kind == "restarts":
        return [c for c in ranked if c.strength >= STRENGTH["crash"] and c.signal.kind != "readiness"]
    return [c for c in ranked if c.changed and (c.strength >= UNNAMED_DEPENDENCY_STRENGTH or weak_error(c))]


def weak_error(candidate: Candidate) -> bool:
    """A line that says little (a crash, an unexplained failure) counts when logged as an error."""
    return candidate.strength >= CAUSE_STRENGTH and level_rank(candidate.template.level) >= ERROR_RANK


def ruled_out(
    ranked: Sequence[Candidate], cause: Candidate | None, kind: AlertKind = "errors"
) -> list[Candidate]:
    """Failures that look serious but do not explain the alert, shown as ruled out, never as the
    cause: for errors and latency what was there before the alert at the same rate (or stopped
    before it); for restarts what explains less than the cause. Never what tells the cause's
    own story (`related`)."""
    return [
        c
        for c in ranked
        if c is not cause
        and c.strength >= UNNAMED_DEPENDENCY_STRENGTH
        and (cause is None or not related(c, cause))
        and (not c.changed if kind != "restarts" else cause is not None and c.strength < cause.strength)
    ]


def ambiguous(found: Sequence[Candidate]) -> Candidate | None:
    """A second changed failure as telling and about as frequent as the first, about something
    else: the evidence does not say which one is the cause."""
    if len(found) < 2:
        return None
    first, second = found[0], found[1]
    if first.strength < STRONG or second.strength < STRONG or related(first, second):
        return None
    # An exception and a dependency failure of which one names no dependency may be one failure
    # seen twice (the client's exception, the handler's line), when the unnamed one is itself a
    # failed call (a timeout, a refused connection); a KeyError beside a timeout is two stories.
    unnamed = [c for c in (first, second) if c.signal.dependency is None]
    linked = (
        {first.signal.kind, second.signal.kind} <= {"dependency", "exception", "pool"}
        and bool(unnamed)
        and all(c.signal.kind != "exception" or _DEPENDENCY.search(c.text) for c in unnamed)
    )
    return second if second.count * 2 >= first.count and not linked else None


# --- time ----------------------------------------------------------------------------------------

_CLOCK = re.compile(r"^\d{2}:\d{2}:\d{2}$")


def moment(stamp: str | None, logs: LogsResult | None = None) -> datetime | None:
    """A template's time: ISO 8601, or HH:MM:SS on the day of the logs' window (UTC)."""
    if not stamp:
        return None
    if _CLOCK.match(stamp):
        day = _window_day(logs)
        return datetime.fromisoformat(f"{day.isoformat()}T{stamp}+00:00") if day else None
    try:
        parsed = datetime.fromisoformat(stamp.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _window_day(logs: LogsResult | None) -> date | None:
    first = logs.window.first if logs is not None else None
    found = moment(first) if first and not _CLOCK.match(first) else None
    return found.astimezone(UTC).date() if found else None


def minutes(seconds: float) -> str:
    """`45 s`, `12 min`, `3 h`."""
    if seconds < 90:
        return f"{max(seconds, 0):.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h".replace(".0 h", " h")


def clock(stamp: str | None, logs: LogsResult | None = None) -> str:
    """HH:MM:SS of a template's time, as the logs' window gives it."""
    found = moment(stamp, logs)
    return found.astimezone(UTC).strftime("%H:%M:%S") if found else (stamp or "?")
