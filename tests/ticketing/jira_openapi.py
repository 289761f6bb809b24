"""Checks a request sent to Jira against the Jira Cloud REST v3 OpenAPI document: the operation exists,
its required and only its declared query parameters, and the JSON body against the operation's schema
(types, $ref/allOf, required, closed objects, read-only properties, enums, lengths). Then what Jira Cloud
demands beyond the schema: ADF for rich text, users by accountId only.

The document is tests/fixtures/jira/jira-cloud-v3-openapi.json: the operations the product uses, cut out
of Atlassian's public document with every component they reference (see the README there); an operation
missing from it is reported as missing, so a new one the product starts to use must be added there.
That copy (2023) predates `POST /rest/api/3/search/jql`, which replaced the legacy search in 2024; that
operation's body (`SearchAndReconcileRequestBean`) is added here as Atlassian's current document declares it.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

from fakes.base import RecordedRequest
from fakes.jira_fake import is_adf_document
from support.fixture_files import JIRA_FIXTURES

OPENAPI = JIRA_FIXTURES / "jira-cloud-v3-openapi.json"

_SEARCH_JQL_BEAN: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "expand": {"type": "string"},
        "fields": {"type": "array", "items": {"type": "string"}},
        "fieldsByKeys": {"type": "boolean"},
        "jql": {"type": "string"},
        "maxResults": {"type": "integer", "format": "int32", "default": 50},
        "nextPageToken": {"type": "string"},
        "properties": {"type": "array", "items": {"type": "string"}},
        "reconcileIssues": {"type": "array", "items": {"type": "integer", "format": "int64"}},
    },
}
_SEARCH_JQL_POST: dict[str, Any] = {
    "operationId": "searchAndReconsileIssuesUsingJqlPost",
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/SearchAndReconcileRequestBean"}}
        },
    },
    "responses": {"200": {}},
}

_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
}


@cache
def document() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(OPENAPI.read_text())
    doc["components"]["schemas"].setdefault("SearchAndReconcileRequestBean", _SEARCH_JQL_BEAN)
    doc["paths"].setdefault("/rest/api/3/search/jql", {"post": _SEARCH_JQL_POST})
    return doc


def request_problems(req: RecordedRequest) -> list[str]:
    """Everything about `req` that Jira Cloud's contract does not allow; empty when it fits."""
    where = f"{req.method} {req.path}"
    found = _operation(req.method, req.path)
    if found is None:
        return [f"{where}: no such operation in the Jira Cloud REST v3 document ({OPENAPI.name})"]
    template, operation = found
    problems = _parameter_problems(req, operation, where)
    body = req.json() if req.body else None
    content = (operation.get("requestBody") or {}).get("content", {}).get("application/json")
    if content is None:
        if body is not None:
            problems.append(f"{where}: this operation takes no JSON body")
        return problems
    if body is None:
        return [*problems, f"{where}: a JSON body is required"]
    problems += schema_problems(body, content["schema"], "body")
    return problems + [f"{where}: {p}" for p in _cloud_problems(req.method, template, body)]


def schema_problems(value: Any, schema: dict[str, Any], where: str) -> list[str]:
    """The subset of JSON Schema the Jira document uses, for a request body."""
    schemas = document()["components"]["schemas"]
    if "$ref" in schema:
        return schema_problems(value, schemas[schema["$ref"].rsplit("/", 1)[1]], where)
    problems = [p for part in schema.get("allOf", []) for p in schema_problems(value, part, where)]
    expected = schema.get("type")
    if expected and (
        not isinstance(value, _JSON_TYPES[expected]) or (expected != "boolean" and isinstance(value, bool))
    ):
        return [*problems, f"{where}: expected {expected}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, str) and len(value) > schema.get("maxLength", len(value)):
        problems.append(f"{where}: longer than {schema['maxLength']}")
    if isinstance(value, dict):
        problems += _object_problems(value, schema, where)
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += schema_problems(item, schema["items"], f"{where}[{i}]")
    return problems


def _object_problems(value: dict[str, Any], schema: dict[str, Any], where: str) -> list[str]:
    properties = schema.get("properties", {})
    problems = [f"{where}: missing {name}" for name in schema.get("required", []) if name not in value]
    for name, item in value.items():
        if name in properties:
            if properties[name].get("readOnly"):
                problems.append(f"{where}.{name} is read-only: Jira ignores or refuses it in a request")
            problems += schema_problems(item, properties[name], f"{where}.{name}")
        elif schema.get("additionalProperties") is False:
            problems.append(f"{where}: unexpected {name}")
    return problems


def _operation(method: str, path: str) -> tuple[str, dict[str, Any]] | None:
    """The document's operation for this concrete path; a literal path beats a templated one."""
    matches = [
        (template, operations[method.lower()])
        for template, operations in document()["paths"].items()
        if method.lower() in operations and re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), path)
    ]
    return min(matches, key=lambda m: m[0].count("{"), default=None)


def _parameter_problems(req: RecordedRequest, operation: dict[str, Any], where: str) -> list[str]:
    declared = {p["name"]: p for p in operation.get("parameters", []) if p.get("in") == "query"}
    problems = [
        f"{where}: query parameter {name} is not declared" for name in req.query if name not in declared
    ]
    problems += [
        f"{where}: query parameter {name} is required"
        for name, parameter in declared.items()
        if parameter.get("required") and name not in req.query
    ]
    return problems


def _cloud_problems(method: str, template: str, body: dict[str, Any]) -> list[str]:
    """What Jira Cloud enforces beyond the schema, on the operations the product uses."""
    problems: list[str] = []
    if (method, template) == ("POST", "/rest/api/3/issue"):
        fields = body.get("fields")
        if not isinstance(fields, dict):
            return ["a create needs `fields`"]
        if not is_adf_document(fields.get("description")):
            problems.append("fields.description must be an ADF document")
        problems += _user_problems(fields.get("assignee"), "fields.assignee")
    elif (method, template) == ("POST", "/rest/api/3/issue/{issueIdOrKey}/comment"):
        if not is_adf_document(body.get("body")):
            problems.append("a comment body must be an ADF document")
    elif (method, template) == ("PUT", "/rest/api/3/issue/{issueIdOrKey}/assignee"):
        problems += _user_problems(body, "body")
    elif (method, template) == ("POST", "/rest/api/3/issue/{issueIdOrKey}/transitions"):
        transition = body.get("transition")
        if not (isinstance(transition, dict) and isinstance(transition.get("id"), str)):
            problems.append("a transition is chosen by its id (a string)")
    elif (method, template) == ("POST", "/rest/api/3/search/jql"):
        if not (isinstance(body.get("jql"), str) and body["jql"].strip()):
            problems.append("search/jql needs a bounded jql")
        if not body.get("fields"):
            problems.append("without `fields` search/jql returns ids only, not keys")
    return problems


def _user_problems(user: Any, where: str) -> list[str]:
    # Since 2019 Jira Cloud identifies users by accountId only (name/key/username removed for GDPR).
    if user is None or (isinstance(user, dict) and set(user) == {"accountId"}):
        return []
    return [f"{where}: users are referenced by accountId only, not {user!r}"]
