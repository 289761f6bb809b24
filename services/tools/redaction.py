"""Secrets out of text that leaves a tool: tokens, passwords, keys, e-mails and card numbers.

Log lines and code are written by strangers and end up in a model's context and on a phone:
every string a tool returns goes through `redact`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# Any prefix may come before the key (db_password, client_secret): only the value is replaced.
_SECRET_KEY = (
    r"password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|credentials?|auth"
)
_CARD = re.compile(r"(?<![\w-])[2-6]\d{3}(?:[ -]?\d){9,15}(?![\w-])")


def _private_key(match: re.Match[str]) -> str:
    # Keep the line count so code windows keep their line numbers.
    return "[REDACTED:private_key]" + "\n" * match.group(0).count("\n")


def _key_value(match: re.Match[str]) -> str:
    """A quoted value is replaced up to its closing quote (it may hold `;`, `}` or spaces)."""
    value = match.group(0)[match.end(2) - match.start(0) :]
    quote = value[0] if value[0] in "\"'" else ""
    return f"{match[1]}{match[2]}{quote}[REDACTED]{quote}"


def _card(match: re.Match[str]) -> str:
    return "[REDACTED:card]" if _luhn_ok(re.sub(r"\D", "", match.group(0))) else match.group(0)


def _luhn_ok(digits: str) -> bool:
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = int(char) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


Replacement = str | Callable[[re.Match[str]], str]

# (triggers, pattern, replacement): a rule runs only when one of its lower-case triggers is in
# the text, which keeps redaction cheap on the thousands of ordinary lines. Order matters: whole
# blocks and structured tokens before the generic key=value and e-mail rules.
_REDACTIONS: tuple[tuple[tuple[str, ...], re.Pattern[str], Replacement], ...] = (
    (
        ("private key",),
        re.compile(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY-----|.*)", re.S
        ),
        _private_key,
    ),
    (("eyj",), re.compile(r"\beyJ[\w-]{5,}\.eyJ[\w-]{5,}\.[\w-]*"), "[REDACTED:jwt]"),
    (
        ("authorization",),
        re.compile(
            r"(?i)\b(authorization\"?'?\s*[:=]\s*\"?'?(?:(?:bearer|basic|token|digest)\s+)?)[^\s\"',;]+"
        ),
        r"\1[REDACTED]",
    ),
    (("bearer",), re.compile(r"(?i)\b(bearer\s+)(?!\[REDACTED)[\w.~+/=-]{8,}"), r"\1[REDACTED]"),
    (("://",), re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]+):[^\s@/]+@"), r"\1:[REDACTED]@"),
    (
        ("pass", "pwd", "secret", "token", "key", "credential", "auth"),  # every _SECRET_KEY has one
        re.compile(
            rf"(?i)({_SECRET_KEY})\b([\"']?\s*[:=]\s*)(?!\[REDACTED|[\"']\[REDACTED)"
            r"(?:\"[^\"\n]*\"|'[^'\n]*'|[^\s\"'&,;)}\]]+)"
        ),
        _key_value,
    ),
    (("akia", "asia"), re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), "[REDACTED:aws_key]"),
    (
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "xox", "sk-"),
        re.compile(
            r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_\w{30,}|xox[abprs]-[\w-]{10,}|sk-[\w-]{20,})"
        ),
        "[REDACTED:token]",
    ),
    (("@",), re.compile(r"[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"), "[REDACTED:email]"),
    (("",), _CARD, _card),
)


def redact(text: str) -> str:
    """Replace secrets (tokens, passwords, keys, e-mails, card numbers) with `[REDACTED...]` markers."""
    lower = text.lower()
    for triggers, pattern, replacement in _REDACTIONS:
        if any(trigger in lower for trigger in triggers):
            text = pattern.sub(replacement, text)
    return text
