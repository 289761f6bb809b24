"""Rule-based diagnosis from the same evidence the model gets: used with no model configured,
or when the model fails. It reasons as a senior engineer would (ranking.py): what changed at the
alert's start and what can cause a failure come first; a dependency's failure is the cause and
the service's own errors its symptom; what was there before at the same rate is ruled out; an
alert that already recovered is said to have; and when nothing explains the alert the diagnosis
says what was checked, with a low confidence, rather than guess.

Each kind of diagnosis is a function of `Facts` that answers a `Diagnosis` or None (not its
case); `rule_based_diagnosis` asks them in turn. The first sentence of a root cause names the
decisive subject; evidence lines follow in order of relevance, ruled-out candidates after them.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.contracts.models import AlertGroup, Diagnosis, Priority
from services.contracts.tool_results import (
    CodeWindow,
    CommitsResult,
    CommitSummary,
    ErrorRateResult,
    LogsResult,
    PrometheusResult,
    RangeSeries,
    StackFrame,
)
from services.diagnoser.evidence import Evidence, error_rate_of, latest_commit
from services.diagnoser.ranking import (
    STRONG,
    AlertKind,
    Candidate,
    alert_kind,
    ambiguous,
    candidates,
    causes,
    clock,
    level_rank,
    long_gc_pause,
    minutes,
    moment,
    own,
    rank,
    related,
    ruled_out,
    same_service,
)
from services.runtime.text import clip


@dataclass(frozen=True)
class FailureClass:
    name: str
    pattern: re.Pattern[str]
    explanation: str
    fix: str


FAILURE_CLASSES = (
    # Checked first: their lines also name a host or say "refused"/"timed out", but the cause is
    # the process itself (its descriptors, its worker pool) or the database's lock order.
    FailureClass(
        "file descriptors exhausted",
        re.compile(r"too many open files|\bEMFILE\b|\bENFILE\b", re.I),
        "the process has used up its file descriptors (EMFILE): sockets or files opened and never "
        "closed (a leak), or a descriptor limit (ulimit -n) too low for the load; every accept, dial "
        "and open fails, so the hosts it dials are not the cause",
        "Find what holds the descriptors (`ls /proc/<pid>/fd | wc -l`, `lsof -p <pid>`): usually sockets "
        "or files never closed; restart to recover now, raise the limit (RLIMIT_NOFILE) only as a stopgap.",
    ),
    FailureClass(
        "worker pool exhausted",
        re.compile(
            r"RejectedExecution|TaskRejected|rejected from [\w.$@]*ThreadPool"
            r"|All threads \(\d+\) are currently busy|WORKER TIMEOUT|thread pool (?:is )?(?:full|exhausted)"
            r"|listen queue[^\n]{0,40}full",
            re.I,
        ),
        "the worker (thread) pool is exhausted: all its threads are busy and its queue is full, so new "
        "work is rejected; the tasks hold the threads too long, or the pool is too small for the load",
        "Find what keeps the workers busy (a thread dump, the tasks' durations, a recent change that made "
        "them longer); bound the work per task, and size the pool and queue for the load.",
    ),
    FailureClass(
        "deadlock",
        re.compile(r"deadlock", re.I),
        "two transactions take the same locks in opposite orders; the database detects the deadlock and "
        "aborts one of them",
        "Take the locks in one order everywhere (the same tables and rows first), keep transactions short, "
        "and retry a transaction aborted by a deadlock (SQLSTATE 40001/40P01, MySQL 1213).",
    ),
    FailureClass(
        "data race",
        re.compile(
            r"concurrent map (?:writes|read and map write|iteration and map write)|data race"
            r"|ConcurrentModificationException",
            re.I,
        ),
        "two threads (goroutines) change the same map or collection at once without a lock",
        "Guard the shared map with a mutex (or use a concurrent map); run the tests with the race detector.",
    ),
    FailureClass(
        "missing configuration",
        re.compile(
            r"(?-i:KeyError: '[A-Z][A-Z0-9]*_[A-Z0-9_]+')|environment variable|missing (config|setting)"
            r"|(variable|setting|option)\b[^\n]{0,60}\bnot set",
            re.I,
        ),
        "a configuration value or environment variable the code needs is missing",
        "Set the missing setting in the deployment (ConfigMap/Secret) and make the code fail at start-up "
        "with a clear message instead of at request time.",
    ),
    FailureClass(
        "invalid configuration",
        re.compile(
            r"Failed to bind properties|APPLICATION FAILED TO START|cannot load configuration|yaml: line \d+"
            r"|invalid (config|setting|value)|not a valid",
            re.I,
        ),
        "the service cannot start: a configuration value it reads at start-up is invalid",
        "Correct the value in the deployment's configuration (or roll the configuration change back); "
        "the service starts again by itself.",
    ),
    FailureClass(
        "out of memory",
        re.compile(
            r"MemoryError|OutOfMemory|OOMKilled|OOM.?kill|out of memory|Cannot allocate memory"
            r"|exit.?code[=: ]*137",
            re.I,
        ),
        "the process runs out of memory",
        "Raise the memory limit for now, then look for unbounded caches or large payloads held in memory.",
    ),
    FailureClass(
        "None/null dereference",
        re.compile(
            r"NoneType|NullPointerException|null pointer|nil pointer|Cannot read propert(y|ies) of "
            r"(undefined|null)|undefined is not|NullReferenceException|unwrap\(\)` on a `None`"
            r"|undefined method [^\n]{1,80} for nil\b",
            re.I,
        ),
        "the code uses a value that is None/null, typically a lookup that found nothing",
        "Handle the missing value before using it (check for None and return a clear 404/409), "
        "and find out why the lookup found nothing.",
    ),
    FailureClass(
        "missing key",
        re.compile(
            r"KeyError|KeyNotFound|NoSuchElementException|key not found|was not present in the dictionary",
            re.I,
        ),
        "the code reads a key that is not in the map/dict",
        "Use a lookup with a default (dict.get) or validate the input before reading the key.",
    ),
    FailureClass(
        "index out of range",
        re.compile(r"IndexError|index out of range|IndexOutOfBounds|IndexOutOfRange|out of bounds", re.I),
        "the code reads past the end of a list or array",
        "Check the length before indexing; an empty result is the usual trigger.",
    ),
    FailureClass(
        "DNS resolution",
        re.compile(
            r"ENOTFOUND|EAI_AGAIN|getaddrinfo|no such host|Name or service not known|could not resolve", re.I
        ),
        "the dependency's host name does not resolve (DNS): a wrong or removed name, or DNS failing",
        "Check the host name in the configuration against the dependency's service/DNS record, and the "
        "cluster's DNS.",
    ),
    FailureClass(
        "rate limited",
        re.compile(r"\b429\b|Too Many Requests|rate.?limit", re.I),
        "the dependency rejects calls beyond its rate limit (HTTP 429)",
        "Slow down: retry with exponential backoff and respect Retry-After, batch or cache calls, or ask "
        "the provider for a higher limit.",
    ),
    FailureClass(
        "timeout",
        re.compile(r"timed? ?out|TimeoutError|deadline exceeded|SocketTimeout", re.I),
        "a call to a dependency takes longer than the configured timeout",
        "Check the dependency's latency and saturation; add a bounded retry with backoff and a circuit "
        "breaker, and make sure timeouts are shorter than the caller's.",
    ),
    FailureClass(
        "connection refused",
        re.compile(
            r"connection refused|ECONNREFUSED|ConnectException|Connection reset|refused|UNAVAILABLE", re.I
        ),
        "a dependency is not accepting connections (down, restarting, or wrong address)",
        "Check that the dependency is up and its address/port in the configuration is right.",
    ),
    FailureClass(
        "disk full",
        re.compile(r"No space left on device|ENOSPC|disk full", re.I),
        "the disk or volume is full",
        "Free or grow the volume and add log/data retention so it does not fill again.",
    ),
    FailureClass(
        "permission denied",
        re.compile(r"Permission denied|EACCES|AccessDenied|403 Forbidden", re.I),
        "the process is not allowed to access a file or resource",
        "Fix the file permissions, the service account's role, or the credentials it uses.",
    ),
)

# A KeyError names an environment variable only when the code reads the environment.
_ENVIRONMENT_READ = re.compile(r"os\.environ|getenv|process\.env|Environment\.Get|System\.getenv", re.I)
_KEY_ERROR = re.compile(r"KeyError: '[A-Z][A-Z0-9_]*'")


def classify(text: str, context: str = "") -> FailureClass | None:
    """The failure class of an error line (or a trace's exception); `context` (the trace, the
    code line) tells a missing environment variable from a missing map key: `KeyError: 'JPY'`
    is a missing key unless the code reads the environment."""
    if _KEY_ERROR.search(text) and _ENVIRONMENT_READ.search(context):
        return FAILURE_CLASSES[0]
    return next((fc for fc in FAILURE_CLASSES if fc.pattern.search(text)), None)


def priority_for(group: AlertGroup, error_rate: float | None) -> Priority:
    severity = (group.common_labels.get("severity") or "").lower()
    if severity in ("critical", "page") and (error_rate is None or error_rate >= 0.2):
        return "P1"
    if severity in ("critical", "page") or (error_rate is not None and error_rate >= 0.05):
        return "P2"
    return "P3"


# --- the facts every diagnosis reads --------------------------------------------------------------

QUOTE_CHARS = 240
# Below this a diagnosis says why it is not sure (the scoring's "confident" starts here).
CONFIDENT = 0.6
EXCEPTION_CHARS = 600
# An alert this old whose failure stopped this long ago has recovered.
RECOVERED_MIN_AGE = timedelta(minutes=5)
QUIET_FOR = timedelta(minutes=2)
# A crash loop backs off for up to 5 minutes between restarts: quiet for longer than that.
RESTART_QUIET_FOR = timedelta(minutes=10)
ERROR_RANK = 40
STRENGTH_CRASH = 3
QUIET_ERROR_RATE = 0.01
QUIET_TREND_POINTS = 4


@dataclass(frozen=True)
class Facts:
    group: AlertGroup
    evidence: Evidence
    kind: AlertKind
    logs: LogsResult | None
    ranked: list[Candidate]
    causes: list[Candidate]

    @staticmethod
    def of(group: AlertGroup, evidence: Evidence) -> Facts:
        kind = alert_kind(group)
        logs = evidence.log_result
        ranked = rank(candidates(logs, group.service), kind)
        return Facts(group, evidence, kind, logs, ranked, causes(own(ranked), kind))

    @property
    def service(self) -> str:
        return self.group.service or "the service"

    @property
    def rate(self) -> ErrorRateResult | None:
        return self.evidence.error_rate.result.output(ErrorRateResult)

    @property
    def started(self) -> datetime | None:
        return self.group.earliest_start()

    @property
    def frame(self) -> StackFrame | None:
        return self.evidence.failing_frame

    @property
    def window(self) -> CodeWindow | None:
        return self.evidence.code_window

    def when(self, stamp: str | None) -> datetime | None:
        return moment(stamp, self.logs)

    def at(self, stamp: str | None) -> str:
        return clock(stamp, self.logs)

    def symptoms(self) -> list[Candidate]:
        return [c for c in own(self.ranked) if c.signal.kind == "symptom" and c.changed]

    def neighbour(self, dependency: str | None) -> Candidate | None:
        """A changed failure of the dependency's own service among the neighbours' lines."""
        if dependency is None:
            return None
        return next(
            (
                c
                for c in self.ranked
                if c.service is not None
                and same_service(dependency, c.service)
                and c.changed
                and c.strength >= STRONG - 2
            ),
            None,
        )


def rule_based_diagnosis(group: AlertGroup, evidence: Evidence) -> Diagnosis:
    facts = Facts.of(group, evidence)
    diagnoses: tuple[Callable[[Facts], Diagnosis | None], ...] = (
        recovered,
        slow,
        cause,
        callers_see_it,
        symptoms_only,
    )
    for diagnose in diagnoses:
        diagnosis = diagnose(facts)
        if diagnosis is not None:
            return diagnosis
    return nothing_found(facts)


def _diagnosis(facts: Facts, **fields: object) -> Diagnosis:
    fields.setdefault("priority", priority_for(facts.group, error_rate_of(facts.evidence)))
    return Diagnosis.model_validate({**fields, "method": "rules"})


# --- wording ---------------------------------------------------------------------------------------


def quote(candidate: Candidate, chars: int = QUOTE_CHARS) -> str:
    return f'"{clip(candidate.text, chars)}"'


def change_phrase(candidate: Candidate, facts: Facts) -> str:
    """Since when and how its rate moved: `new since 06:02:11`, `rate jumped at the alert`."""
    first = facts.at(candidate.template.first_seen)
    change = candidate.change
    if candidate.count == 1:
        return f"at {first}"
    if change == "new":
        return f"new since {first}"
    if change == "jumped":
        before = candidate.template.before or 0
        return f"{before} before the alert, {candidate.count - before} since: its rate jumped with it"
    if change in ("steady", "stopped"):
        return f"present since {first}"
    return f"since {first}"


def described(candidate: Candidate, facts: Facts, chars: int = 200) -> str:
    """An evidence line: `[service] 24× "line" (new since 06:02:11)`."""
    who = f"[{candidate.service}] " if candidate.service else ""
    return f"{who}{candidate.count}× {quote(candidate, chars)} ({change_phrase(candidate, facts)})"


def since(candidate: Candidate, facts: Facts) -> str:
    """`24×, new since 06:02:11`."""
    return f"{candidate.count}×, {change_phrase(candidate, facts)}"


def ruled_out_line(candidate: Candidate, facts: Facts) -> str:
    """`Ruled out: 54× "…": present for 5 min before the alert at the same rate: not the cause.`"""
    first, started = facts.when(candidate.template.first_seen), facts.started
    lead = (
        f"for {minutes((started - first).total_seconds())} " if first and started and first < started else ""
    )
    if facts.kind == "restarts" and candidate.changed:
        why = "it does not explain a restart"
    elif candidate.change == "stopped":
        why = f"seen only before the alert (last at {facts.at(candidate.template.last_seen)})"
    else:
        why = f"present {lead}before the alert, at the same rate"
    who = f"[{candidate.service}] " if candidate.service else ""
    return f"Ruled out: {who}{candidate.count}× {quote(candidate, 110)}: {why}: not the cause"


def ruled_out_lines(
    facts: Facts, cause: Candidate | None, limit: int = 2, skip: list[Candidate] | None = None
) -> list[str]:
    found = [c for c in ruled_out(facts.ranked, cause, facts.kind) if c not in (skip or [])]
    return [ruled_out_line(c, facts) for c in found[:limit]]


def with_ruled_out(evidence: list[str], ruled: list[str], shown: int = 2) -> list[str]:
    """The most relevant evidence first, the ruled-out candidates right after it (a message shows
    only the first few lines), then the rest."""
    return [*evidence[:shown], *ruled, *evidence[shown:]]


def trend_line(facts: Facts) -> str | None:
    """`error rate 11.6% now (0.0% before the alert; Prometheus)`."""
    rate = facts.rate
    if rate is None or rate.error_rate is None:
        return None
    before = rate_before(facts)
    earlier = f" ({before:.1%} before the alert)" if before is not None else ""
    return f"error rate {rate.error_rate:.1%} now{earlier} (Prometheus)"


def rate_before(facts: Facts) -> float | None:
    """The error rate at the start of the trend, when it starts before the alert did."""
    rate, started = facts.rate, facts.started
    if rate is None or rate.trend is None or started is None:
        return None
    start = moment(rate.trend.start)
    if start is None or start >= started:
        return None
    values = [v for v in rate.trend.error_rate_percent[:3] if v is not None]
    return statistics.median(values) / 100 if values else None


def commit_line(commit: CommitSummary, path: str | None) -> str:
    change = f"{commit.sha} by {commit.author} on {commit.date or '?'}"
    return f"last change to {path}: {change}: {commit.title}"


def code_line(facts: Facts) -> str | None:
    """The target line of the code window, or the frame's own code text."""
    window = facts.window
    if window is not None and window.line_text is not None:
        return window.line_text.strip()
    frame = facts.frame
    return frame.code.strip() if frame and frame.code else None


def location(facts: Facts) -> tuple[str | None, int | None]:
    """The repository path (the code window's, which beats the container's) and line."""
    frame, window = facts.frame, facts.window
    path = (window.path or None) if window is not None else None
    path = path or (frame.file or frame.lookup_path if frame else None)
    return path, frame.line if frame else None


# --- 1. an alert that recovered before it was investigated ---------------------------------------


def recovered(facts: Facts) -> Diagnosis | None:
    """A failure around the alert's start that has stopped by the time of the investigation: the
    error rate (or the latency) back to normal, the last minutes' logs without failure, and
    nothing that says otherwise. Said so first; what happened after."""
    now, started = facts.evidence.investigated_at, facts.started
    if facts.kind == "down" or now is None or started is None or now - started < RECOVERED_MIN_AGE:
        return None
    quiet, failing = health_now(facts)
    needed = {"errors": ("rate", "logs"), "restarts": ("logs",), "latency": ("latency",)}[facts.kind]
    if failing or not any(source in quiet for source in needed):
        return None
    episode = facts.causes[0] if facts.causes else next(iter(facts.symptoms()), None)
    if episode is None and facts.kind != "latency":
        return None
    end = facts.when(episode.template.last_seen) if episode else None
    settle = RESTART_QUIET_FOR if facts.kind == "restarts" else QUIET_FOR
    if episode is not None and (end is None or now - end < settle):
        return None
    return recovered_diagnosis(facts, episode, list(quiet.values()))


def health_now(facts: Facts) -> tuple[dict[str, str], list[str]]:
    """What says it is healthy now, by source (rate, latency, logs), and what says it is not."""
    quiet: dict[str, str] = {}
    failing: list[str] = []
    rate = facts.rate
    if rate is not None and rate.error_rate is not None:
        trend = [v for v in (rate.trend.error_rate_percent if rate.trend else []) if v is not None]
        recent = [rate.error_rate * 100, *trend[-QUIET_TREND_POINTS:]]
        if max(recent) <= QUIET_ERROR_RATE * 100:
            quiet["rate"] = f"error rate {rate.error_rate:.1%} now (Prometheus)"
        elif facts.kind != "latency":
            failing.append("rate")
    latency = latency_figures(facts)
    if latency is not None:
        before, now, peak = latency
        if before is not None and peak > 2 * before and now <= before + (peak - before) / 4:
            quiet["latency"] = (
                f"the alert's query is back to {now:.3g} ({before:.3g} before it, peak {peak:.3g})"
            )
        elif facts.kind == "latency":
            failing.append("latency")
    recent_logs = facts.evidence.recent_log_result
    if recent_logs is not None:
        found = own(candidates(recent_logs, facts.group.service))
        if any(level_rank(c.template.level) >= ERROR_RANK or c.strength >= STRENGTH_CRASH for c in found):
            failing.append("logs")
        else:
            quiet["logs"] = "no errors, warnings or restarts in its logs of the last 5 minutes"
    return quiet, failing


def recovered_diagnosis(facts: Facts, episode: Candidate | None, quiet: list[str]) -> Diagnosis:
    service, healthy = facts.service, ", ".join(quiet)
    if episode is None:
        return _diagnosis(
            facts,
            root_cause=f"Recovered: {facts.group.title} is back to normal: {healthy}; nothing in the logs "
            f"says what slowed it. {checked_sentence(facts)}",
            evidence=[line for line in (latency_line(facts), trend_line(facts)) if line],
            confidence=0.5,
            priority="P3",
            suggested_fix="Nothing to fix now; if it recurs, look at the dependencies' latency at that time.",
            next_steps=["Resolve the alert once it clears", "Reply `status` to check again"],
        )
    first, last = episode.template.first_seen, episode.template.last_seen
    trigger, after = episode_context(facts, episode)
    if facts.kind == "restarts":
        restarts = "once" if episode.count == 1 else f"{episode.count} times"
        head = f"Recovered: {service} restarted {restarts} around {facts.at(first)} ({quote(episode, 160)})"
    else:
        what = f"{episode.count}× {quote(episode, 160)} from {facts.at(first)} to {facts.at(last)}"
        head = f"Recovered: {service} is no longer failing: {what}"
    sentences = [head + "."]
    if trigger is not None:
        sentences.append(f"It began after {quote(trigger, 160)} ({facts.at(trigger.template.first_seen)}).")
    if after:
        ended = "; ".join(f"{quote(c, 160)} ({facts.at(c.template.first_seen)})" for c in after)
        sentences.append(f"Then: {ended}.")
    sentences.append(f"Healthy since then: {healthy}.")
    evidence = [described(episode, facts)]
    evidence += [f"then: {described(c, facts, 160)}" for c in after]
    evidence += [line for line in (trend_line(facts), latency_line(facts)) if line]
    explanation = classify(episode.template.example)
    why = f" ({explanation.explanation})" if explanation else ""
    return _diagnosis(
        facts,
        root_cause=" ".join(sentences),
        evidence=evidence,
        confidence=0.7 if len(quiet) > 1 else 0.6,
        priority="P3",
        suggested_fix=f"Nothing to fix right now: it recovered. Follow up on why it happened{why}, "
        "so that it does not recur.",
        next_steps=[
            "Confirm on the dashboard that it stays healthy; resolve the alert once it clears",
            f"Review the episode from {facts.at(first)} to {facts.at(last)} (reply `status` to check again)",
        ],
    )


def episode_context(facts: Facts, episode: Candidate) -> tuple[Candidate | None, list[Candidate]]:
    """What changed just before the episode began (a deploy, a failover starting), and what
    changed once it ended (a reconnection, a rollback), from all the templates, any level."""
    logs, begin, end = (
        facts.logs,
        facts.when(episode.template.first_seen),
        facts.when(episode.template.last_seen),
    )
    if logs is None or begin is None or end is None:
        return None, []
    found = [
        Candidate(t, episode.signal)
        for t in logs.templates
        if t.change == "new" and t is not episode.template and t.count <= max(episode.count, 3)
    ]
    timed = [(facts.when(c.template.first_seen), c) for c in found]
    before = [c for at, c in timed if at and begin - timedelta(minutes=2) <= at <= begin]
    after = [c for at, c in timed if at and at >= end - timedelta(seconds=5)]
    after.sort(key=lambda c: c.template.first_seen)
    return (before[-1] if before else None), after[:2]


# --- 2. latency: slow work, slow dependencies, saturated pools ----------------------------------

_SQL_TABLE = re.compile(r"\b(?:FROM|JOIN|UPDATE|INTO)\s+[\[\"`]?(?P<table>[A-Za-z_][\w.]*)", re.I)
_SQL_SKIP = {"select", "where", "set", "values", "lateral", "unnest"}


_SQL_VERB = re.compile(r"\b(?:select|insert|update|delete)\b", re.I)


def tables_in(text: str) -> list[str]:
    """The tables an SQL statement in a log line reads or writes, in order (none when the line
    holds no statement: `slow response from tax-rules` names no table)."""
    found: list[str] = []
    if not _SQL_VERB.search(text):
        return found
    for match in _SQL_TABLE.finditer(text):
        table = match["table"].split(".")[-1]
        if table.lower() not in _SQL_SKIP and table not in found:
            found.append(table)
    return found


def slow(facts: Facts) -> Diagnosis | None:
    """A latency alert explained by slow statements, slow calls to a dependency, or a saturated
    connection pool that changed with it."""
    if facts.kind != "latency" or not facts.causes:
        return None
    primary = facts.causes[0]
    pool = next((c for c in facts.causes if c.signal.kind == "pool" and c is not primary), None)
    tables = tables_in(primary.text)
    if primary.signal.kind == "slow" and not tables and primary.signal.dependency:
        headline = f"Slow calls to {primary.signal.dependency}"
    elif primary.signal.kind == "slow":
        headline = f"Slow SQL on {', '.join(tables)}" if tables else "Slow operations"
    elif primary.signal.kind == "dependency":
        headline = f"Slow calls to {primary.signal.dependency or 'a dependency'}"
    elif primary.signal.kind == "pool":
        headline = "The connection pool is saturated"
    elif long_gc_pause(primary.text):
        headline = "Long garbage-collection (GC) pauses stop the application: memory pressure on the heap"
    else:
        headline = "Memory pressure"
    sentences = [f"{headline}: {described(primary, facts, 240)}."]
    if pool is not None:
        sentences.append(f"The connection pool is saturated: {described(pool, facts, 160)}.")
        sentences.append(
            "Slow statements hold the connections, so requests queue for one: that is the latency."
        )
    # What else changed with it and slows the work down too (a consumer's poll timeouts and
    # rebalances behind a slow call): the consequence the on-call person will see next.
    also = next(
        (c for c in facts.causes if c is not primary and c is not pool and not related(c, primary)), None
    )
    if also is not None:
        sentences.append(f"Also since then: {described(also, facts, 240)}.")
    measured_line = latency_line(facts)
    evidence = [described(primary, facts)]
    if also is not None:
        evidence.append(described(also, facts))
    if pool is not None:
        evidence.append(described(pool, facts))
    evidence += [line for line in (measured_line, change_line(facts, tables)) if line]
    subject = f" on {', '.join(tables)}" if tables else ""
    return _diagnosis(
        facts,
        root_cause=" ".join(sentences),
        evidence=with_ruled_out(evidence, ruled_out_lines(facts, primary)),
        confidence=0.7 if pool is not None or primary.signal.kind == "slow" else 0.55,
        suggested_fix=slow_fix(primary, subject),
        next_steps=[
            "Run EXPLAIN (ANALYZE) of the slow statement and compare with its plan before the alert",
            "Check recent migrations and deploys touching these tables; roll back if one dropped an index",
            "Watch p90 latency and the pool's waiting count after the fix",
        ],
    )


def slow_fix(primary: Candidate, subject: str) -> str:
    """What to do about the slowness, by what is slow."""
    if primary.signal.kind == "memory":
        return (
            "Find what fills the heap (a heap histogram or dump: a cache or a large result held in "
            "memory); restart to relieve it now, raise the heap only if the live set really grew."
        )
    if primary.signal.kind == "dependency":
        return (
            f"Look at {primary.signal.dependency or 'the dependency'}'s latency and recent changes; bound "
            "the call with a timeout shorter than the caller's and do not hold workers while waiting."
        )
    return (
        f"Find why the statement{subject} is slow (EXPLAIN ANALYZE it: a missing or dropped index, a full "
        "scan); meanwhile bound the pool's wait and shed load rather than queue."
    )


def latency_figures(facts: Facts) -> tuple[float | None, float, float] | None:
    """What the alert's own query says: (the median before the alert, now, the peak)."""
    result, started = facts.evidence.alert_series, facts.started
    series = first_range(result)
    start = moment(result.start) if result is not None else None
    if series is None or result is None or started is None or start is None or not result.step_seconds:
        return None
    step = result.step_seconds
    numbers = [
        (start + timedelta(seconds=i * step), float(v))
        for i, v in enumerate(series.values)
        if isinstance(v, int | float)
    ]
    if not numbers:
        return None
    before = [v for at, v in numbers if at < started]
    return (statistics.median(before) if before else None), numbers[-1][1], max(v for _, v in numbers)


def latency_line(facts: Facts) -> str | None:
    """`the alert's query in Prometheus: 0.14 before the alert, 2.7 now (peak 2.7)`."""
    figures = latency_figures(facts)
    if figures is None:
        return None
    before, now, peak = figures
    earlier = f"{before:.3g} before the alert, " if before is not None else ""
    return f"the alert's query in Prometheus: {earlier}{now:.3g} now (peak {peak:.3g})"


def first_range(result: PrometheusResult | None) -> RangeSeries | None:
    if result is None:
        return None
    return next((s for s in result.series if isinstance(s, RangeSeries)), None)


def change_line(facts: Facts, tables: list[str]) -> str | None:
    """A recent commit of the repository about these tables, an index or a migration."""
    changes: CommitsResult | None = facts.evidence.recent_changes
    if changes is None:
        return None
    words = [*(t.lower() for t in tables), "index", "migration", "schema"]
    for commit in changes.commits:
        if any(word in commit.title.lower() for word in words):
            return f"recent change: {commit.sha} by {commit.author} on {commit.date or '?'}: {commit.title}"
    return None


# --- 3. a cause in the service's own logs --------------------------------------------------------

_MODES = (
    (re.compile(r"ENOTFOUND|EAI_AGAIN|getaddrinfo|no such host|not known|resolve|name resolution", re.I),
     "does not resolve (DNS)"),
    (re.compile(r"refused|ECONNREFUSED", re.I), "is refusing connections"),
    (re.compile(r"\b429\b|Too Many Requests|rate.?limit", re.I), "is rate-limiting the calls (HTTP 429)"),
    (re.compile(r"timed? ?out|timeout|deadline exceeded", re.I), "is timing out"),
    (re.compile(r"reset|ECONNRESET|broken pipe", re.I), "is resetting connections"),
    (re.compile(r"x509|certificate|TLS", re.I), "fails the TLS handshake"),
    (re.compile(r"\bUNAVAILABLE\b|unreachable", re.I), "is unavailable"),
    (re.compile(r"\b5\d\d\b", re.I), "answers errors"),
)  # fmt: skip


def failure_mode(text: str) -> str:
    return next((mode for pattern, mode in _MODES if pattern.search(text)), "is failing")


def cause(facts: Facts) -> Diagnosis | None:
    """The best changed cause among the service's own lines (any telling line, for restarts)."""
    if not facts.causes:
        return None
    top = facts.causes[0]
    other = ambiguous(facts.causes) if facts.kind != "restarts" else None
    deeper = facts.neighbour(top.signal.dependency) if top.signal.kind == "dependency" else None
    sentences, support, confidence = explain(top, facts)
    if deeper is not None:
        sentences = [
            f"{deeper.service} is failing: {described(deeper, facts, 200)}.",
            f"{facts.service} calls it and fails with it: {described(top, facts, 160)}.",
        ]
        support = [described(deeper, facts), *support]
    if other is not None:
        sentences = [
            f"Two failures began with the alert and the evidence does not say which one causes the other: "
            f"{described(top, facts, 150)} and {described(other, facts, 150)}.",
            *sentences[1:],
        ]
        confidence = min(confidence, 0.45)
        support.insert(1, described(other, facts))
    change = trigger(top, facts) if other is None else None
    if change is not None:
        sentences.insert(1, trigger_sentence(change, top, facts))
    if other is None and confidence < CONFIDENT:
        sentences.append(thin_reason(top, facts) if change is None else TRIGGER_REASON)
    symptoms = facts.symptoms()
    if symptoms and top.signal.kind != "symptom":
        count = sum(c.count for c in symptoms)
        sentences.append(
            f"The {count} HTTP 5xx lines of {facts.service} since then are its symptom, not a cause."
        )
    evidence = [described(top, facts), *support]
    evidence += [line for line in (trend_line(facts),) if line]
    evidence += [f"symptom: {described(c, facts, 120)}" for c in symptoms[:1]]
    path, line = location(facts) if top.trace is not None else (None, None)
    return _diagnosis(
        facts,
        root_cause=" ".join(sentences),
        affected_file=path,
        line=line,
        evidence=with_ruled_out(evidence, ruled_out_lines(facts, top, skip=holders(top, facts))),
        confidence=confidence,
        suggested_fix=fix_for(top, facts),
        next_steps=next_steps_for(top, facts),
    )


# A line saying the service's flags, configuration or version changed: when a failure begins
# minutes after one, with nothing else to explain it, the change is the first suspect.
_CHANGE_EVENT = re.compile(
    r"feature.?flags?|\bflags?\b[^\n]{0,40}\b(?:applied|changed|updated|enabled|disabled|toggled|revision)"
    r"|config(?:uration)?\b[^\n]{0,30}\b(?:reloaded|changed|updated|applied)|\bdeploy(?:ed|ing|ment)\b"
    r"|\brolled out\b|\brollout\b|\bmigrat(?:ed|ion|ing)\b|\bupgraded\b",
    re.I,
)
TRIGGER_WINDOW = timedelta(minutes=10)
TRIGGER_MAX_COUNT = 3  # a change is logged once per replica, not at every request
TRIGGER_REASON = (
    "Low confidence: the errors do not say why; the change just before them is the likely trigger."
)


def trigger(top: Candidate, facts: Facts) -> Candidate | None:
    """The last change event (any level) first logged in the TRIGGER_WINDOW before the failure
    began: what changed just before it."""
    logs, begin = facts.logs, facts.when(top.template.first_seen)
    if logs is None or begin is None:
        return None
    found = []
    for template in logs.templates:
        if template is top.template or template.change != "new" or template.count > TRIGGER_MAX_COUNT:
            continue
        at = facts.when(template.first_seen)
        if (
            at is not None
            and begin - TRIGGER_WINDOW <= at <= begin
            and _CHANGE_EVENT.search(template.example)
        ):
            found.append((at, template))
    if not found:
        return None
    return Candidate(max(found, key=lambda pair: pair[0])[1], top.signal)


def trigger_sentence(change: Candidate, top: Candidate, facts: Facts) -> str:
    begin, at = facts.when(top.template.first_seen), facts.when(change.template.first_seen)
    lead = minutes((begin - at).total_seconds()) if begin and at else "shortly"
    return (
        f"It began {lead} after this change: {quote(change, 200)} ({facts.at(change.template.first_seen)}), "
        "the likely trigger: roll it back if nothing else explains the failure."
    )


def thin_reason(top: Candidate, facts: Facts) -> str:
    """Why the confidence is low, in a sentence."""
    code = facts.evidence.code
    if top.trace is not None and facts.window is None:
        error = code.result.error if code is not None else None
        why = f" ({clip(error.message, 160)})" if error is not None else ""
        return f"Low confidence: the code at the failing line could not be read{why}."
    if top.signal.kind == "dependency" and not top.signal.dependency:
        return "Low confidence: the line names no dependency."
    if not top.changed and facts.kind != "restarts":
        return "Low confidence: it was already logged before the alert."
    if top.signal.kind == "crash":
        return "Low confidence: nothing says why it exits."
    return "Low confidence: this is the only failure logged, and it does not say why."


def explain(top: Candidate, facts: Facts) -> tuple[list[str], list[str], float]:
    """The root cause's sentences, the supporting evidence lines, and the confidence."""
    kind, service, settled = top.signal.kind, facts.service, top.changed or facts.kind == "restarts"
    if kind == "dependency" and top.signal.dependency:
        sentence = f"{top.signal.dependency} {failure_mode(top.text)}: {quote(top)} ({since(top, facts)})."
        return [sentence], supporting(top, facts), 0.75 if settled else 0.55
    if top.trace is not None and kind in ("exception", "oom", "resource", "dependency", "config"):
        return explain_trace(top, facts)
    if kind == "config":
        sentence = (
            f"{service} fails at start-up on its configuration: {quote(top, 300)} ({since(top, facts)})."
        )
        return [sentence], [line for line in (change_line(facts, config_words(top.text)),) if line], 0.75
    if kind == "oom":
        pressure = next((c for c in facts.ranked if c.signal.kind == "memory" and c.service is None), None)
        memory = _BY_NAME["out of memory"].explanation
        sentences = [f"{service} dies because {memory}: {quote(top)} ({since(top, facts)})."]
        if pressure is not None:
            sentences.append(f"Before each kill its memory reaches the limit: {quote(pressure, 160)}.")
        return sentences, [described(pressure, facts)] if pressure else [], 0.75
    if kind == "pool":
        sentences = [f"The connection pool of {service} is exhausted: {quote(top)} ({since(top, facts)})."]
        held = holders(top, facts)
        if held:
            sentences.append(f"Its connections are held by: {described(held[0], facts, 200)}.")
        return sentences, [described(c, facts) for c in held], 0.6
    if kind == "probe":
        return explain_probe(top, facts)
    explanation = classify(top.text)
    why = f": {explanation.explanation}" if explanation else ""
    if kind == "crash":
        return (
            [f"{service} keeps exiting: {quote(top)} ({since(top, facts)}){why}; no line says why."],
            [],
            0.45,
        )
    confidence = 0.6 if top.strength >= STRONG and settled else 0.45
    return [f"{quote(top)} ({since(top, facts)}){why}."], [], confidence


_HOLDING = re.compile(r"\b(?:held|holding|holds|long.?running|transaction|lock(?:ed|s)?|leak)\b", re.I)


def supporting(top: Candidate, facts: Facts) -> list[str]:
    """Other changed lines of the same story (the same dependency's retries, say)."""
    found = [
        c
        for c in own(facts.ranked)
        if c is not top and c.changed and c.signal.kind != "symptom" and related(c, top)
    ]
    return [described(c, facts) for c in found[:2]]


def holders(top: Candidate, facts: Facts) -> list[Candidate]:
    """For an exhausted pool, what holds its connections (a long transaction, a lock, a leak),
    even when it began minutes before the alert: the pool runs dry some time after."""
    if top.signal.kind != "pool":
        return []
    return [c for c in own(facts.ranked) if c is not top and _HOLDING.search(c.text)][:2]


def config_words(text: str) -> list[str]:
    """What a recent change behind a configuration error would mention: the line's names in
    capitals (`PAYMENTS_DB_URL`) and the usual words of deployment changes."""
    names = re.findall(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b", text)
    return [*(n.lower() for n in names), "config", "deploy", "env", "values", "setting", "secret"]


def explain_trace(top: Candidate, facts: Facts) -> tuple[list[str], list[str], float]:
    """An exception with its stack trace: where it is thrown, and the code there."""
    assert top.trace is not None
    exception = (top.trace.exception.strip() or top.text).rstrip(".")
    frame, window = facts.frame, facts.window
    path, line = location(facts)
    where = f" at {path}:{line}" if path and line else f" in {path}" if path else ""
    function = f" in {frame.function}()" if frame and frame.function else ""
    code = code_line(facts)
    explanation = classify(exception, f"{top.trace.text}\n{code or ''}")
    why = f": {explanation.explanation}" if explanation else ""
    sentences = [f"{clip(exception, EXCEPTION_CHARS)}{where}{function}{why}."]
    innermost = facts.logs.top_frame if facts.logs is not None else None
    if frame is not None and innermost is not None and innermost != frame:
        sentences.append(
            f"It is thrown in {innermost.function} ({innermost.file}:{innermost.line}), whose file is not "
            f"in the repository; {frame.function} calls it there."
        )
    sentences.append(f"{since(top, facts)}.")
    support = [f"{path}:{line}: `{code}`"] if code and path and line else []
    commit = latest_commit(facts.evidence)
    if commit is not None and window is not None:
        support.append(commit_line(commit, path))
    located = window is not None or (frame is not None and frame.code is not None)
    confidence = 0.75 if located and (top.changed or facts.kind == "restarts") else 0.55
    return sentences, support, confidence


_HEALTH = re.compile(r"/health|/ready|/live|health ?check|healthz", re.I)


def explain_probe(top: Candidate, facts: Facts) -> tuple[list[str], list[str], float]:
    """Restarts by the kubelet: the liveness probe fails, and why the probed endpoint fails."""
    health = next(
        (c for c in own(facts.ranked) if c is not top and _HEALTH.search(c.text)),
        None,
    )
    sentences = [f"The kubelet restarts {facts.service} because its liveness probe fails: {quote(top, 200)}."]
    support = []
    if health is not None:
        sentences.append(f"The probed health check fails: {described(health, facts, 200)}.")
        support.append(described(health, facts))
    return sentences, support, 0.75 if health is not None else 0.6


_BY_NAME = {fc.name: fc for fc in FAILURE_CLASSES}
# The failure class of a line's kind, when its words name none.
_CLASS_OF_KIND = {
    "oom": _BY_NAME["out of memory"],
    "config": _BY_NAME["invalid configuration"],
    "resource": _BY_NAME["permission denied"],
    "dependency": _BY_NAME["connection refused"],
}


def fix_for(top: Candidate, facts: Facts) -> str:
    context = f"{top.trace.text if top.trace else ''}\n{code_line(facts) or ''}"
    explanation = classify(top.trace.exception if top.trace else top.template.example, context)
    explanation = explanation or _CLASS_OF_KIND.get(top.signal.kind)
    if top.signal.kind == "probe":
        fix = (
            "Make the liveness probe check only the process itself (dependencies belong in readiness), "
            "and fix the failing health check."
        )
    elif explanation is not None:
        fix = explanation.fix
    else:
        fix = "Inspect the failing code path and the most recent changes to it."
    code, (path, line) = code_line(facts), location(facts)
    if code and path and line and top.trace is not None:
        fix = f"{fix} Faulty statement at {path}:{line}: `{code}`"
    return fix


def next_steps_for(top: Candidate, facts: Facts) -> list[str]:
    steps = []
    path, line = location(facts) if top.trace is not None else (None, None)
    if path and line:
        steps.append(f"Open {path}:{line} and reproduce with the failing input")
    if top.signal.kind == "dependency" and top.signal.dependency:
        steps.append(f"Check {top.signal.dependency}: its health, its own logs and its recent changes")
    commit = latest_commit(facts.evidence) if top.trace is not None else None
    if commit is not None:
        steps.append(f"Review commit {commit.sha} ({commit.title}); revert it if it broke this")
    else:
        steps.append("Check whether a recent deploy or config change touched this path; roll back if so")
    steps.append("Watch the error rate after the fix (reply `status`)")
    return steps


# --- 4. the callers see it fail; 5. only symptoms; 6. nothing found ----------------------------


def callers_see_it(facts: Facts) -> Diagnosis | None:
    """No cause in the service's own lines, but other services say calling it fails."""
    callers = [c for c in facts.ranked if c.service is not None and c.changed and c.strength >= 3]
    if facts.kind == "latency" or not callers:
        return None
    top = callers[0]
    root = (
        f"Calls to {facts.service} fail as its callers see them: {described(top, facts, 200)}; "
        f"{facts.service}'s own logs say nothing about it. " + checked_sentence(facts)
    )
    return _diagnosis(
        facts,
        root_cause=root,
        evidence=[described(c, facts) for c in callers[:3]],
        confidence=0.45,
        suggested_fix=f"Check that {facts.service} is running and reachable (pods, endpoints, network "
        "policy).",
        next_steps=[f"Check {facts.service}'s pods and endpoints", "Reply `status` to check again"],
    )


def symptoms_only(facts: Facts) -> Diagnosis | None:
    """Errors logged with no line that says why: said so, with what else was checked."""
    symptoms = facts.symptoms()
    if facts.kind == "latency" or not symptoms:
        return None
    top = symptoms[0]
    root = (
        f"Only symptoms: {facts.service} logs {described(top, facts, 160)}, but no line says why they fail. "
        + checked_sentence(facts)
    )
    evidence = [described(c, facts) for c in symptoms[:2]]
    evidence += [line for line in (trend_line(facts),) if line]
    return _diagnosis(
        facts,
        root_cause=root,
        evidence=with_ruled_out(evidence, ruled_out_lines(facts, None)),
        confidence=0.3,
        suggested_fix="Find the error behind the 5xx answers: raise the log level of the failing handler, or "
        "look at its dependencies' health.",
        next_steps=[
            "Look at the dependencies this handler calls (their dashboards and logs)",
            "Check recent deploys and config changes of the service",
            "Reply `status` to check the error rate again",
        ],
    )


def nothing_found(facts: Facts) -> Diagnosis:
    """Nothing explains the alert: say exactly what was checked; never guess."""
    hints = {
        "errors": "The errors are counted but not logged by the service: look at the load balancer's or "
        "ingress's logs and at the dependencies' dashboards.",
        "latency": "Nothing logged is slow: look at the dependencies' latency and the hosts' CPU and "
        "throttling.",
        "restarts": "The logs do not say why it restarted: look at the pod's events and its last state "
        "(`kubectl describe pod`).",
        "down": f"{facts.service} writes no logs and exports no metrics: its process is probably not "
        "running or not reachable (crashed, scaled to zero, not scheduled, network policy).",
    }
    root = f"No cause found for {facts.group.title}: nothing in the evidence explains it."
    root = f"{root} {checked_sentence(facts)}"
    return _diagnosis(
        facts,
        root_cause=f"{root} {hints[facts.kind]}",
        evidence=[line for line in (trend_line(facts), latency_line(facts)) if line]
        + ruled_out_lines(facts, None),
        confidence=0.2,
        suggested_fix="No fix to suggest from this evidence.",
        next_steps=[
            f"Check {facts.service}'s pods, events and recent deploys",
            "Check the dependencies' dashboards",
            "Reply `status` to check again",
        ],
    )


def checked_sentence(facts: Facts) -> str:
    return "Checked: " + "; ".join(checked(facts)) + "."


def checked(facts: Facts) -> list[str]:
    """What was looked at and what it showed, one phrase per source."""
    return [logs_checked(facts), rate_checked(facts), *extra_checked(facts)]


def logs_checked(facts: Facts) -> str:
    item, logs, service = facts.evidence.logs, facts.logs, facts.service
    if logs is None:
        reason = item.result.error.message if item.result.error else "no answer"
        return f"the logs could not be read ({clip(reason, 120)})"
    query = logs.query
    if logs.total_lines == 0:
        seen = query.services_seen if query is not None else None
        others = f"; lines of {', '.join(seen[:5])} only" if seen else ""
        scanned = query.lines_scanned if query is not None else 0
        return f"the logs ({scanned} lines scanned): no line of {service}{others}"
    span = f" from {facts.at(logs.window.first)} to {facts.at(logs.window.last)}"
    levels = ", ".join(f"{count} {level}" for level, count in logs.levels.items())
    failing = [c for c in own(facts.ranked) if c.changed]
    news = "nothing new or failing since the alert" if not failing else f"{len(failing)} kinds of warning"
    return f"the logs of {service}{span} ({logs.total_lines} lines: {levels}; {news})"


def rate_checked(facts: Facts) -> str:
    item, rate = facts.evidence.error_rate, facts.rate
    if rate is None:
        reason = item.result.error.message if item.result.error else "no answer"
        return f"the error rate in Prometheus could not be read ({clip(reason, 120)})"
    if rate.error_rate is None:
        return f"the error rate in Prometheus: no data (no request series for {facts.service})"
    return trend_line(facts) or f"error rate {rate.error_rate:.1%}"


def extra_checked(facts: Facts) -> list[str]:
    found = []
    if facts.evidence.alert_query is not None:
        found.append(latency_line(facts) or "the alert's query in Prometheus: no data")
    if facts.logs is not None and not facts.logs.stack_traces:
        found.append("no stack trace, so no code to read")
    return found
