"""Secrets out of text that leaves the product: tokens, passwords, keys, cookies, e-mails, cards.

Log lines and code are written by strangers and end up in a model's context; what the model
writes (it is asked to quote log lines) ends up on a phone, in Jira and in our logs. So every
string a tool returns, and every reply of the model, goes through `redact` (the tools service and
the diagnoser's model client). It lives in `runtime` because both use it.

Cost matters: a fetch_logs result is thousands of lines. A rule runs only when a word it needs
is in the line (a substring search); most log lines trigger none but the two always-on rules
(cards, bare AWS secret keys), whose patterns fail fast.

Hand-written rules rather than a detector library: detect-secrets ran 30-60x slower per line on
the reference incident's logs (bench/README.md) and still missed prose passwords and cookies.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from typing import Any

# Any prefix may come before the key (db_password, client_secret, X-Amz-Signature): only the value
# is replaced. `sig` is an Azure SAS signature's query parameter.
_SECRET_KEY = (
    r"password|passwd|passphrase|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key"
    r"|credentials?|auth|signature|sig"
)
_CARD = re.compile(r"(?<![\w-])[2-6]\d{3}(?:[ -]?\d){9,15}(?![\w-])")
# An AWS secret access key written alone: 40 characters of base64's alphabet. Paths and words of
# that length exist too; a random key changes character class (upper, lower, digit, symbol) at
# about 25 of its 39 joints, a path or CamelCase word at far fewer.
_BARE_KEY = re.compile(r"(?<![\w/+=.-])[A-Za-z0-9/+]{40}(?![\w/+=.-])")
_BARE_KEY_MIN_CHANGES = 14


def _private_key(match: re.Match[str]) -> str:
    # Keep the line count so code windows keep their line numbers.
    return "[REDACTED:private_key]" + "\n" * match.group(0).count("\n")


def _key_value(match: re.Match[str]) -> str:
    """A quoted value is replaced up to its closing quote (it may hold `;`, `}` or spaces)."""
    value = match.group(0)[match.end(2) - match.start(0) :]
    quote = value[0] if value[0] in "\"'" else ""
    return f"{match[1]}{match[2]}{quote}[REDACTED]{quote}"


_COOKIE_PAIR = re.compile(r"([\w.!#$%&'*+^`|~-]+)=([^;\n\"]*)")


def _cookie(match: re.Match[str]) -> str:
    """Every value of a Cookie or Set-Cookie header (names kept: they say which session)."""
    value = match[3]
    if "=" not in value:
        return f"{match[1]}{match[2]}[REDACTED]" if value.strip() else match.group(0)
    return match[1] + match[2] + _COOKIE_PAIR.sub(r"\1=[REDACTED]", value)


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


def _char_class(char: str) -> int:
    return 0 if char.islower() else 1 if char.isupper() else 2 if char.isdigit() else 3


def _bare_key(match: re.Match[str]) -> str:
    text = match.group(0)
    if not (any(c.isupper() for c in text) and any(c.islower() for c in text)):
        return text  # hex digests, numbers
    classes = [_char_class(c) for c in text]
    changes = sum(1 for a, b in itertools.pairwise(classes) if a != b)
    return "[REDACTED:aws_secret]" if changes >= _BARE_KEY_MIN_CHANGES else text


Replacement = str | Callable[[re.Match[str]], str]

# (name, triggers, pattern, replacement): a rule runs only when one of its lower-case triggers is
# in the text (a substring search, far cheaper than any regex), which keeps redaction cheap on
# the thousands of ordinary lines; "" means always. Order matters: whole blocks and structured
# tokens before the generic key=value, prose and e-mail rules.
_RULES: tuple[tuple[str, tuple[str, ...], re.Pattern[str], Replacement], ...] = (
    (
        "private_key",
        ("private key",),
        re.compile(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY-----|.*)", re.S
        ),
        _private_key,
    ),
    ("jwt", ("eyj",), re.compile(r"\beyJ[\w-]{5,}\.eyJ[\w-]{5,}\.[\w-]*"), "[REDACTED:jwt]"),
    (
        "authorization",
        ("authorization",),
        re.compile(
            r"(?i)\b(authorization\"?'?\s*[:=]\s*\"?'?(?:(?:bearer|basic|token|digest)\s+)?)[^\s\"',;]+"
        ),
        r"\1[REDACTED]",
    ),
    ("bearer", ("bearer",), re.compile(r"(?i)\b(bearer\s+)(?!\[REDACTED)[\w.~+/=-]{8,}"), r"\1[REDACTED]"),
    (
        "cookie",
        ("cookie",),
        re.compile(r"(?i)\b((?:set-)?cookie)(\"?'?\s*[:=]\s*[\"']?)([^\n\"]*)"),
        _cookie,
    ),
    # A password in a URL, with or without a user name (redis://:password@host).
    ("url", ("://",), re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]*):[^\s@/]+@"), r"\1:[REDACTED]@"),
    (
        "slack_webhook",
        ("hooks.slack.com",),
        re.compile(r"(hooks\.slack\.com/(?:services|workflows|triggers)/)[\w/-]+"),
        r"\1[REDACTED]",
    ),
    (
        "key_value",
        ("pass", "pwd", "secret", "token", "key", "credential", "auth", "sig"),  # every _SECRET_KEY has one
        re.compile(
            rf"(?i)({_SECRET_KEY})\b([\"']?\s*[:=]\s*)(?!\[REDACTED|[\"']\[REDACTED)"
            r"(?:\"[^\"\n]*\"|'[^'\n]*'|[^\s\"'&,;)}\]]+)"
        ),
        _key_value,
    ),
    (
        "prose_password",
        ("pass", "pwd"),
        re.compile(
            r"(?i)\b(pass(?:word|wd|phrase)?|pwd)\b(\s+(?:for\s+[\w@.-]+\s+)?(?:is|was|to|now|set to)\s+)"
            r"(?!\[REDACTED)([\"']?)[^\s\"']+"
        ),
        r"\1\2\3[REDACTED]\3",
    ),
    ("aws_key", ("akia", "asia"), re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), "[REDACTED:aws_key]"),
    (
        "token",
        (
            "ghp_",
            "gho_",
            "ghu_",
            "ghs_",
            "ghr_",
            "github_pat_",
            "xox",
            "sk-",
            "k_live_",
            "k_test_",
            "aiza",
            "glpat-",
            "npm_",
            "ya29.",
        ),
        re.compile(
            r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_\w{30,}|xox[abprse]-[\w-]{10,}|sk-[\w-]{20,}"
            r"|[rsp]k_(?:live|test)_[A-Za-z0-9]{10,}|AIza[\w-]{30,}|glpat-[\w-]{20,}|npm_[A-Za-z0-9]{30,}"
            r"|ya29\.[\w-]{20,})"
        ),
        "[REDACTED:token]",
    ),
    (
        "email",
        ("@",),
        re.compile(r"[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
        "[REDACTED:email]",
    ),
    ("card", ("",), _CARD, _card),
    ("aws_secret", ("",), _BARE_KEY, _bare_key),
)


_TRIGGERED = tuple(
    (triggers, pattern, replacement) for _, triggers, pattern, replacement in _RULES if all(triggers)
)
_ALWAYS = tuple((pattern, replacement) for _, triggers, pattern, replacement in _RULES if not all(triggers))
# Whether any trigger is in the text at all: one scan in C, and most log lines have none.
_ANY_TRIGGER = re.compile(
    "|".join(re.escape(trigger) for triggers, _, _ in _TRIGGERED for trigger in triggers)
)


def redact(text: str) -> str:
    """Replace secrets with `[REDACTED...]` markers. Idempotent."""
    lower = text.lower()
    if _ANY_TRIGGER.search(lower):
        for triggers, pattern, replacement in _TRIGGERED:
            for trigger in triggers:
                if trigger in lower:
                    text = pattern.sub(replacement, text)
                    break
    for pattern, replacement in _ALWAYS:  # the rules without a trigger, last in _RULES
        text = pattern.sub(replacement, text)
    return text


def redact_json_text(text: str) -> str:
    """JSON (a tool call's arguments) with every string in it redacted, still JSON; text that is
    not JSON is redacted as text."""
    try:
        value = json.loads(text)
    except ValueError:
        return redact(text)
    redacted = redact_strings(value)
    return text if redacted == value else json.dumps(redacted, ensure_ascii=False)


def redact_strings(value: Any) -> Any:
    """Every string in a JSON-like value redacted (keys kept)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [redact_strings(item) for item in value]
    if isinstance(value, dict):
        return {key: redact_strings(item) for key, item in value.items()}
    return value


def redact_model_message(message: dict[str, Any]) -> dict[str, Any]:
    """A model's reply (an OpenAI chat message) with its text and its tool calls' arguments
    redacted: the model quotes the logs it read, and what it writes reaches WhatsApp, Jira and
    our logs."""
    redacted = dict(message)
    if isinstance(message.get("content"), str):
        redacted["content"] = redact(message["content"])
    if message.get("tool_calls"):
        redacted["tool_calls"] = [
            {
                **call,
                "function": {
                    **call["function"],
                    "arguments": redact_json_text(call["function"]["arguments"]),
                },
            }
            if isinstance(call.get("function", {}).get("arguments"), str)
            else call
            for call in message["tool_calls"]
        ]
    return redacted
