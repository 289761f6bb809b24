"""Fake Jira Cloud REST v3 (external-apis.md §4): issue creation validated the way Jira Cloud does it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

from .base import FakeHTTPServer, RecordedRequest, Response, json_response

MAX_SUMMARY_CHARS = 255
PROJECT_ID = "10000"
DEFAULT_USERS: tuple[dict[str, Any], ...] = (
    {
        "accountId": "5b10a2844c20165700ede21g",
        "displayName": "Alice Smith",
        "active": True,
        "emailAddress": "alice@example.com",
    },
)
# Fields a default Jira Cloud create screen accepts; others get Jira's "cannot be set" error.
_SETTABLE_FIELDS = frozenset(
    {
        "project", "issuetype", "summary", "description", "environment", "assignee", "reporter",
        "priority", "labels", "components", "duedate", "parent", "fixVersions", "versions",
    }
)  # fmt: skip
_ISSUE_PATH = re.compile(r"^/rest/api/3/issue/(?P<key>[^/]+)$")
_NOT_AN_ADF = "Operation value must be an Atlassian Document"


def jira_errors(status: int, messages: Sequence[str] = (), errors: dict[str, str] | None = None) -> Response:
    """Jira's ErrorCollection body."""
    return json_response(status, {"errorMessages": list(messages), "errors": errors or {}})


def _is_adf_node(node: Any) -> bool:
    if not isinstance(node, dict) or not isinstance(node.get("type"), str):
        return False
    # ADF text nodes need non-empty text (schema minLength 1).
    if node["type"] == "text" and not (isinstance(node.get("text"), str) and node["text"]):
        return False
    content = node.get("content", [])
    return isinstance(content, list) and all(_is_adf_node(child) for child in content)


def is_adf_document(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and value.get("type") == "doc"
        and value.get("version") == 1
        and isinstance(value.get("content"), list)
        and all(_is_adf_node(node) for node in value["content"])
    )


class FakeJira(FakeHTTPServer):
    """One project; JIRA_URL is fake.url. Created issues are kept and readable back."""

    def __init__(
        self,
        email: str = "oncall@example.com",
        api_token: str = "jira-test-token",
        project_key: str = "OPS",
        users: Sequence[dict[str, Any]] = DEFAULT_USERS,
        issue_types: Sequence[str] = ("Task", "Bug", "Incident", "Story"),
        delay_seconds: float = 0.0,
    ) -> None:
        super().__init__(delay_seconds)
        self.email = email
        self.api_token = api_token
        self.project_key = project_key
        self.users = [dict(u) for u in users]
        # Issue type ids follow Jira's numbering style: "10001", "10002", ...
        self.issue_types = {str(10001 + i): name for i, name in enumerate(issue_types)}
        self._issues: list[dict[str, Any]] = []  # {"id", "key", "fields"} in creation order

    @property
    def issues(self) -> list[dict[str, Any]]:
        """The `fields` of each created issue, in creation order."""
        with self._lock:
            return [issue["fields"] for issue in self._issues]

    def fail_next(
        self, status: int, body: Any = None, headers: dict[str, str] | None = None, times: int = 1
    ) -> None:
        """Answer the next `times` authenticated requests with this status, JSON body and headers."""
        if body is None:
            body = {"errorMessages": [f"Injected failure {status}"], "errors": {}}
        self._inject(json_response(status, body, headers), times)

    def handle(self, req: RecordedRequest) -> Response:
        if req.basic_auth() != (self.email, self.api_token):
            return jira_errors(
                401, ["You are not authenticated. Authentication required to perform this operation."]
            )
        if injected := self._take_injected():
            return injected
        if req.method == "GET" and req.path == "/rest/api/3/user/assignable/search":
            return self._assignable_search(req)
        if req.method == "POST" and req.path == "/rest/api/3/issue":
            return self._create_issue(req)
        if req.method == "GET" and (match := _ISSUE_PATH.match(req.path)):
            return self._get_issue(unquote(match["key"]))
        return jira_errors(404, [f"No resource found for {req.method} {req.path}"])

    def _user_json(self, user: dict[str, Any]) -> dict[str, Any]:
        return {
            "self": f"{self.url}/rest/api/3/user?accountId={user['accountId']}",
            "accountType": "atlassian",
            "timeZone": "Etc/UTC",
            "locale": "en_US",
            **user,
        }

    def _assignable_search(self, req: RecordedRequest) -> Response:
        project = req.arg("project")
        if not project:
            return jira_errors(
                400, ["At least one of 'issueKey', 'project' or 'actionDescriptorId' is required."]
            )
        if project not in (self.project_key, PROJECT_ID):
            return jira_errors(404, [f"No project could be found with key '{project}'."])
        query = (req.arg("query") or "").lower()
        try:
            start, limit = int(req.arg("startAt", "0") or 0), int(req.arg("maxResults", "50") or 50)
        except ValueError:
            return jira_errors(400, ["startAt and maxResults must be integers."])

        def matches(user: dict[str, Any]) -> bool:
            name = str(user.get("displayName", "")).lower()
            email = str(user.get("emailAddress", "")).lower()
            return (
                name.startswith(query)
                or email.startswith(query)
                or any(word.startswith(query) for word in name.split())
            )

        found = [self._user_json(u) for u in self.users if u.get("active", True) and matches(u)]
        return json_response(200, found[start : start + limit])

    def _create_issue(self, req: RecordedRequest) -> Response:
        try:
            body = req.json()
        except ValueError:
            body = None
        fields = body.get("fields", {}) if isinstance(body, dict) else None
        if not isinstance(fields, dict):
            return jira_errors(
                400, ["Invalid request payload. Refer to the REST API documentation and try again."]
            )
        if errors := self._field_errors(fields):
            return jira_errors(400, errors=errors)
        with self._lock:
            issue_id = str(10001 + len(self._issues))
            key = f"{self.project_key}-{len(self._issues) + 1}"
            self._issues.append({"id": issue_id, "key": key, "fields": fields})
        return json_response(
            201, {"id": issue_id, "key": key, "self": f"{self.url}/rest/api/3/issue/{issue_id}"}
        )

    def _field_errors(self, fields: dict[str, Any]) -> dict[str, str]:
        """All field errors at once, as Jira reports them."""
        errors: dict[str, str] = {}
        for name in fields:
            if name not in _SETTABLE_FIELDS and not name.startswith("customfield_"):
                errors[name] = (
                    f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."
                )

        project = fields.get("project")
        if not isinstance(project, dict) or not (
            project.get("key") == self.project_key or str(project.get("id")) == PROJECT_ID
        ):
            errors["project"] = "valid project is required"

        issuetype = fields.get("issuetype")
        if not isinstance(issuetype, dict):
            errors["issuetype"] = "Specify an issue type"
        elif (
            issuetype.get("name") not in self.issue_types.values()
            and str(issuetype.get("id")) not in self.issue_types
        ):
            errors["issuetype"] = "The issue type selected is invalid."

        summary = fields.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            errors["summary"] = "You must specify a summary of the issue."
        elif len(summary) > MAX_SUMMARY_CHARS:
            errors["summary"] = "Summary must be less than 255 characters."
        elif "\n" in summary or "\r" in summary:
            errors["summary"] = "The summary is invalid because it contains newline characters."

        for adf_field in ("description", "environment"):
            if fields.get(adf_field) is not None and not is_adf_document(fields[adf_field]):
                errors[adf_field] = _NOT_AN_ADF

        if (assignee_error := self._assignee_error(fields.get("assignee"))) is not None:
            errors["assignee"] = assignee_error

        labels = fields.get("labels", [])
        if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
            errors["labels"] = "Labels must be a list of strings."
        elif spaced := [label for label in labels if " " in label]:
            errors["labels"] = f"The label '{spaced[0]}' contains spaces which is invalid."
        return errors

    def _assignee_error(self, assignee: Any) -> str | None:
        if assignee is None:  # explicit null leaves the issue unassigned
            return None
        if not isinstance(assignee, dict):
            return 'Specify the user by accountId, e.g. {"accountId": "..."}'
        if "accountId" not in assignee:
            legacy = next((k for k in ("name", "username", "key") if k in assignee), None)
            if legacy:
                return (
                    f"Specify the user by accountId; '{legacy}' is not supported "
                    "(removed from Jira Cloud APIs for GDPR)."
                )
            return "Specify the user by accountId"
        account_id = assignee["accountId"]
        user = next((u for u in self.users if u["accountId"] == account_id), None)
        if user is None:
            return f"User '{account_id}' does not exist."
        if not user.get("active", True):
            return f"User '{account_id}' cannot be assigned issues."
        return None

    def _get_issue(self, id_or_key: str) -> Response:
        with self._lock:
            issue = next((i for i in self._issues if id_or_key in (i["id"], i["key"])), None)
        if issue is None:
            return jira_errors(404, ["Issue does not exist or you do not have permission to see it."])
        return json_response(200, {**issue, "self": f"{self.url}/rest/api/3/issue/{issue['id']}"})
