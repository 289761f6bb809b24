"""Redaction: known secret shapes by example, and by property over generated secrets embedded in
realistic log lines (hypothesis): no generated secret survives log compression (what the model is
given), nor a model's reply quoting those lines (what reaches WhatsApp, Jira and our logs)."""

from __future__ import annotations

import base64
import json
import random
import re
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.runtime.redaction import redact, redact_model_message
from services.tools.log_compression import LogEntry, compress_logs


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
        ("GET /cart Cookie: session=9f8e7d6c5b4a; theme=dark", "9f8e7d6c5b4a"),
        ("HTTP/1.1 200 Set-Cookie: sid=Zm9vYmFyYmF6; Path=/; HttpOnly", "Zm9vYmFyYmF6"),
        ("connecting to redis://:Sup3rS3cret@cache:6379/0", "Sup3rS3cret"),
        ("stripe said no to sk_live_51HxAbCdEfGhIjKlMnOpQrSt", "sk_live_51HxAbCdEfGhIjKlMnOpQrSt"),
        ("geocoder key AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW", "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW"),
        ("git clone with glpat-xY12abCD34efGH56ijKL", "glpat-xY12abCD34efGH56ijKL"),
        ("npm publish npm_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8", "npm_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"),
        ("post to https://hooks.slack.com/services/T0ABCDEF1/B0ABCDEF2/abcdefGHIJKL1234", "abcdefGHIJKL1234"),
        ("GET /r.csv?X-Amz-Date=20261124T060000Z&X-Amz-Signature=" + "a1" * 32 + " 403", "a1" * 32),
        ("creds AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI/K7MDENG"),
        ("the db password is hunter22 for now", "hunter22"),
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
        "commit 3f786850e387550fdab836ed7e6dc881de23001b deployed",  # a git SHA: lower-case hex
        "at com/example/inventory/InventoryService12.java line 4",
        "loaded services/diagnoser/investigationRunner",
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

cookie_values = st.text(ALNUM + "-._~%+/=", min_size=16, max_size=40).map(lambda v: "c" + v)
stripe_keys = st.tuples(
    st.sampled_from(["sk_live_", "sk_test_", "rk_live_"]), st.text(ALNUM, min_size=24, max_size=40)
)
google_keys = st.text(B64URL, min_size=35, max_size=35).map(lambda k: "AIza" + k)
gitlab_tokens = st.text(B64URL, min_size=20, max_size=20).map(lambda k: "glpat-" + k)
npm_tokens = st.text(ALNUM, min_size=36, max_size=36).map(lambda k: "npm_" + k)
slack_paths = st.tuples(
    st.text(string.ascii_uppercase + string.digits, min_size=8, max_size=10),
    st.text(string.ascii_uppercase + string.digits, min_size=8, max_size=10),
    st.text(ALNUM, min_size=24, max_size=24),
).map(lambda p: f"T{p[0]}/B{p[1]}/{p[2]}")
s3_signatures = st.text("0123456789abcdef", min_size=64, max_size=64)


def random_aws_secret(rng: random.Random) -> str:
    """A real secret key is random: 40 characters drawn uniformly from base64's alphabet."""
    return "".join(rng.choice(ALNUM + "/+") for _ in range(40))


bare_aws_secrets = st.randoms(use_true_random=True).map(random_aws_secret)
prose_passwords = st.text(ALNUM + "!#$%*+-.:<>?@^_~", min_size=10, max_size=24)
S3_URL = (
    "GET https://bucket.s3.amazonaws.com/report.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20261124%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20261124T060000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature={s} 403"
)

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
    (
        cookie_values,
        [
            "GET /cart Cookie: session={s}; theme=dark",
            "HTTP/1.1 302 Set-Cookie: sid={s}; Path=/; HttpOnly; Secure",
            'upstream headers {{"cookie": "lang=en; sid={s}"}}',
        ],
    ),
    (url_passwords, ["connecting to redis://:{s}@cache.internal:6379/0 failed: timeout"]),
    (stripe_keys.map(lambda p: p[0] + p[1]), ["stripe charge failed with {s}", "using {s} for payouts"]),
    (google_keys, ["geocode request failed ({s})", "maps client init {s}"]),
    (gitlab_tokens, ["git clone https://gitlab.com/acme/shop.git with {s} denied"]),
    (npm_tokens, ["npm publish failed: {s} expired"]),
    (slack_paths, ["alert relay POST https://hooks.slack.com/services/{s} 404"]),
    (s3_signatures, [S3_URL]),
    (
        bare_aws_secrets,
        ["aws configure set aws_secret_access_key {s}", "creds AKIAIOSFODNN7EXAMPLE {s} loaded"],
    ),
    (
        prose_passwords,
        [
            "the db password is {s}",
            "reset done, new password for ravi is {s}",
            "admin password was {s} before",
        ],
    ),
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


def entry(message: str, level: str) -> LogEntry:
    return LogEntry(timestamp="2026-11-24T06:00:00Z", level=level, message=message, service="inventory-1")


def entries(lines: list[Line], stand_in: str | None = None) -> list[LogEntry]:
    """The lines with their secrets (or `stand_in` instead), at levels cycling INFO, WARN, ERROR."""
    texts = [text if secret is None else text.format(s=stand_in or secret) for text, secret in lines]
    return [entry(text, ("INFO", "WARN", "ERROR")[i % 3]) for i, text in enumerate(texts)]


def fragments(secret: str) -> list[str]:
    """The secret and, for long ones, its second half: a partly masked secret still leaks."""
    if "PRIVATE KEY" in secret:
        return secret.split("\n")[1:-1]
    return [secret, secret[len(secret) // 2 :]] if len(secret) >= 12 else [secret]


# About 30 secrets an example: 100 examples are ~3,000 generated secrets per test.
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


def strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in strings_in(item)]
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings_in(item)]
    return []


def model_reply(lines: list[Line], stand_in: str | None = None) -> dict[str, Any]:
    """What a model writes quoting every line it read: a text answer, a diagnosis and a ticket."""
    quoted = [text if secret is None else text.format(s=stand_in or secret) for text, secret in lines]
    diagnosis = {"root_cause": "see evidence", "evidence": quoted, "suggested_fix": quoted[-1]}
    ticket = {"summary": quoted[0][:80], "description": "\n".join(quoted), "assignee": "ravi"}
    return {
        "role": "assistant",
        "content": "The logs say:\n" + "\n".join(quoted),
        "tool_calls": [
            {
                "id": "a",
                "type": "function",
                "function": {"name": "send_diagnosis", "arguments": json.dumps(diagnosis)},
            },
            {
                "id": "b",
                "type": "function",
                "function": {"name": "create_jira_ticket", "arguments": json.dumps(ticket)},
            },
        ],
    }


def written(message: dict[str, Any]) -> str:
    """Every string the model wrote, its calls' arguments decoded (as they reach WhatsApp and Jira)."""
    calls = [json.loads(call["function"]["arguments"]) for call in message["tool_calls"]]
    text = "\n".join([message["content"], *strings_in(calls)])
    return re.sub(r"\[REDACTED[^\]]*\]", "[]", text)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(secret_lines())
def test_no_generated_secret_survives_in_what_the_model_writes(lines: list[Line]) -> None:
    out = written(redact_model_message(model_reply(lines)))
    harmless = written(redact_model_message(model_reply(lines, "word")))
    for _, secret in lines:
        for fragment in fragments(secret) if secret else []:
            assert fragment not in out or fragment in harmless


def test_a_model_message_without_secrets_is_unchanged() -> None:
    message = model_reply([("GET /api/v1/items/7 200 12ms", None)])
    assert redact_model_message(message) == message
