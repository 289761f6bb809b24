"""Redaction: known secret shapes by example, and by property over generated secrets embedded in
realistic log lines (hypothesis): no generated secret survives compression."""

from __future__ import annotations

import base64
import json
import re
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from log_samples import entry

from services.tools.log_compression import LogEntry, compress_logs
from services.tools.redaction import redact


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abc.def-ghi_jkl123", "abc.def-ghi_jkl123"),
        ("calling with bearer sometoken12345 now", "sometoken12345"),
        ("Authorization: Basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy"),
        ("connect postgres://app:s3cr3t-pw@db:5432/shop", "s3cr3t-pw"),
        ("login password=hunter2 ok", "hunter2"),
        ('{"db_password": "hunter2"}', "hunter2"),
        ("client_secret=abcdef123", "abcdef123"),
        ("token: tok_live_123456", "tok_live_123456"),
        ("GET /x?api_key=KEY123&page=2", "KEY123"),
        ("using AKIAIOSFODNN7EXAMPLE for s3", "AKIAIOSFODNN7EXAMPLE"),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0"
            ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        ),
        (
            "key -----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY----- end",
            "MIIEpAIBAAKCAQEA",
        ),
        ("mail to ravi.k+oncall@example.co.uk failed", "ravi.k+oncall@example.co.uk"),
        ("charge 4111 1111 1111 1111 declined", "4111 1111 1111 1111"),
        ("charge 4111-1111-1111-1111 declined", "4111-1111-1111-1111"),
        ("gh token ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
    ],
)
def test_redact_removes_secrets(text: str, secret: str) -> None:
    redacted = redact(text)
    assert secret not in redacted
    assert "[REDACTED" in redacted


@pytest.mark.parametrize(
    "text",
    [
        "order 1795500262165 created",  # epoch milliseconds, not a card
        "charge 4111 1111 1111 1112 declined",  # fails the Luhn check
        "token validation failed for user 7",
        "max_tokens=512 author=Ravi",
    ],
)
def test_redact_leaves_ordinary_text_alone(text: str) -> None:
    assert redact(text) == text


def test_private_key_redaction_keeps_the_line_count() -> None:
    text = "a\n-----BEGIN PRIVATE KEY-----\nAAAA\nBBBB\n-----END PRIVATE KEY-----\nb"
    assert redact(text).count("\n") == text.count("\n")


# --- generated secrets ---------------------------------------------------------------------------

ALNUM = string.ascii_letters + string.digits
B64URL = ALNUM + "-_"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def luhn_complete(prefix: str, length: int) -> str:
    """`prefix` padded with zeros to length-1 digits plus the Luhn check digit."""
    body = prefix.ljust(length - 1, "0")
    total = 0
    for i, char in enumerate(reversed(body)):
        d = int(char) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


def grouped(number: str, sep: str) -> str:
    groups = [number[i : i + 4] for i in range(0, len(number), 4)]
    return sep.join(groups)


bearer_tokens = st.text(ALNUM + "-._~+/", min_size=16, max_size=48).map(lambda t: "t" + t)
# What a key=value or URL form carries unencoded; JSON strings may hold almost anything.
plain_passwords = st.text(ALNUM + "!#$%*+-.:<>?@^_~", min_size=12, max_size=32)
url_passwords = st.text(ALNUM + "-._~!$'()*+,;=%", min_size=12, max_size=32)  # RFC 3986 userinfo
query_values = st.text(ALNUM + "-._~%", min_size=12, max_size=32)  # a query parameter's: unreserved
json_passwords = st.text(ALNUM + " !#$%&'()*+,-./:;<=>?@[]^_`{|}~", min_size=12, max_size=32).filter(
    lambda p: p.strip() == p
)
aws_keys = st.text(string.ascii_uppercase + string.digits, min_size=16, max_size=16).map(lambda k: "AKIA" + k)
JWT_HEADER = b64url(b'{"alg":"HS256","typ":"JWT"}')
jwts = st.tuples(
    st.dictionaries(st.sampled_from(["sub", "name", "role", "exp"]), st.text(ALNUM, max_size=12), min_size=1),
    st.text(B64URL, min_size=20, max_size=43),
).map(lambda p: f"{JWT_HEADER}.{b64url(json.dumps(p[0]).encode())}.{p[1]}")
private_keys = st.lists(st.text(ALNUM + "+/", min_size=64, max_size=64), min_size=2, max_size=6).map(
    lambda rows: "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(rows) + "\n-----END RSA PRIVATE KEY-----"
)
emails = st.tuples(
    st.text(string.ascii_lowercase + string.digits + "._+-", min_size=3, max_size=16).filter(
        lambda local: local[0].isalnum()
    ),
    st.text(string.ascii_lowercase + string.digits, min_size=2, max_size=12),
    st.sampled_from(["com", "io", "co.uk", "example", "dev"]),
).map(lambda p: f"{p[0]}@{p[1]}.{p[2]}")
cards = st.tuples(
    st.sampled_from(["4", "51", "55", "2221", "34", "37", "6011"]),
    st.text(string.digits, min_size=6, max_size=6),
    st.sampled_from(["", " ", "-"]),
).map(lambda p: grouped(luhn_complete(p[0] + p[1], 15 if p[0] in ("34", "37") else 16), p[2]))

# (secret strategy, the lines it is written in): `{s}` is the secret.
CONTEXTS: list[tuple[st.SearchStrategy[str], list[str]]] = [
    (bearer_tokens, ["GET /v1/me with Authorization: Bearer {s} -> 401", "retrying with bearer {s}"]),
    (
        plain_passwords,
        ["login user=ravi password={s} failed", "db connect pwd={s} host=db", "client_secret: {s}"],
    ),
    (
        url_passwords,
        ["connect postgres://app:{s}@db.internal:5432/shop refused"],
    ),
    (query_values, ["GET /cb?api_key={s}&page=2 200", "POST /login?token={s}"]),
    (json_passwords, ['config loaded {{"user": "app", "db_password": "{s}", "pool": 5}}']),
    (aws_keys, ["s3 put with AWS_ACCESS_KEY_ID={s} denied", "using access key {s} for s3"]),
    (jwts, ["session {s} expired", "Authorization: Bearer {s}"]),
    (private_keys, ["loaded signing key\n{s}\nfrom vault"]),
    (emails, ["receipt to {s} bounced", "user {s} logged in from 10.0.0.7"]),
    (cards, ["charge of 19.99 on card {s} declined", "card={s} expired"]),
]

NOISE = [
    "GET /api/v1/items/{n} 200 {n}ms",
    "cache miss for sku-{n}",
    "worker {n} picked job {n}",
    "POST /api/v1/orders 201 {n}ms",
]


Line = tuple[str, str | None]  # a log line with `{s}` where its secret goes, and the secret


@st.composite
def secret_lines(draw: st.DrawFn) -> list[Line]:
    """One or two secrets of every kind among ordinary lines, some inside tracebacks, shuffled."""
    lines: list[Line] = []
    for secrets_of_kind, templates in CONTEXTS:
        for _ in range(draw(st.integers(1, 2))):
            text = draw(st.sampled_from(templates))
            if draw(st.booleans()):
                text = (
                    f"request failed: {text}\nTraceback (most recent call last):\n"
                    f'  File "/app/handlers.py", line 12, in handle\n    raise Failed(message)\n'
                    f"Failed: {text.splitlines()[0]}"
                )
            lines.append((text, draw(secrets_of_kind)))
    noise = draw(st.lists(st.sampled_from(NOISE), max_size=30))
    lines += [(line.format(n=i), None) for i, line in enumerate(noise)]
    return draw(st.permutations(lines))


def entries(lines: list[Line], stand_in: str | None = None) -> list[LogEntry]:
    """The lines with their secrets (or `stand_in` instead), at levels cycling INFO, WARN, ERROR."""
    texts = [text if secret is None else text.format(s=stand_in or secret) for text, secret in lines]
    return [entry(text, ("INFO", "WARN", "ERROR")[i % 3]) for i, text in enumerate(texts)]


def fragments(secret: str) -> list[str]:
    """The secret and, for long ones, its second half: a partly masked secret still leaks."""
    if "PRIVATE KEY" in secret:
        return secret.split("\n")[1:-1]
    return [secret, secret[len(secret) // 2 :]] if len(secret) >= 12 else [secret]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(secret_lines())
def test_no_generated_secret_survives_compression(lines: list[Line]) -> None:
    dumped = compress_logs(entries(lines), max_tokens=100_000).model_dump_json()  # all of it, as on the bus
    dumped = re.sub(r"\[REDACTED[^\]]*\]", "[]", dumped)  # what replaced a secret is no part of it
    # The same lines with a harmless word for every secret: a fragment found there (a timestamp's
    # digits, a JSON key) comes from the log line itself, not from a secret.
    harmless = compress_logs(entries(lines, "word"), max_tokens=100_000).model_dump_json()
    for _, secret in lines:
        for fragment in fragments(secret) if secret else []:
            assert fragment not in dumped or fragment in harmless


@settings(max_examples=100, deadline=None)
@given(st.one_of(*(strategy for strategy, _ in CONTEXTS)))
def test_redact_is_idempotent(secret: str) -> None:
    once = redact(f"value {secret} end")
    assert redact(once) == once
