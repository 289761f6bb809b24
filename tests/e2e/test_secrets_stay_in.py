"""Credentials in the logs stay in (issue 15, defect 6): the service under investigation logs a
cookie, a redis password, payment, cloud and CI tokens, a Slack webhook, a presigned S3 URL, a
bare AWS secret key and a password in prose; the model is given none of them, and when it quotes
those lines anyway (as if it had read them unredacted) neither WhatsApp nor the product's own logs
get them."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e import scenario
from fakes import FakeGitHub, FakeLogs, FakeOpenAI, FakePrometheus, FakeTwilio, tool_call
from support.processes import oncall_up

INGEST_TOKEN = "e2e-ingest-token"
ON_CALL = "+15551230001"

SECRETS = {
    "session cookie": ("GET /api/cart Cookie: session={s}; theme=dark", "c0ok1eV4lu3AbCdEf9876"),
    "set-cookie": ("HTTP/1.1 302 Set-Cookie: sid={s}; Path=/; HttpOnly", "s1dV4lu3ZyXwVu5432"),
    "redis password": ("connecting to redis://:{s}@cache.internal:6379/0 failed", "R3disPassw0rdXyz"),
    "stripe key": ("stripe charge failed with {s}", "sk_live_51HxAbCdEfGhIjKlMnOpQrSt"),
    "google key": ("geocode request failed ({s})", "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW"),
    "gitlab token": ("git clone with {s} denied", "glpat-xY12abCD34efGH56ijKL"),
    "npm token": ("npm publish failed: {s} expired", "npm_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"),
    "slack webhook": (
        "relay POST https://hooks.slack.com/services/{s} 404",
        "T0ABCDEF1/B0ABCDEF2/abcdefGHIJKL1234",
    ),
    "s3 signature": ("GET /r.csv?X-Amz-Date=20261124T060000Z&X-Amz-Signature={s} 403", "9f" * 32),
    "aws secret": ("creds AKIAIOSFODNN7EXAMPLE {s} loaded", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    "prose password": ("the db password is {s} for now", "hunter2-Prose-Pass"),
}


def secret_lines() -> list[dict[str, Any]]:
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return [
        {"timestamp": stamp, "level": "ERROR", "service": "checkout-1", "message": line.format(s=secret)}
        for line, secret in SECRETS.values()
    ]


def quoting_model(request: dict[str, Any]) -> dict[str, Any]:
    """A model that quotes every line with a secret, raw, in its diagnosis (as if it had read them
    unredacted). A bare value with neither shape nor context (a cookie value alone) cannot be told
    from a word; quoted as it was logged, it can."""
    raw = [line.format(s=secret) for line, secret in SECRETS.values()]
    return {
        "tool_calls": [
            tool_call(
                "send_diagnosis",
                {
                    "root_cause": "Orders without a currency raise KeyError; also seen: " + raw[1],
                    "affected_file": scenario.BUGGY_FILE,
                    "line": scenario.BUGGY_LINE,
                    "evidence": raw,
                    "priority": "P2",
                    "suggested_fix": "rotate the credentials in: " + " | ".join(raw),
                    "next_steps": ["check " + raw[2]],
                    "confidence": 0.7,
                },
            )
        ]
    }


@pytest.fixture
def fakes() -> Iterator[tuple[FakeOpenAI, FakeTwilio, dict[str, str]]]:
    with (
        FakeLogs(scenario.log_lines() + secret_lines()) as logs,
        FakePrometheus(scenario.PROMETHEUS_VALUES) as prometheus,
        FakeGitHub(
            owner="acme", repo="shop", files={scenario.BUGGY_FILE: scenario.PAYMENTS_SOURCE}
        ) as github,
        FakeOpenAI([quoting_model]) as model,
        FakeTwilio() as twilio,
    ):
        yield (
            model,
            twilio,
            {
                "INGEST_TOKEN": INGEST_TOKEN,
                "LB_URL": logs.url,
                "PROM_URL": prometheus.url,
                "GITHUB_API_URL": github.url,
                "GITHUB_TOKEN": github.token,
                "GITHUB_OWNER": github.owner,
                "GITHUB_REPO": github.repo,
                "OPENAI_API_KEY": model.api_key,
                "OPENAI_BASE_URL": model.url + "/v1",
                "TWILIO_ACCOUNT_SID": twilio.account_sid,
                "TWILIO_AUTH_TOKEN": twilio.auth_token,
                "TWILIO_WHATSAPP_NUMBER": "whatsapp:+14155238886",
                "TWILIO_API_BASE_URL": twilio.url,
                "USER_WHATSAPP_NUMBER": f"whatsapp:{ON_CALL}",
                "PUBLIC_BASE_URL": "https://oncall.example.com",
                "ONCALL_LOG_LEVEL": "DEBUG",  # every line the product can write
            },
        )


def test_credentials_in_the_logs_reach_neither_the_model_nor_whatsapp_nor_our_logs(
    clean_bus: str, fakes: tuple[FakeOpenAI, FakeTwilio, dict[str, str]], fixtures_dir: Path, tmp_path: Path
) -> None:
    model, twilio, settings = fakes
    with oncall_up({**settings, "NATS_URL": clean_bus}, tmp_path) as oncall:
        alert = (fixtures_dir / "alertmanager_webhook_real.json").read_bytes()
        accepted = httpx.post(
            oncall.url + "/alerts", content=alert, headers={"Authorization": f"Bearer {INGEST_TOKEN}"}
        )
        assert accepted.status_code == 202, accepted.text
        twilio.wait_for(lambda t: bool(t.messages), timeout=60)
        output = oncall.stdout + oncall.stderr

    prompt = json.dumps(model.chat_requests)
    whatsapp = json.dumps(twilio.messages)
    assert model.chat_requests and scenario.BUGGY_FILE in whatsapp  # the story did run
    for kind, (_, secret) in SECRETS.items():
        assert secret not in prompt, f"{kind} reached the model"
        assert secret not in whatsapp, f"{kind} reached WhatsApp"
        assert secret not in output, f"{kind} reached the product's logs"
