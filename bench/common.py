"""What the benches that run `oncall up` on the demo incident share: the incident's backends as the
test suite's fakes on loopback, and the settings that point the product at them."""

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from services.runtime import demo
from tests.fakes import FakeGitHub, FakeLogs, FakeOpenAI, FakePrometheus, FakeTwilio

TOKEN = "bench-token"
ON_CALL = "+15551230001"
TWILIO_SENDER = "+14155238886"


@dataclass(frozen=True)
class DemoBackends:
    """The demo incident's logs, its metrics (4.6 errors/s of 19.8 requests/s) and its code on
    GitHub, with a temporary directory for `oncall up`'s state."""

    tmp: Path
    logs: FakeLogs
    prometheus: FakePrometheus
    github: FakeGitHub

    def settings(self) -> dict[str, str]:
        return {
            "INGEST_TOKEN": TOKEN,
            "ONCALL_DATA_DIR": str(self.tmp / "state"),
            "LB_URL": self.logs.url,
            "PROM_URL": self.prometheus.url,
            "GITHUB_API_URL": self.github.url,
            "GITHUB_TOKEN": self.github.token,
            "GITHUB_OWNER": "acme",
            "GITHUB_REPO": "inventory",
            "ONCALL_LOG_LEVEL": "WARNING",
        }


@contextmanager
def demo_backends(log_lines: list[dict[str, str]]) -> Iterator[DemoBackends]:
    with tempfile.TemporaryDirectory() as tmp:
        code_dir = demo.install_demo_code(Path(tmp) / "code")
        source = (code_dir / demo.DEMO_BUGGY_FILE).read_text()
        with (
            FakeLogs(log_lines) as logs,
            FakePrometheus(lambda q: 4.6 if "errors" in q else 19.8) as prometheus,
            FakeGitHub(owner="acme", repo="inventory", files={demo.DEMO_BUGGY_FILE: source}) as github,
        ):
            yield DemoBackends(Path(tmp), logs, prometheus, github)


def percentile(values: list[float], fraction: float) -> float:
    """The value at `fraction` (0..1) of the sorted values, the nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def model_settings(model: FakeOpenAI) -> dict[str, str]:
    return {"OPENAI_API_KEY": model.api_key, "OPENAI_BASE_URL": model.url + "/v1", "OPENAI_MODEL": "bench"}


def whatsapp_settings(twilio: FakeTwilio, numbers: str = ON_CALL) -> dict[str, str]:
    """Twilio's WhatsApp channel to `numbers` (comma-separated)."""
    return {
        "TWILIO_ACCOUNT_SID": twilio.account_sid,
        "TWILIO_AUTH_TOKEN": twilio.auth_token,
        "TWILIO_WHATSAPP_NUMBER": TWILIO_SENDER,
        "TWILIO_API_BASE_URL": twilio.url,
        "USER_WHATSAPP_NUMBER": numbers,
        "PUBLIC_BASE_URL": "https://oncall.example.com",
    }
