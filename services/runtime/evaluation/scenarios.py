"""Scenario files (`eval/scenarios/*.toml`): one incident each, and what it becomes at run time.

A scenario says what the alert is, what the load balancer's logs, Prometheus and the code
checkout show, and what a good WhatsApp message must (and must not) say. Times are offsets:
`alert.started` is relative to the moment the alert is posted (`-120s`: it started two minutes
before the investigation); every other time in the file (log lines, metric steps, commits) is
relative to the alert's start. Offsets are a sign, a number and a unit: `-3600s`, `+90s`, `-45m`,
`-2h`, `-26d`, `0s`; the end of a repeated log line may also be `now`. The format is described in
full in `eval/README.md`.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import subprocess
import tomllib
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

KINDS = (
    "old-noise",  # an old, repeated ERROR before the alert; the new exception is the cause
    "latency",  # a latency alert without errors: slow SQL, a saturated pool
    "symptom",  # many generic 500s of the service; fewer lines naming the failing dependency
    "code-bug",  # an exception at a line of the service's own code
    "restart",  # OOMKilled, exit code 137, liveness failures
    "config",  # a crash loop on a configuration error
    "dependency",  # a dependency that cannot be reached (DNS, pool exhausted)
    "resource",  # disk full, permission denied
    "recovered",  # the alert had recovered when investigated
    "no-evidence",  # nothing useful to find: say what was checked, do not be confident
)
LANGUAGES = ("python", "java", "kotlin", "go", "node", "dotnet", "rust", "php", "ruby", "none")
LEVELS = ("DEBUG", "INFO", "WARN", "WARNING", "ERROR", "CRITICAL", "FATAL")

# A repeated line ending `now` is generated this far past the moment the alert is posted; the
# backend serves only the lines at or before the time of each request.
NOW_MARGIN_SECONDS = 900.0
MAX_LINES_PER_ENTRY = 20_000
DEFAULT_STARTED = -120.0
DEFAULT_REQUESTS = ((-86400.0, 18.0),)

_OFFSET = re.compile(r"^([+-]?)(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PLACEHOLDER = re.compile(r"\{(rid|ms|n|id|ip)\}")


class ScenarioError(ValueError):
    """A scenario file that does not follow the format; the message names the file and the field."""


def parse_offset(value: Any, where: str) -> float:
    """`-3600s`, `+90s`, `-45m`, `-2h`, `-26d`, `0s` (or the number 0) -> seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value == 0:
        return 0.0
    match = _OFFSET.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ScenarioError(f"{where}: {value!r} is not an offset such as -3600s, +90s, -45m, -2h or -26d")
    sign, number, unit = match.groups()
    seconds = float(number) * _UNIT[unit]
    return -seconds if sign == "-" else seconds


# --- the parts of a scenario -----------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    name: str
    service: str
    severity: str
    started: float  # seconds relative to the moment the alert is posted (negative: in the past)
    summary: str
    description: str
    expr: str
    labels: dict[str, str]


Fragment = tuple[str, ...]  # alternatives: any one of them satisfies the requirement


@dataclass(frozen=True)
class Expect:
    summary: str
    required: tuple[Fragment, ...]
    forbidden: tuple[str, ...]
    error_class: str | None
    max_confidence: float | None
    location: tuple[str, int, str] | None  # (repository path, line, text on that line)


@dataclass(frozen=True)
class LogSpec:
    messages: tuple[str, ...]
    level: str
    services: tuple[str, ...]
    at: float | None
    start: float | None
    end: float | None  # None: now
    every: float | None
    jitter: float
    pick: str
    split_lines: bool


@dataclass(frozen=True)
class MetricSeries:
    """A step function of time (offsets from the alert's start); None is "no sample"."""

    steps: tuple[tuple[float, float | None], ...]
    match: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)

    def value_at(self, offset: float) -> float | None:
        value: float | None = None
        for at, step_value in self.steps:
            if at > offset:
                break
            value = step_value
        return value


@dataclass(frozen=True)
class Change:
    path: str
    old: str
    new: str


@dataclass(frozen=True)
class Commit:
    at: float
    author: str
    message: str
    changes: tuple[Change, ...]
    added: tuple[str, ...] = ()  # files this commit created


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path
    kind: str
    language: str
    title: str
    modelled_on: str
    alert: Alert
    expect: Expect
    logs: tuple[LogSpec, ...]
    errors: MetricSeries | None
    requests: MetricSeries | None
    latency_p90: MetricSeries | None
    extra_metrics: tuple[MetricSeries, ...]
    code: dict[str, str]
    commits: tuple[Commit, ...]

    # --- run time ----------------------------------------------------------------------

    def log_lines(self, alert_start: datetime, posted: datetime) -> list[tuple[float, dict[str, str]]]:
        """Every log line of the scenario as (epoch seconds, LB line), oldest first."""
        t0 = alert_start.timestamp()
        now_offset = posted.timestamp() - t0 + NOW_MARGIN_SECONDS
        lines: list[tuple[float, int, dict[str, str]]] = []
        order = 0
        for index, spec in enumerate(self.logs):
            rng = random.Random(f"{self.name}/{index}")
            for n, offset in enumerate(_moments(spec, now_offset, rng)):
                message = _fill(_choose(spec, n, rng), n, rng)
                service = (
                    spec.services[n % len(spec.services)] if len(spec.services) > 1 else spec.services[0]
                )
                parts = message.split("\n") if spec.split_lines else [message]
                for part in parts:
                    stamp = t0 + offset
                    line = {
                        "timestamp": _iso_ms(stamp),
                        "level": spec.level,
                        "message": part,
                        "service": service,
                    }
                    lines.append((stamp, order, line))
                    order += 1
        lines.sort(key=lambda item: (item[0], item[1]))  # a split trace keeps its order
        return [(stamp, line) for stamp, _, line in lines]

    def webhook(self, alert_start: datetime, run_id: str) -> dict[str, Any]:
        """The Alertmanager v4 webhook, under a route of its own so that each run is a new incident."""
        alert = self.alert
        labels = {
            "alertname": alert.name,
            "service": alert.service,
            "severity": alert.severity,
            "namespace": "prod",
            **alert.labels,
        }
        annotations = {"summary": alert.summary}
        if alert.description:
            annotations["description"] = alert.description
        label_text = ",".join(f"{name}={value}" for name, value in sorted(labels.items()))
        fingerprint = hashlib.sha256(f"{run_id}|{label_text}".encode()).hexdigest()[:16]
        generator = f"http://prom.eval:9090/graph?g0.expr={quote_plus(alert.expr)}&g0.tab=1"
        route = f'{{}}/{{eval_run="{run_id}",scenario="{self.name}"}}'
        group_labels = {"alertname": alert.name, "service": alert.service}
        group_text = ", ".join(f'{name}="{value}"' for name, value in group_labels.items())
        return {
            "receiver": "oncall-agent",
            "status": "firing",
            "alerts": [
                {
                    "status": "firing",
                    "labels": labels,
                    "annotations": annotations,
                    "startsAt": _iso_ms(alert_start.timestamp()),
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": generator if alert.expr else "",
                    "fingerprint": fingerprint,
                }
            ],
            "groupLabels": group_labels,
            "commonLabels": dict(labels),
            "commonAnnotations": dict(annotations),
            "externalURL": "http://alertmanager.eval:9093",
            "version": "4",
            "groupKey": f"{route}:{{{group_text}}}",
            "truncatedAlerts": 0,
        }

    def install_code(self, code_dir: Path, alert_start: datetime) -> None:
        """Replace `code_dir`'s content with this scenario's files and a git history of its commits
        (the state of every file at each commit, the newest being the files as given)."""
        code_dir.mkdir(parents=True, exist_ok=True)
        for child in code_dir.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        if shutil.which("git") is None:  # the files without their history (recent_commits says so)
            for path, text in self.code.items():
                (code_dir / path).parent.mkdir(parents=True, exist_ok=True)
                (code_dir / path).write_text(text, encoding="utf-8")
            return
        commits = self.commits or (Commit(-30 * 86400.0, "Sam Okafor", "import the service", ()),)
        states = _history_states(self.code, commits)
        env = {
            **os.environ,
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_SYSTEM": os.devnull,
            "LC_ALL": "C",
            "GIT_TERMINAL_PROMPT": "0",
        }

        def git(*args: str, when: datetime | None = None) -> None:
            stamp = (
                {"GIT_AUTHOR_DATE": when.isoformat(), "GIT_COMMITTER_DATE": when.isoformat()} if when else {}
            )
            subprocess.run(
                ["git", *args], cwd=code_dir, env={**env, **stamp}, check=True, capture_output=True
            )

        git("init", "-q", "-b", "main")
        for commit, files in zip(commits, states, strict=True):
            for path in list(self.code):
                target = code_dir / path
                if path in files:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(files[path], encoding="utf-8")
                elif target.exists():
                    target.unlink()
            git("add", "-A")
            email = commit.author.split()[0].lower() + "@shop.example"
            identity = ("-c", f"user.name={commit.author}", "-c", f"user.email={email}")
            when = alert_start + timedelta(seconds=commit.at)
            git(*identity, "commit", "-q", "--allow-empty", "-m", commit.message, when=when)


def _moments(spec: LogSpec, now_offset: float, rng: random.Random) -> list[float]:
    if spec.at is not None:
        return [spec.at]
    assert spec.start is not None and spec.every is not None
    end = now_offset if spec.end is None else spec.end
    moments: list[float] = []
    moment = spec.start
    while moment <= end and len(moments) < MAX_LINES_PER_ENTRY:
        moments.append(moment)
        step = spec.every * (1 + rng.uniform(-spec.jitter, spec.jitter))
        moment += max(step, 0.001)
    return moments


def _choose(spec: LogSpec, n: int, rng: random.Random) -> str:
    if len(spec.messages) == 1:
        return spec.messages[0]
    if spec.pick == "cycle":
        return spec.messages[n % len(spec.messages)]
    return rng.choice(spec.messages)


def _fill(message: str, n: int, rng: random.Random) -> str:
    """Placeholders `{rid}`, `{ms}`, `{n}`, `{id}`, `{ip}`; any other brace is left as it is."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "rid":
            return f"{rng.getrandbits(64):016x}"
        if name == "ms":
            return str(max(3, int(rng.lognormvariate(3.3, 0.5))))
        if name == "n":
            return str(n + 1)
        if name == "id":
            return str(rng.randint(10000, 99999))
        return f"10.{rng.randint(0, 31)}.{rng.randint(0, 255)}.{rng.randint(2, 254)}"

    return _PLACEHOLDER.sub(value, message)


def _iso_ms(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _history_states(code: dict[str, str], commits: tuple[Commit, ...]) -> list[dict[str, str]]:
    """The files at each commit, oldest first: the files as given, with the changes of the commits
    after it undone (newest first); a file a later commit added does not exist yet."""
    states: list[dict[str, str]] = []
    files: dict[str, str | None] = dict(code)
    for commit in reversed(commits):
        states.append({path: text for path, text in files.items() if text is not None})
        for change in commit.changes:
            text = files.get(change.path) or ""
            files[change.path] = text.replace(change.new, change.old, 1)
        for path in commit.added:
            files[path] = None
    states.reverse()
    return states


# --- loading -----------------------------------------------------------------------------


def load_scenarios(directory: Path) -> list[Scenario]:
    """Every `*.toml` in `directory`, sorted by name; the first invalid file raises ScenarioError."""
    if not directory.is_dir():
        raise ScenarioError(f"{directory}: no such directory of scenarios")
    scenarios = [load_scenario(path) for path in sorted(directory.glob("*.toml"))]
    seen: dict[str, Path] = {}
    for scenario in scenarios:
        if scenario.name in seen:
            raise ScenarioError(
                f"{scenario.path}: name {scenario.name!r} is also used by {seen[scenario.name]}"
            )
        seen[scenario.name] = scenario.path
    return scenarios


def load_scenario(path: Path) -> Scenario:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: {exc}") from exc
    return _Reader(path).scenario(data)


class _Reader:
    """Strict reading: unknown keys and wrong types are errors naming the file and the field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, message: str) -> ScenarioError:
        return ScenarioError(f"{self.path.name}: {where}: {message}")

    def table(
        self, data: Any, where: str, allowed: set[str], required: Collection[str] = ()
    ) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.fail(where, "expected a table")
        unknown = set(data) - allowed
        if unknown:
            raise self.fail(where, f"unknown key(s) {sorted(unknown)}; known: {sorted(allowed)}")
        missing = set(required) - set(data)
        if missing:
            raise self.fail(where, f"missing key(s) {sorted(missing)}")
        return data

    def text(self, data: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
        value = data.get(key, default)
        if not isinstance(value, str) or (default is None and not value.strip()):
            raise self.fail(f"{where}.{key}", "expected a non-empty string")
        return value

    def number(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(where, f"expected a number, got {value!r}")
        return float(value)

    def scenario(self, data: dict[str, Any]) -> Scenario:
        top = self.table(
            data,
            "file",
            {
                "name",
                "kind",
                "language",
                "title",
                "modelled_on",
                "alert",
                "expect",
                "logs",
                "metrics",
                "code",
                "commits",
            },
            {"kind", "language", "title", "alert", "expect"},
        )
        name = self.text(top, "name", "file", default=self.path.stem)
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
            raise self.fail("name", f"{name!r}: use lower-case letters, digits and dashes")
        kind = self.text(top, "kind", "file")
        if kind not in KINDS:
            raise self.fail("kind", f"{kind!r} is not one of {', '.join(KINDS)}")
        language = self.text(top, "language", "file")
        if language not in LANGUAGES:
            raise self.fail("language", f"{language!r} is not one of {', '.join(LANGUAGES)}")
        code = self.code(top.get("code", []))
        metrics = self.metrics(top.get("metrics", {}))
        scenario = Scenario(
            name=name,
            path=self.path,
            kind=kind,
            language=language,
            title=self.text(top, "title", "file"),
            modelled_on=self.text(top, "modelled_on", "file", default=""),
            alert=self.alert(top["alert"]),
            expect=self.expect(top["expect"]),
            logs=tuple(self.log(entry, f"logs[{i}]") for i, entry in enumerate(self.array(top, "logs"))),
            errors=metrics.get("errors"),
            requests=metrics.get("requests"),
            latency_p90=metrics.get("latency_p90"),
            extra_metrics=tuple(metrics.get("extra", ())),
            code=code,
            commits=tuple(
                self.commit(entry, f"commits[{i}]") for i, entry in enumerate(self.array(top, "commits"))
            ),
        )
        self.check_history(scenario)
        self.check_location(scenario)
        return scenario

    def array(self, data: dict[str, Any], key: str) -> list[Any]:
        value = data.get(key, [])
        if not isinstance(value, list):
            raise self.fail(key, "expected an array of tables ([[...]])")
        return value

    def alert(self, data: Any) -> Alert:
        allowed = {"name", "service", "severity", "started", "summary", "description", "expr", "labels"}
        alert = self.table(data, "alert", allowed, {"name", "service", "summary"})
        labels = alert.get("labels", {})
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise self.fail("alert.labels", "expected a table of strings")
        started = parse_offset(alert.get("started", "-120s"), f"{self.path.name}: alert.started")
        if started > 0:
            raise self.fail("alert.started", "an alert cannot start after it is posted")
        return Alert(
            name=self.text(alert, "name", "alert"),
            service=self.text(alert, "service", "alert"),
            severity=self.text(alert, "severity", "alert", default="critical"),
            started=started,
            summary=self.text(alert, "summary", "alert"),
            description=self.text(alert, "description", "alert", default=""),
            expr=self.text(alert, "expr", "alert", default=""),
            labels=dict(labels),
        )

    def expect(self, data: Any) -> Expect:
        allowed = {"summary", "required", "forbidden", "error_class", "max_confidence", "location"}
        expect = self.table(data, "expect", allowed, {"summary", "required"})
        required: list[Fragment] = []
        for i, item in enumerate(expect["required"] if isinstance(expect["required"], list) else [None]):
            options = item if isinstance(item, list) else [item]
            if not options or not all(isinstance(o, str) and o.strip() for o in options):
                raise self.fail(f"expect.required[{i}]", "expected a string or a list of strings")
            required.append(tuple(options))
        if not required:
            raise self.fail("expect.required", "name at least one fragment the message must contain")
        forbidden = expect.get("forbidden", [])
        if not isinstance(forbidden, list) or not all(isinstance(f, str) and f.strip() for f in forbidden):
            raise self.fail("expect.forbidden", "expected a list of strings")
        error_class = expect.get("error_class")
        if error_class is not None and not isinstance(error_class, str):
            raise self.fail("expect.error_class", "expected a string")
        max_confidence = expect.get("max_confidence")
        if max_confidence is not None:
            max_confidence = self.number(max_confidence, "expect.max_confidence")
            if not 0 <= max_confidence <= 1:
                raise self.fail("expect.max_confidence", "expected a number from 0 to 1")
        location = None
        if "location" in expect:
            where = self.table(expect["location"], "expect.location", {"file", "line", "contains"})
            line = where.get("line")
            if not isinstance(line, int) or line < 1:
                raise self.fail("expect.location.line", "expected a line number")
            location = (
                self.text(where, "file", "expect.location"),
                line,
                self.text(where, "contains", "expect.location"),
            )
        return Expect(
            summary=self.text(expect, "summary", "expect"),
            required=tuple(required),
            forbidden=tuple(forbidden),
            error_class=error_class,
            max_confidence=max_confidence,
            location=location,
        )

    def log(self, data: Any, where: str) -> LogSpec:
        allowed = {
            "message",
            "messages",
            "level",
            "service",
            "at",
            "from",
            "to",
            "every",
            "jitter",
            "pick",
            "split_lines",
        }
        entry = self.table(data, where, allowed)
        if ("message" in entry) == ("messages" in entry):
            raise self.fail(where, "give either `message` or `messages`")
        messages = [entry["message"]] if "message" in entry else entry["messages"]
        if not isinstance(messages, list) or not messages or not all(isinstance(m, str) for m in messages):
            raise self.fail(where, "messages: expected a non-empty list of strings")
        level = self.text(entry, "level", where, default="INFO").upper()
        if level not in LEVELS:
            raise self.fail(f"{where}.level", f"{level!r} is not one of {', '.join(LEVELS)}")
        services = entry.get("service", [])
        services = [services] if isinstance(services, str) else services
        if (
            not isinstance(services, list)
            or not services
            or not all(isinstance(s, str) and s for s in services)
        ):
            raise self.fail(
                f"{where}.service", "expected the LB's service name (a replica such as checkout-1)"
            )
        repeated = "every" in entry or "from" in entry
        if ("at" in entry) == repeated:
            raise self.fail(where, "give either `at` (one line) or `from` and `every` (a repeated line)")
        jitter = self.number(entry.get("jitter", 0.25), f"{where}.jitter")
        if not 0 <= jitter < 1:
            raise self.fail(f"{where}.jitter", "expected a fraction from 0 to 1")
        pick = entry.get("pick", "random")
        if pick not in ("random", "cycle"):
            raise self.fail(f"{where}.pick", "expected 'random' or 'cycle'")
        split = entry.get("split_lines", False)
        if not isinstance(split, bool):
            raise self.fail(f"{where}.split_lines", "expected true or false")
        label = f"{self.path.name}: {where}"
        at = start = end = every = None
        if repeated:
            if "from" not in entry or "every" not in entry:
                raise self.fail(where, "a repeated line needs both `from` and `every`")
            start = parse_offset(entry["from"], f"{label}.from")
            end = None if entry.get("to", "now") == "now" else parse_offset(entry["to"], f"{label}.to")
            every = parse_offset(entry["every"], f"{label}.every")
            if every <= 0:
                raise self.fail(f"{where}.every", "expected a positive interval")
            if end is not None and end < start:
                raise self.fail(f"{where}.to", "ends before it starts")
        else:
            at = parse_offset(entry["at"], f"{label}.at")
        return LogSpec(
            messages=tuple(messages),
            level=level,
            services=tuple(services),
            at=at,
            start=start,
            end=end,
            every=every,
            jitter=jitter,
            pick=pick,
            split_lines=split,
        )

    def steps(self, value: Any, where: str) -> tuple[tuple[float, float | None], ...]:
        if not isinstance(value, list) or not value:
            raise self.fail(where, 'expected steps such as [["-1h", 20.0], ["0s", 24.5]]')
        steps: list[tuple[float, float | None]] = []
        for i, step in enumerate(value):
            if not isinstance(step, list) or len(step) != 2:
                raise self.fail(f"{where}[{i}]", 'expected [offset, value] (value "absent" for no sample)')
            at = parse_offset(step[0], f"{self.path.name}: {where}[{i}]")
            number = None if step[1] == "absent" else self.number(step[1], f"{where}[{i}]")
            steps.append((at, number))
        if [s[0] for s in steps] != sorted(s[0] for s in steps):
            raise self.fail(where, "steps must be in time order")
        return tuple(steps)

    def metrics(self, data: Any) -> dict[str, Any]:
        metrics = self.table(data, "metrics", {"errors", "requests", "latency_p90", "extra"})
        found: dict[str, Any] = {
            key: MetricSeries(self.steps(metrics[key], f"metrics.{key}"))
            for key in ("errors", "requests", "latency_p90")
            if key in metrics
        }
        extra = []
        for i, entry in enumerate(metrics.get("extra", [])):
            where = f"metrics.extra[{i}]"
            series = self.table(entry, where, {"match", "values", "labels"}, {"match", "values"})
            match = series["match"] if isinstance(series["match"], list) else [series["match"]]
            if not match or not all(isinstance(m, str) and m for m in match):
                raise self.fail(f"{where}.match", "expected the text(s) a query must contain")
            labels = series.get("labels", {})
            if not isinstance(labels, dict):
                raise self.fail(f"{where}.labels", "expected a table of strings")
            extra.append(MetricSeries(self.steps(series["values"], f"{where}.values"), tuple(match), labels))
        found["extra"] = extra
        return found

    def code(self, value: Any) -> dict[str, str]:
        if not isinstance(value, list):
            raise self.fail("code", "expected an array of tables ([[code]])")
        files: dict[str, str] = {}
        for i, entry in enumerate(value):
            item = self.table(entry, f"code[{i}]", {"path", "text"}, {"path", "text"})
            path = self.text(item, "path", f"code[{i}]")
            if path.startswith("/") or ".." in path.split("/"):
                raise self.fail(f"code[{i}].path", "a repository-relative path without '..'")
            files[path] = self.text(item, "text", f"code[{i}]")
        return files

    def commit(self, data: Any, where: str) -> Commit:
        allowed = {"at", "author", "message", "changes", "added"}
        entry = self.table(data, where, allowed, {"at", "author", "message"})
        added = entry.get("added", [])
        if not isinstance(added, list) or not all(isinstance(a, str) for a in added):
            raise self.fail(f"{where}.added", "expected a list of the paths this commit created")
        changes = []
        for i, change in enumerate(entry.get("changes", [])):
            item = self.table(change, f"{where}.changes[{i}]", {"path", "old", "new"}, {"path", "old", "new"})
            old, new = item["old"], item["new"]
            if not isinstance(old, str) or not isinstance(new, str) or not new:
                raise self.fail(f"{where}.changes[{i}]", "old and new are strings, new not empty")
            changes.append(Change(self.text(item, "path", f"{where}.changes[{i}]"), old, new))
        return Commit(
            at=parse_offset(entry["at"], f"{self.path.name}: {where}.at"),
            author=self.text(entry, "author", where),
            message=self.text(entry, "message", where),
            changes=tuple(changes),
            added=tuple(added),
        )

    def check_history(self, scenario: Scenario) -> None:
        """Each change's `new` text must be in its file at that commit, so undoing it is exact."""
        files = dict(scenario.code)
        if [c.at for c in scenario.commits] != sorted(c.at for c in scenario.commits):
            raise self.fail("commits", "list the commits oldest first")
        for index in range(len(scenario.commits) - 1, -1, -1):
            for change in scenario.commits[index].changes:
                if change.path not in scenario.code:
                    raise self.fail(f"commits[{index}]", f"{change.path} is not one of the [[code]] files")
                if change.new not in files.get(change.path, ""):
                    raise self.fail(
                        f"commits[{index}]", f"{change.new!r} is not in {change.path} at that commit"
                    )
                files[change.path] = files[change.path].replace(change.new, change.old, 1)
            for path in scenario.commits[index].added:
                if path not in files:
                    raise self.fail(
                        f"commits[{index}].added", f"{path} is not one of the [[code]] files then"
                    )
                del files[path]

    def check_location(self, scenario: Scenario) -> None:
        if scenario.expect.location is None:
            return
        file, line, contains = scenario.expect.location
        if file not in scenario.code:
            raise self.fail("expect.location.file", f"{file} is not one of the [[code]] files")
        lines = scenario.code[file].splitlines()
        if line > len(lines) or contains not in lines[line - 1]:
            found = lines[line - 1] if line <= len(lines) else "(past the end of the file)"
            raise self.fail("expect.location", f"{file}:{line} is {found!r}, which lacks {contains!r}")
