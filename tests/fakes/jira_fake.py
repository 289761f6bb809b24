"""Fake Jira Cloud REST v3 (docs/vendor-contracts.md §4): issues, comments, assignees, transitions and the
label search, validated the way Jira Cloud does it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from .base import FakeHTTPServer, RecordedRequest, Response, json_response

MAX_SUMMARY_CHARS = 255
PROJECT_ID = "10000"
DEFAULT_PRIORITIES = ("Highest", "High", "Medium", "Low", "Lowest")
# Jira Cloud's simplified workflow: every status can be reached from every other one.
# (transition id, transition name, target status, status category key)
DEFAULT_WORKFLOW: tuple[tuple[str, str, str, str], ...] = (
    ("11", "To Do", "To Do", "new"),
    ("21", "In Progress", "In Progress", "indeterminate"),
    ("31", "Done", "Done", "done"),
)
_STATUS_CATEGORY_IDS = {"new": 2, "indeterminate": 4, "done": 3}
# The properties of `SearchAndReconcileRequestBean`; Jira refuses any other in the body.
_SEARCH_JQL_PROPERTIES = frozenset(
    {"jql", "nextPageToken", "maxResults", "fields", "expand", "properties", "fieldsByKeys", "failFast",
     "reconcileIssues"}
)  # fmt: skip
DEFAULT_USERS: tuple[dict[str, Any], ...] = (
    {
        "accountId": "5b10a2844c20165700ede21g",
        "displayName": "Alice Smith",
        "active": True,
        "emailAddress": "alice@example.com",
    },
)
# Fields a default Jira Cloud create screen accepts; others get Jira's "cannot be set" error.
DEFAULT_SCREEN_FIELDS = frozenset(
    {
        "project", "issuetype", "summary", "description", "environment", "assignee", "reporter",
        "priority", "labels", "components", "duedate", "parent", "fixVersions", "versions",
    }
)  # fmt: skip
_ISSUE_PATH = re.compile(r"^/rest/api/3/issue/(?P<key>[^/]+)(?P<sub>/comment|/assignee|/transitions)?$")
# Jira Cloud's default issue link types (GET /rest/api/3/issueLinkType).
_LINK_TYPES = ("Blocks", "Cloners", "Duplicate", "Relates")
_NOT_AN_ADF = "Operation value must be an Atlassian Document"
_BAD_PAYLOAD = "Invalid request payload. Refer to the REST API documentation and try again."
_UNBOUNDED = "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."
# The JQL this fake understands: `field = value` clauses joined by AND, then an optional ORDER BY.
_JQL_CLAUSE = re.compile(r'^\s*(?P<field>\w+)\s*=\s*(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<bare>[\w-]+))\s*$')
_JQL_ORDER = re.compile(r"(?:^|\s+)ORDER\s+BY\s+(?P<field>\w+)(?:\s+(?P<direction>ASC|DESC))?\s*$", re.I)


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
        priorities: Sequence[str] = DEFAULT_PRIORITIES,
        screen_fields: Collection[str] = DEFAULT_SCREEN_FIELDS,
        workflow: Sequence[tuple[str, str, str, str]] = DEFAULT_WORKFLOW,
        search_lag_seconds: float = 0.0,
        create_answer_seconds: float = 0.0,
    ) -> None:
        super().__init__(delay_seconds)
        # Jira Cloud's search reads an index updated after the write: a new issue is found by JQL
        # only some time after the create answered (seconds, sometimes more). 0: at once.
        self.search_lag_seconds = search_lag_seconds
        # A slow create: the issue exists at once (the write is done) but the answer comes this
        # much later, past a client's timeout if longer than it.
        self.create_answer_seconds = create_answer_seconds
        # How many more creates are answered that late; None: every one.
        self.slow_creates: int | None = None
        self.email = email
        self.api_token = api_token
        self.project_key = project_key
        self.users = [dict(u) for u in users]
        # Issue type ids follow Jira's numbering style: "10001", "10002", ...
        self.issue_types = {str(10001 + i): name for i, name in enumerate(issue_types)}
        self.priorities = {str(i + 1): name for i, name in enumerate(priorities)}
        self.screen_fields = frozenset(screen_fields)
        self.workflow = list(workflow)
        # {"id", "key", "fields", "status", "comments"} in creation order
        self._issues: list[dict[str, Any]] = []
        self._links: list[tuple[str, str, str]] = []

    @property
    def issues(self) -> list[dict[str, Any]]:
        """The `fields` of each created issue as sent (assignee kept current), in creation order."""
        with self._lock:
            return [issue["fields"] for issue in self._issues]

    def status(self, key: str) -> str:
        """The issue's workflow status name, e.g. "To Do"."""
        return str(self._issue(key)["status"])

    def comments(self, key: str) -> list[dict[str, Any]]:
        """The ADF bodies of the issue's comments, oldest first."""
        return [comment["body"] for comment in self._issue(key)["comments"]]

    def add_issue(self, fields: dict[str, Any], status: str = "To Do") -> str:
        """An issue created outside the product (e.g. by a previous run); returns its key."""
        with self._lock:
            return self._store(fields, status)

    def _issue(self, key: str) -> dict[str, Any]:
        with self._lock:
            return next(i for i in self._issues if key in (i["id"], i["key"]))

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
        if req.method == "POST" and req.path == "/rest/api/3/search/jql":
            return self._search_jql(req)
        if req.method == "POST" and req.path == "/rest/api/3/issueLink":
            return self._link_issues(req)
        if match := _ISSUE_PATH.match(req.path):
            return self._on_issue(req, unquote(match["key"]), match["sub"])
        return jira_errors(404, [f"No resource found for {req.method} {req.path}"])

    def _on_issue(self, req: RecordedRequest, id_or_key: str, sub: str | None) -> Response:
        with self._lock:
            issue = next((i for i in self._issues if id_or_key in (i["id"], i["key"])), None)
        if issue is None:
            return jira_errors(404, ["Issue does not exist or you do not have permission to see it."])
        route = {
            ("GET", None): self._get_issue,
            ("POST", "/comment"): self._add_comment,
            ("PUT", "/assignee"): self._assign,
            ("GET", "/transitions"): self._get_transitions,
            ("POST", "/transitions"): self._do_transition,
        }.get((req.method, sub))
        if route is None:
            return jira_errors(405, [f"{req.method} is not supported on {req.path}"])
        return route(req, issue)

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
            return jira_errors(400, [_BAD_PAYLOAD])
        if errors := self._field_errors(fields):
            return jira_errors(400, errors=errors)
        with self._lock:
            key = self._store(fields, "To Do")
            issue_id = self._issues[-1]["id"]
        if self._take_slow():
            time.sleep(self.create_answer_seconds)
        return json_response(
            201, {"id": issue_id, "key": key, "self": f"{self.url}/rest/api/3/issue/{issue_id}"}
        )

    def _take_slow(self) -> bool:
        with self._lock:
            if self.create_answer_seconds <= 0 or self.slow_creates == 0:
                return False
            if self.slow_creates is not None:
                self.slow_creates -= 1
            return True

    def _store(self, fields: dict[str, Any], status: str) -> str:
        """Append an issue; the caller holds the lock."""
        issue_id = str(10001 + len(self._issues))
        key = f"{self.project_key}-{len(self._issues) + 1}"
        self._issues.append(
            {
                "id": issue_id,
                "key": key,
                "fields": fields,
                "status": status,
                "comments": [],
                "searchable_at": time.monotonic() + self.search_lag_seconds,
                "category_changed": datetime.now(UTC),
            }
        )
        return key

    def _field_errors(self, fields: dict[str, Any]) -> dict[str, str]:
        """All field errors at once, as Jira reports them."""
        errors: dict[str, str] = {}
        for name in fields:
            if name not in self.screen_fields and not name.startswith("customfield_"):
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

        if "priority" in fields and "priority" in self.screen_fields:
            priority = fields["priority"]
            if not isinstance(priority, dict) or not ({"name", "id"} & set(priority)):
                errors["priority"] = "Specify the Priority (id or name) in the string format"
            elif (
                priority.get("name", self.priorities.get(str(priority.get("id"))))
                not in self.priorities.values()
            ):
                errors["priority"] = (
                    f"Priority name '{priority.get('name', priority.get('id'))}' is not valid"
                )

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

    def _status_json(self, name: str) -> dict[str, Any]:
        category = next((c for _, _, status, c in self.workflow if status == name), "new")
        return {
            "self": f"{self.url}/rest/api/3/status/{name}",
            "name": name,
            "id": name,
            "statusCategory": {"id": _STATUS_CATEGORY_IDS[category], "key": category},
        }

    def _issue_json(self, issue: dict[str, Any], fields: Sequence[str] | None = None) -> dict[str, Any]:
        status = self._status_json(issue["status"])
        changed = _jira_time(issue["category_changed"])
        done = status["statusCategory"]["key"] == "done"
        all_fields = {
            **issue["fields"],
            "status": status,
            # Jira's system fields: when the status category last changed, and when it was resolved
            # (null while unresolved; a done status sets it in Jira's default workflows).
            "statuscategorychangedate": changed,
            "resolutiondate": changed if done else None,
        }
        if fields is not None:
            all_fields = {name: value for name, value in all_fields.items() if name in fields}
        return {
            "id": issue["id"],
            "key": issue["key"],
            "self": f"{self.url}/rest/api/3/issue/{issue['id']}",
            "fields": all_fields,
        }

    def _get_issue(self, req: RecordedRequest, issue: dict[str, Any]) -> Response:
        # `fields=status,resolutiondate`: only those (Jira's comma list); none: all of them.
        wanted = [f for value in req.query.get("fields", []) for f in value.split(",") if f]
        return json_response(200, self._issue_json(issue, wanted or None))

    def _add_comment(self, req: RecordedRequest, issue: dict[str, Any]) -> Response:
        body = _json_object(req)
        if body is None:
            return jira_errors(400, [_BAD_PAYLOAD])
        if not body.get("body"):
            return jira_errors(400, errors={"comment": "Comment body can not be empty!"})
        if not is_adf_document(body["body"]):
            return jira_errors(400, errors={"comment": _NOT_AN_ADF})
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
        with self._lock:
            comment_id = str(10000 + sum(len(i["comments"]) for i in self._issues))
            comment = {
                "self": f"{self.url}/rest/api/3/issue/{issue['id']}/comment/{comment_id}",
                "id": comment_id,
                "author": {"accountId": "bot", "displayName": self.email, "active": True},
                "body": body["body"],
                "created": now,
                "updated": now,
                "jsdPublic": True,
            }
            issue["comments"].append(comment)
        return json_response(201, comment)

    def _assign(self, req: RecordedRequest, issue: dict[str, Any]) -> Response:
        body = _json_object(req)
        if body is None:
            return jira_errors(400, [_BAD_PAYLOAD])
        if "accountId" not in body:
            return jira_errors(400, errors={"assignee": self._assignee_error(body) or "Specify the user"})
        if body["accountId"] is not None and (error := self._assignee_error(body)):
            return jira_errors(400, errors={"assignee": error})
        with self._lock:
            if body["accountId"] is None:
                issue["fields"].pop("assignee", None)
            else:
                issue["fields"]["assignee"] = {"accountId": body["accountId"]}
        return 204, {}, b""

    def _available_transitions(self, issue: dict[str, Any]) -> list[tuple[str, str, str, str]]:
        return [t for t in self.workflow if t[2] != issue["status"]]

    def _get_transitions(self, req: RecordedRequest, issue: dict[str, Any]) -> Response:
        transitions = [
            {
                "id": transition_id,
                "name": name,
                "to": self._status_json(status),
                "hasScreen": False,
                "isGlobal": True,
                "isInitial": False,
                "isAvailable": True,
                "isConditional": False,
                "isLooped": False,
            }
            for transition_id, name, status, _ in self._available_transitions(issue)
        ]
        return json_response(200, {"expand": "transitions", "transitions": transitions})

    def _do_transition(self, req: RecordedRequest, issue: dict[str, Any]) -> Response:
        body = _json_object(req)
        transition = body.get("transition") if body else None
        if not isinstance(transition, dict) or "id" not in transition:
            return jira_errors(400, ["Missing 'transition' identifier"])
        wanted = str(transition["id"])
        target = next((t for t in self._available_transitions(issue) if t[0] == wanted), None)
        if target is None:
            return jira_errors(400, [f"Transition id '{wanted}' is not valid for this issue."])
        with self._lock:
            if (
                self._status_json(issue["status"])["statusCategory"]
                != self._status_json(target[2])["statusCategory"]
            ):
                issue["category_changed"] = datetime.now(UTC)
            issue["status"] = target[2]
        return 204, {}, b""

    def set_status(self, key: str, status: str, changed_at: datetime) -> None:
        """As if someone moved the issue to `status` at `changed_at` (e.g. done ten days ago)."""
        with self._lock:
            issue = next(i for i in self._issues if i["key"] == key)
            issue["status"], issue["category_changed"] = status, changed_at

    @property
    def links(self) -> list[tuple[str, str, str]]:
        """(link type, inward key, outward key) of each issue link created, in order."""
        with self._lock:
            return list(self._links)

    def _link_issues(self, req: RecordedRequest) -> Response:
        """`POST /rest/api/3/issueLink` (LinkIssueRequestJsonBean): 201 with no body."""
        body = _json_object(req)
        kind = body.get("type") if body else None
        inward, outward = (body or {}).get("inwardIssue"), (body or {}).get("outwardIssue")
        if not isinstance(kind, dict) or not isinstance(inward, dict) or not isinstance(outward, dict):
            return jira_errors(400, [_BAD_PAYLOAD])
        name = kind.get("name")
        if name not in _LINK_TYPES:
            return jira_errors(404, [f"No issue link type with name '{name}' found."])
        with self._lock:
            keys = {i["key"] for i in self._issues} | {i["id"] for i in self._issues}
            if inward.get("key") not in keys or outward.get("key") not in keys:
                return jira_errors(404, ["Issue does not exist or you do not have permission to see it."])
            self._links.append((str(name), str(inward["key"]), str(outward["key"])))
        return 201, {}, b""

    def _search_jql(self, req: RecordedRequest) -> Response:
        body = _json_object(req)
        if body is None or set(body) - _SEARCH_JQL_PROPERTIES:
            return jira_errors(400, [_BAD_PAYLOAD])
        jql, max_results, fields = body.get("jql"), body.get("maxResults", 50), body.get("fields", ["id"])
        if not isinstance(max_results, int) or max_results < 0:
            return jira_errors(400, ["maxResults must be a non-negative integer."])
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            return jira_errors(400, ["fields must be a list of strings."])
        if not isinstance(jql, str):
            return jira_errors(400, [_UNBOUNDED])
        parsed = self._parse_jql(jql)
        if isinstance(parsed, str):
            return jira_errors(400, [parsed])
        conditions, newest_first = parsed
        now = time.monotonic()
        with self._lock:
            found = [
                i for i in self._issues if i["searchable_at"] <= now and all(test(i) for test in conditions)
            ]
        if newest_first:
            found.reverse()
        # /search/jql returns bare ids unless fields are asked for (unlike GET issue).
        issues = [
            {"id": i["id"]} if fields == ["id"] else self._issue_json(i, fields) for i in found[:max_results]
        ]
        return json_response(200, {"issues": issues, "isLast": len(found) <= max_results})

    def _parse_jql(self, jql: str) -> tuple[list[Callable[[dict[str, Any]], bool]], bool] | str:
        """The conditions and whether the newest come first, or Jira's error message."""
        newest_first = False
        if order := _JQL_ORDER.search(jql):
            if order["field"].lower() != "created":
                return f"Error in the JQL Query: this fake orders by created only, not '{order['field']}'."
            newest_first = (order["direction"] or "ASC").upper() == "DESC"
            jql = jql[: order.start()]
        if not jql.strip():
            return _UNBOUNDED
        conditions: list[Callable[[dict[str, Any]], bool]] = []
        for clause in re.split(r"\s+AND\s+", jql.strip(), flags=re.I):
            match = _JQL_CLAUSE.match(clause)
            if match is None:
                return f"Error in the JQL Query: cannot parse '{clause.strip()}'."
            field = match["field"].lower()
            value = match["bare"] if match["bare"] is not None else re.sub(r"\\(.)", r"\1", match["quoted"])
            if field == "project":
                if value not in (self.project_key, PROJECT_ID):
                    return f"The value '{value}' does not exist for the field 'project'."
            elif field == "labels":
                conditions.append(_has_label(value))
            else:
                return f"Error in the JQL Query: this fake does not search by '{match['field']}'."
        return conditions, newest_first


def _jira_time(moment: datetime) -> str:
    """Jira's timestamp format: `2026-11-30T10:00:00.000+0000`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _has_label(label: str) -> Callable[[dict[str, Any]], bool]:
    return lambda issue: label in issue["fields"].get("labels", [])


def _json_object(req: RecordedRequest) -> dict[str, Any] | None:
    try:
        body = req.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
