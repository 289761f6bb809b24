"""The contract check every ticketing test runs on the requests its fake Jira received: it passes what
Jira Cloud takes and catches what Jira Cloud would refuse or ignore."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fakes.base import RecordedRequest
from ticketing.jira_openapi import request_problems

from services.ticketing import adf

ADF = adf.doc(adf.paragraph(adf.text("Resolved after 5 min.")))
CREATE = {
    "fields": {
        "project": {"key": "OPS"},
        "issuetype": {"name": "Task"},
        "summary": "[P1] Checkout down",
        "description": ADF,
        "priority": {"name": "Highest"},
        "labels": ["oncall-agent", "oncall-incident-a1b2c3"],
        "assignee": {"accountId": "acc-ravi"},
    }
}
SEARCH = {
    "jql": 'project = "OPS" AND labels = "oncall-incident-a1b2c3"',
    "maxResults": 2,
    "fields": ["status"],
}


def _request(method: str, path: str, body: Any = None, **query: str) -> RecordedRequest:
    raw = b"" if body is None else json.dumps(body).encode()
    return RecordedRequest(method, path, {k: [v] for k, v in query.items()}, {}, raw)


@pytest.mark.parametrize(
    "request_",
    [
        _request("GET", "/rest/api/3/user/assignable/search", project="OPS", query="ravi"),
        _request("POST", "/rest/api/3/issue", CREATE),
        _request("POST", "/rest/api/3/search/jql", SEARCH),
        _request("POST", "/rest/api/3/issue/OPS-1/comment", {"body": ADF}),
        _request("PUT", "/rest/api/3/issue/OPS-1/assignee", {"accountId": "acc-ravi"}),
        _request("GET", "/rest/api/3/issue/OPS-1/transitions"),
        _request("POST", "/rest/api/3/issue/OPS-1/transitions", {"transition": {"id": "31"}}),
    ],
    ids=lambda r: f"{r.method} {r.path}",
)
def test_what_the_product_sends_fits(request_: RecordedRequest) -> None:
    assert request_problems(request_) == []


@pytest.mark.parametrize(
    ("request_", "problem"),
    [
        (_request("GET", "/rest/api/2/issue/OPS-1"), "no such operation"),
        (_request("DELETE", "/rest/api/3/search/jql"), "no such operation"),
        (
            _request("GET", "/rest/api/3/user/assignable/search", project="OPS", name="ravi"),
            "name is not declared",
        ),
        (
            _request("POST", "/rest/api/3/issue/OPS-1/comment", {"body": "plain text"}),
            "must be an ADF document",
        ),
        (_request("POST", "/rest/api/3/issue/OPS-1/comment"), "a JSON body is required"),
        (_request("PUT", "/rest/api/3/issue/OPS-1/assignee", {"name": "ravi"}), "accountId only"),
        (
            _request("PUT", "/rest/api/3/issue/OPS-1/assignee", {"accountId": "a", "displayName": "Ravi"}),
            "body.displayName is read-only",
        ),
        (
            _request(
                "POST", "/rest/api/3/issue", {"fields": {**CREATE["fields"], "assignee": {"name": "x"}}}
            ),
            "accountId only",
        ),
        (_request("POST", "/rest/api/3/issue", {"fields": "x"}), "body.fields: expected object"),
        # The legacy search's offset paging is not part of /search/jql.
        (_request("POST", "/rest/api/3/search/jql", {**SEARCH, "startAt": 0}), "body: unexpected startAt"),
        (_request("POST", "/rest/api/3/search/jql", {**SEARCH, "maxResults": "2"}), "expected integer"),
        (_request("POST", "/rest/api/3/search/jql", {"jql": SEARCH["jql"]}), "returns ids only"),
        (
            _request("POST", "/rest/api/3/issue/OPS-1/transitions", {"transition": {"name": "Done"}}),
            "by its id",
        ),
        (_request("GET", "/rest/api/3/issue/OPS-1/transitions", {"x": 1}), "takes no JSON body"),
    ],
    ids=lambda value: value if isinstance(value, str) else f"{value.method} {value.path}",
)
def test_what_jira_would_refuse_is_caught(request_: RecordedRequest, problem: str) -> None:
    problems = request_problems(request_)

    assert any(problem in p for p in problems), problems
