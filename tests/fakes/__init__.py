"""Fake vendor HTTP servers for end-to-end tests; each follows the contract in docs/vendor-contracts.md."""

from .alertmanager_fake import FakeAlertmanager
from .base import FakeHTTPServer, RecordedRequest
from .github_fake import FakeGitHub
from .jira_fake import FakeJira
from .logs_fake import FakeLogs
from .openai_fake import FakeOpenAI, Step, tool_call
from .prometheus_fake import FakePrometheus
from .twilio_fake import FakeTwilio

__all__ = [
    "FakeAlertmanager",
    "FakeGitHub",
    "FakeHTTPServer",
    "FakeJira",
    "FakeLogs",
    "FakeOpenAI",
    "FakePrometheus",
    "FakeTwilio",
    "RecordedRequest",
    "Step",
    "tool_call",
]
