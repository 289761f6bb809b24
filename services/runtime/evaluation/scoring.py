"""Deterministic scoring of the message the on-call person reads (the console channel's text).

- **pass**: every required fragment is in the message (case-insensitive; a fragment given as a
  list is satisfied by any one of its alternatives), no forbidden fragment is in its first
  FORBIDDEN_WINDOW characters (the red herrings must not lead), and, when the scenario sets
  `max_confidence`, the diagnosis is not more confident than that;
- **confident-wrong**: not a pass while the diagnosis's confidence (from the
  `oncall.incidents.diagnosed` event) is at least CONFIDENT;
- the error class, when the scenario names one, is reported (named or not) and not scored.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.runtime.evaluation.scenarios import Expect

FORBIDDEN_WINDOW = 300
CONFIDENT = 0.6


@dataclass(frozen=True)
class Score:
    passed: bool
    confident_wrong: bool
    missing: tuple[str, ...]  # the required fragments not found ("a | b" for alternatives)
    forbidden_found: tuple[str, ...]  # the forbidden fragments in the first FORBIDDEN_WINDOW chars
    overconfident: bool  # above the scenario's max_confidence
    error_class_named: bool | None  # None: the scenario names no error class

    def why(self) -> str:
        """What failed, in one line ("" for a pass)."""
        reasons = []
        if self.missing:
            reasons.append("missing " + ", ".join(f"'{m}'" for m in self.missing))
        if self.forbidden_found:
            reasons.append(
                f"leads with ({FORBIDDEN_WINDOW} chars) " + ", ".join(f"'{f}'" for f in self.forbidden_found)
            )
        if self.overconfident:
            reasons.append("too confident")
        return "; ".join(reasons)


def contains(text: str, fragment: str) -> bool:
    return fragment.casefold() in text.casefold()


def score(message: str, expect: Expect, confidence: float | None) -> Score:
    missing = tuple(
        " | ".join(options)
        for options in expect.required
        if not any(contains(message, option) for option in options)
    )
    head = message[:FORBIDDEN_WINDOW]
    forbidden = tuple(fragment for fragment in expect.forbidden if contains(head, fragment))
    overconfident = (
        expect.max_confidence is not None and confidence is not None and confidence > expect.max_confidence
    )
    passed = bool(message) and not missing and not forbidden and not overconfident
    return Score(
        passed=passed,
        confident_wrong=not passed and confidence is not None and confidence >= CONFIDENT,
        missing=missing,
        forbidden_found=forbidden,
        overconfident=overconfident,
        error_class_named=None if expect.error_class is None else contains(message, expect.error_class),
    )


def said_first(message: str, tag: str | None = None) -> str:
    """What the message says first about the incident: the root cause's first line when the message
    has a "Root cause" heading, else its first line that is not the heading, title or priority."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        plain = line.strip("*_ ").lower()
        if plain.startswith("root cause"):
            rest = line.split(":", 1)[1].strip(" *_") if ":" in line else ""
            if rest:
                return rest
            if i + 1 < len(lines):
                return lines[i + 1]
    for line in lines[1:]:
        plain = line.strip("*_ ").lower()
        if (tag and tag in line) or plain.startswith(("priority", "severity")) or line.startswith("*"):
            continue
        return line
    return lines[0] if lines else ""
