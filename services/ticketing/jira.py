"""Jira Cloud REST v3 client: one class, a few verbs, the outbound retry policy (docs/vendor-contracts.md §4).

Auth is basic `email:api_token`; the token lives only inside the httpx client and is never
logged nor put in an error message.
"""

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from services.runtime.outbound import (
    OutboundError,
    RetryPolicy,
    is_transient,
    never_sent,
    parse_retry_after,
    provably_unprocessed,
)

log = logging.getLogger("oncall.ticketing.jira")

# 3 tries, waits from 0.5 s to 8 s; no wait past 30 s from the first try, well inside the
# consumer's ack wait: the consumer's own redelivery backoff takes over from there.
JIRA_RETRY = RetryPolicy(attempts=3, budget_seconds=30.0, max_wait_seconds=8.0)
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
MAX_MESSAGE_CHARS = 500
_STATUS_HINTS = {
    401: "Jira rejected the credentials: check JIRA_EMAIL and JIRA_API_TOKEN",
    403: "the Jira account lacks the permission for this",
    404: "not found in Jira: check JIRA_URL and JIRA_PROJECT_KEY",
}


class JiraError(OutboundError):
    """A failed Jira call. `status` is None when no response came back (connection, timeout);
    `transient` (rate limits, Jira's 5xx, network trouble) by the outbound status classifier."""

    def __init__(
        self,
        status: int | None,
        message: str,
        retry_after: float | None = None,
        sent: bool = True,
        field_errors: dict[str, str] | None = None,
    ) -> None:
        super().__init__("Jira", status, message, is_transient(status), retry_after, sent=sent)
        # The ErrorCollection's `errors` (field -> message), e.g. why `priority` cannot be set.
        self.field_errors = field_errors or {}

    def __str__(self) -> str:
        return f"Jira {self.status or 'unreachable'}: {self.message}"


@dataclass(frozen=True)
class JiraUser:
    account_id: str
    display_name: str
    email: str | None = None


@dataclass(frozen=True)
class CreatedIssue:
    id: str
    key: str
    self_url: str


@dataclass(frozen=True)
class Transition:
    id: str
    name: str


@dataclass(frozen=True)
class IssueState:
    key: str
    status: str
    category: str  # Jira's status category key: "new", "indeterminate" or "done"
    category_changed: datetime | None


class JiraClient:
    def __init__(self, url: str, email: str, api_token: str, timeout: httpx.Timeout = TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.url,
            auth=(email, api_token),
            timeout=timeout,
            headers={"Accept": "application/json", "User-Agent": "oncall-agent"},
        )

    def __repr__(self) -> str:
        return f"JiraClient({self.url!r})"

    async def aclose(self) -> None:
        await self._http.aclose()

    def browse_url(self, key: str) -> str:
        return f"{self.url}/browse/{key}"

    async def find_assignable_users(self, project_key: str, query: str) -> list[JiraUser]:
        """Active users who can be assigned issues in the project, matched by name or email prefix."""
        found = await self._call(
            "GET",
            "/rest/api/3/user/assignable/search",
            idempotent=True,
            params={"project": project_key, "query": query},
        )
        if not isinstance(found, list):
            raise JiraError(200, f"unexpected answer to a user search: {str(found)[:200]}")
        return [
            JiraUser(u["accountId"], display_name=u.get("displayName", ""), email=u.get("emailAddress"))
            for u in found
            if isinstance(u, dict) and u.get("active", True) and u.get("accountId")
        ]

    async def create_issue(self, fields: dict[str, Any]) -> CreatedIssue:
        body = await self._call("POST", "/rest/api/3/issue", idempotent=False, json={"fields": fields})
        if not isinstance(body, dict) or not body.get("key"):
            raise JiraError(201, f"unexpected answer to an issue create: {str(body)[:200]}")
        return CreatedIssue(id=str(body.get("id", "")), key=body["key"], self_url=body.get("self", ""))

    async def search_issue_keys(self, jql: str, max_results: int) -> list[str]:
        """Keys of the issues a JQL query finds, in the query's order."""
        # /search/jql returns bare ids unless `fields` names one; "status" is the cheapest that brings keys.
        found = await self._call(
            "POST",
            "/rest/api/3/search/jql",
            idempotent=True,  # a read, despite the POST
            json={"jql": jql, "maxResults": max_results, "fields": ["status"]},
        )
        issues = found.get("issues") if isinstance(found, dict) else None
        if not isinstance(issues, list):
            raise JiraError(200, f"unexpected answer to a search: {str(found)[:200]}")
        return [str(i["key"]) for i in issues if isinstance(i, dict) and i.get("key")]

    async def add_comment(self, key: str, body: dict[str, Any]) -> None:
        """`body` is an ADF document."""
        await self._call("POST", f"{_issue_path(key)}/comment", idempotent=False, json={"body": body})

    async def assign(self, key: str, account_id: str) -> None:
        await self._call(
            "PUT", f"{_issue_path(key)}/assignee", idempotent=True, json={"accountId": account_id}
        )

    async def transitions(self, key: str) -> list[Transition]:
        """The transitions the issue's workflow allows from its current status."""
        found = await self._call("GET", f"{_issue_path(key)}/transitions", idempotent=True)
        listed = found.get("transitions") if isinstance(found, dict) else None
        if not isinstance(listed, list):
            raise JiraError(200, f"unexpected answer to a transitions query: {str(found)[:200]}")
        return [
            Transition(id=str(t["id"]), name=str(t.get("name", "")))
            for t in listed
            if isinstance(t, dict) and t.get("id") is not None
        ]

    async def transition(self, key: str, transition_id: str) -> None:
        await self._call(
            "POST",
            f"{_issue_path(key)}/transitions",
            idempotent=False,  # once done, the same transition is usually no longer allowed
            json={"transition": {"id": transition_id}},
        )

    async def issue_state(self, key: str) -> IssueState:
        """The issue's status, its category (new, indeterminate, done) and when it reached it."""
        fields = "status,resolutiondate,statuscategorychangedate"
        found = await self._call("GET", _issue_path(key), idempotent=True, params={"fields": fields})
        values = found.get("fields") if isinstance(found, dict) else None
        status = values.get("status") if isinstance(values, dict) else None
        if not isinstance(values, dict) or not isinstance(status, dict):
            raise JiraError(200, f"unexpected answer to an issue read: {str(found)[:200]}")
        category = status.get("statusCategory") or {}
        changed = values.get("statuscategorychangedate") or values.get("resolutiondate")
        return IssueState(
            key=str(found.get("key", key)),
            status=str(status.get("name", "")),
            category=str(category.get("key", "")) if isinstance(category, dict) else "",
            category_changed=parse_jira_time(changed) if isinstance(changed, str) else None,
        )

    async def link_issues(self, link_type: str, inward: str, outward: str) -> None:
        """`POST /issueLink`: e.g. "Relates" between two issues (Jira answers 201 with no body)."""
        body = {"type": {"name": link_type}, "inwardIssue": {"key": inward}, "outwardIssue": {"key": outward}}
        await self._call("POST", "/rest/api/3/issueLink", idempotent=False, json=body)

    async def _call(self, method: str, path: str, idempotent: bool, **kwargs: Any) -> Any:
        """One request under the retry policy. A create is resent only when Jira provably did not act
        on it (429/503, or no connection): after a lost response a resend could duplicate the issue."""
        return await JIRA_RETRY.call(
            lambda: self._send(method, path, **kwargs),
            may_retry=None if idempotent else provably_unprocessed,
            what=f"{method} {path}",
            logger=log,
        )

    async def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            if never_sent(exc):
                message = f"cannot connect to {self.url} ({type(exc).__name__})"
                raise JiraError(None, message, sent=False) from exc
            raise JiraError(None, f"no answer from {self.url} ({type(exc).__name__})") from exc
        if not response.is_success:
            raise JiraError(
                response.status_code,
                error_message(response),
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                field_errors=_error_collection(response)[1],
            )
        if response.status_code == 204 or not response.content:  # assignee, transitions, issueLink
            return None
        try:
            return response.json()
        except ValueError:
            # Typically a login or proxy page: the URL is not a Jira site root.
            raise JiraError(
                response.status_code, f"{self.url} did not answer like Jira (not JSON): check JIRA_URL"
            ) from None


def parse_jira_time(text: str) -> datetime | None:
    """Jira's `2026-11-30T10:00:00.000+0000` (no colon in the offset), or ISO 8601."""
    cleaned = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text.strip()).replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _issue_path(key: str) -> str:
    return f"/rest/api/3/issue/{quote(key, safe='')}"


def _error_collection(response: httpx.Response) -> tuple[list[str], dict[str, str]]:
    """Jira's ErrorCollection: `errorMessages` and the `errors` field -> message map."""
    try:
        body = response.json()
    except ValueError:
        return [], {}
    if not isinstance(body, dict):
        return [], {}
    messages = [str(m) for m in body.get("errorMessages") or [] if m]
    errors = body.get("errors")
    fields = {str(f): str(m) for f, m in errors.items()} if isinstance(errors, dict) else {}
    return messages, fields


def error_message(response: httpx.Response) -> str:
    """Jira's ErrorCollection in plain words: the messages, then `field: message` pairs."""
    messages, fields = _error_collection(response)
    detail = "; ".join([*messages, *(f"{field}: {message}" for field, message in fields.items())])
    hint = _STATUS_HINTS.get(response.status_code)
    if hint:
        message = f"{hint} ({detail})" if detail else hint
    else:
        message = detail or f"HTTP {response.status_code} {response.reason_phrase}".strip()
    return message[:MAX_MESSAGE_CHARS]
