"""The model's claims checked against what it was shown: the file and line it names must appear in
the gathered evidence (a stack frame, the code window) or in a tool result it received, and each
quoted log line must be a real one. A small model invents plausible paths and lines; the person
paged must know which parts of the diagnosis the evidence does not back."""

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from services.contracts.models import Diagnosis
from services.contracts.tool_results import StackFrame
from services.diagnoser.evidence import Evidence
from services.runtime.text import clip

# Something that claims to be a log line (rather than a figure or prose): a level, an exception,
# a traceback, a time of day.
_LOG_MARKERS = re.compile(
    r"\b(ERROR|WARN(ING)?|FATAL|CRITICAL|PANIC|Traceback|panic:)|[A-Za-z]+(Error|Exception)\b|\d\d:\d\d:\d\d"
)
_ELLIPSIS = re.compile(r"\s*(?:\.\.\.|…)\s*")
_SPACE = re.compile(r"\s+")
MIN_FRAGMENT_CHARS = 8
MAX_SHOWN_CHARS = 80
# An unverified claim halves the confidence, and it stays below this.
UNVERIFIED_CONFIDENCE_CAP = 0.4
# A rule-based answer this sure, naming a file, is said beside a model answer that contradicts it.
STRONG_RULES_CONFIDENCE = 0.7
NOTHING_CITED = "the diagnosis cites no file and no line of the evidence"


def unverified_claims(diagnosis: Diagnosis, evidence: Evidence, seen: Iterable[str]) -> list[str]:
    """The claims of `diagnosis` the evidence does not show, as they are named to the human:
    `file:line`, and each quoted log line not found. `seen`: every tool result the model read."""
    texts = [*evidence_texts(evidence), *(decoded(t) for t in seen)]
    claims = []
    if diagnosis.affected_file and not location_shown(
        diagnosis.affected_file, diagnosis.line, frames_of(evidence), evidence, texts
    ):
        claims.append(location(diagnosis.affected_file, diagnosis.line))
    corpus = normalized("\n".join(texts))
    for quote in diagnosis.evidence:
        if _LOG_MARKERS.search(quote) and not quoted_in(quote, corpus):
            claims.append(f'"{clip(quote.strip(), MAX_SHOWN_CHARS)}"')
    backed = any(quoted_in(quote, corpus) for quote in diagnosis.evidence if quote.strip())
    if not diagnosis.affected_file and not backed:
        # The 1.5B, given nothing to go on, restated the alert as its cause and advised retries,
        # with confidence: an answer resting on nothing is said to be so.
        claims.append(NOTHING_CITED)
    return claims


def with_claims_checked(
    diagnosis: Diagnosis, unverified: list[str], rules: Diagnosis | None = None
) -> Diagnosis:
    """The diagnosis as sent: unverified claims named and the confidence lowered; when the rules
    have a strong answer elsewhere and the model's location is not backed, their reading too."""
    if not unverified:
        return diagnosis
    confidence = min(diagnosis.confidence * 0.5, UNVERIFIED_CONFIDENCE_CAP)
    update: dict[str, Any] = {"unverified": unverified, "confidence": round(confidence, 2)}
    claimed = location(diagnosis.affected_file or "", diagnosis.line)
    if rules is not None and NOTHING_CITED in unverified:
        # Whatever the rules found (or what they checked and did not find) is all there is.
        where = f" (`{location(rules.affected_file, rules.line)}`)" if rules.affected_file else ""
        update["rules_view"] = f"{clip(rules.root_cause.strip(), 300)}{where}"
    elif (
        rules is not None
        and rules.affected_file
        and rules.confidence >= STRONG_RULES_CONFIDENCE
        and claimed in unverified
        and not (
            same_file(rules.affected_file, diagnosis.affected_file or "") and rules.line == diagnosis.line
        )
    ):
        where = location(rules.affected_file, rules.line)
        update["rules_view"] = f"{clip(rules.root_cause.strip(), 300)} (`{where}`)"
    return diagnosis.model_copy(update=update)


def location(path: str, line: int | None) -> str:
    return f"{path}:{line}" if line else path


def same_file(a: str, b: str) -> bool:
    """The same file written two ways: a container path and a repository path (`/app/x/y.py`
    and `x/y.py`), or a path and its file name."""
    a, b = _path(a), _path(b)
    if not a or not b:
        return False
    short, long = sorted((a, b), key=len)
    return long == short or long.endswith("/" + short)


def _path(path: str) -> str:
    return path.strip().strip("`'\"").replace("\\", "/").lstrip("./").lstrip("/")


def frames_of(evidence: Evidence) -> list[StackFrame]:
    frames: list[StackFrame] = []
    for logs in (evidence.log_result, evidence.recent_log_result):
        if logs is None:
            continue
        frames += [f for trace in logs.stack_traces for f in trace.frames]
        frames += logs.code_frames
        if logs.top_frame is not None:
            frames.append(logs.top_frame)
    if evidence.frame is not None:
        frames.append(evidence.frame)
    return frames


def location_shown(
    path: str, line: int | None, frames: list[StackFrame], evidence: Evidence, texts: list[str]
) -> bool:
    for frame in frames:
        names = [frame.file, frame.source_path or "", frame.lookup_path or ""]
        if any(same_file(n, path) for n in names if n) and (line is None or frame.line == line):
            return True
    window = evidence.code_window
    if window is not None and same_file(window.path, path):
        numbers = [n for n, _ in window.lines]
        if line is None or (numbers and min(numbers) <= line <= max(numbers)):
            return True
    # A tool result the model read naming the file, with the line number in it.
    name = _path(path).rsplit("/", 1)[-1]
    number = re.compile(rf"(?<!\d){line}(?!\d)") if line else None
    return any(name in text and (number is None or number.search(text)) for text in texts)


def quoted_in(quote: str, corpus: str) -> bool:
    """Every part of the quote (split at an ellipsis) is in the evidence, whitespace aside."""
    text = normalized(quote.strip().strip("`'\"> "))
    parts = [p for p in _ELLIPSIS.split(text) if len(p) >= MIN_FRAGMENT_CHARS] or [text]
    return all(p in corpus for p in parts if p)


def normalized(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def evidence_texts(evidence: Evidence) -> list[str]:
    """Every string and number of the gathered results, unabridged (the model may have read them cut)."""
    return [
        "\n".join(_strings(item.result.model_dump(mode="json"))) for item in evidence.items if item.result.ok
    ]


def decoded(text: str) -> str:
    """A tool message's content as text: its strings when it is JSON, else as it is."""
    try:
        return "\n".join(_strings(json.loads(text)))
    except ValueError:  # cut to fit the context: no longer JSON
        return text.replace('\\"', '"').replace("\\n", "\n")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int | float):
        yield str(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)
