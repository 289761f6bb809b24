"""JiraClient against a fake Jira Cloud: auth, its verbs, errors in plain words, bounded retries."""

from __future__ import annotations

import base64
import logging
import math
import socket
import time
from typing import Any

import pytest
from fakes.base import http_date, wall_clock
from fakes.jira_fake import FakeJira

from services.runtime.outbound import parse_retry_after
from services.ticketing import adf
from services.ticketing.jira import (
    CreatedIssue,
    JiraClient,
    JiraError,
    JiraUser,
    Transition,
)


def _fields(**extra: Any) -> dict[str, Any]:
    return {
        "project": {"key": "OPS"},
        "issuetype": {"name": "Task"},
        "summary": "[P2] HighErrorRate on inventory",
        "description": adf.doc(adf.paragraph(adf.text("Cache miss returns None."))),
        "labels": ["oncall-agent"],
        **extra,
    }


def _posts(fake: FakeJira) -> int:
    return sum(1 for r in fake.requests if r.method == "POST")


async def test_finds_assignable_users_with_basic_auth(fake_jira: FakeJira, jira: JiraClient) -> None:
    users = await jira.find_assignable_users("OPS", "ravi")

    assert users == [  # the deactivated Ravindra left out
        JiraUser("acc-ravi", "Ravi Kumar", "ravi@example.com"),
        JiraUser("acc-ravi-shah", "Ravi Shah"),
    ]
    (request,) = fake_jira.requests
    assert request.path == "/rest/api/3/user/assignable/search"
    assert (request.arg("project"), request.arg("query")) == ("OPS", "ravi")
    assert request.basic_auth() == (fake_jira.email, fake_jira.api_token)


async def test_keeps_only_active_users(fake_jira: FakeJira, jira: JiraClient) -> None:
    # Jira may list deactivated accounts; they cannot take an issue.
    fake_jira.fail_next(200, [
        {"accountId": "acc-1", "displayName": "Ravi Kumar", "active": True},
        {"accountId": "acc-2", "displayName": "Ravi Former", "active": False},
    ])  # fmt: skip

    assert [u.account_id for u in await jira.find_assignable_users("OPS", "ravi")] == ["acc-1"]


async def test_creates_an_issue_and_links_to_it(fake_jira: FakeJira, jira: JiraClient) -> None:
    created = await jira.create_issue(_fields(assignee={"accountId": "acc-ravi"}))

    assert created == CreatedIssue(
        id="10001", key="OPS-1", self_url=f"{fake_jira.url}/rest/api/3/issue/10001"
    )
    assert jira.browse_url(created.key) == f"{fake_jira.url}/browse/OPS-1"
    assert fake_jira.issues[0]["assignee"] == {"accountId": "acc-ravi"}


async def test_searches_by_jql_and_returns_the_keys_newest_first(
    fake_jira: FakeJira, jira: JiraClient
) -> None:
    for _ in range(3):
        fake_jira.add_issue({"summary": "s", "labels": ["oncall-incident-a1b2c3"]})
    fake_jira.add_issue({"summary": "s", "labels": ["other"]})

    keys = await jira.search_issue_keys(
        'project = "OPS" AND labels = "oncall-incident-a1b2c3" ORDER BY created DESC', 2
    )

    assert keys == ["OPS-3", "OPS-2"]
    assert fake_jira.requests[0].json() == {
        "jql": 'project = "OPS" AND labels = "oncall-incident-a1b2c3" ORDER BY created DESC',
        "maxResults": 2,
        "fields": ["status"],
    }


async def test_comments_reassigns_and_transitions(fake_jira: FakeJira, jira: JiraClient) -> None:
    key = fake_jira.add_issue({"summary": "s", "assignee": {"accountId": "acc-ravi"}})
    comment = adf.doc(adf.paragraph(adf.text("Still failing.")))

    await jira.add_comment(key, comment)
    await jira.assign(key, "acc-alice")  # 204, no content
    transitions = await jira.transitions(key)
    await jira.transition(key, "31")

    assert fake_jira.comments(key) == [comment]
    assert fake_jira.issues[0]["assignee"] == {"accountId": "acc-alice"}
    assert transitions == [Transition("21", "In Progress"), Transition("31", "Done")]
    assert fake_jira.status(key) == "Done"
    assert [(r.method, r.path) for r in fake_jira.requests] == [
        ("POST", "/rest/api/3/issue/OPS-1/comment"),
        ("PUT", "/rest/api/3/issue/OPS-1/assignee"),
        ("GET", "/rest/api/3/issue/OPS-1/transitions"),
        ("POST", "/rest/api/3/issue/OPS-1/transitions"),
    ]


async def test_a_transition_no_longer_offered_is_a_permanent_error(
    fake_jira: FakeJira, jira: JiraClient
) -> None:
    key = fake_jira.add_issue({"summary": "s"}, status="Done")

    with pytest.raises(JiraError) as raised:
        await jira.transition(key, "31")

    assert raised.value.status == 400 and not raised.value.transient
    assert raised.value.message == "Transition id '31' is not valid for this issue."


async def test_keys_are_escaped_in_paths(fake_jira: FakeJira, jira: JiraClient) -> None:
    with pytest.raises(JiraError) as raised:
        await jira.transitions("OPS-1/../../serverInfo")

    assert raised.value.status == 404
    assert fake_jira.requests[0].path == "/rest/api/3/issue/OPS-1%2F..%2F..%2FserverInfo/transitions"


@pytest.mark.jira_invalid_requests
async def test_error_collection_becomes_plain_words(fake_jira: FakeJira, jira: JiraClient) -> None:
    with pytest.raises(JiraError) as raised:
        await jira.create_issue(_fields(assignee={"name": "ravi"}, labels=["on call"]))

    error = raised.value
    assert error.status == 400 and not error.transient
    assert set(error.field_errors) == {"assignee", "labels"}
    assert error.message == (
        "assignee: Specify the user by accountId; 'name' is not supported (removed from Jira Cloud APIs "
        "for GDPR).; labels: The label 'on call' contains spaces which is invalid."
    )
    assert _posts(fake_jira) == 1  # a 400 is final: no retry


async def test_error_messages_and_field_errors_are_joined(fake_jira: FakeJira, jira: JiraClient) -> None:
    fake_jira.fail_next(
        400, {"errorMessages": ["Field 'priority' is required"], "errors": {"summary": "Too long"}}
    )

    with pytest.raises(JiraError) as raised:
        await jira.create_issue(_fields())

    assert raised.value.message == "Field 'priority' is required; summary: Too long"


async def test_bad_credentials_say_which_settings_to_check(fake_jira: FakeJira) -> None:
    client = JiraClient(fake_jira.url, fake_jira.email, "wrong-token")
    try:
        with pytest.raises(JiraError) as raised:
            await client.find_assignable_users("OPS", "ravi")
    finally:
        await client.aclose()

    assert raised.value.status == 401 and not raised.value.transient
    assert raised.value.message.startswith(
        "Jira rejected the credentials: check JIRA_EMAIL and JIRA_API_TOKEN"
    )


async def test_429_waits_for_retry_after_then_succeeds(fake_jira: FakeJira, jira: JiraClient) -> None:
    fake_jira.fail_next(429, headers={"Retry-After": "1"})
    started = time.monotonic()

    created = await jira.create_issue(_fields())

    assert created.key == "OPS-1"
    assert _posts(fake_jira) == 2
    assert time.monotonic() - started >= 0.95


async def test_429_with_an_http_date_waits_until_then(fake_jira: FakeJira, jira: JiraClient) -> None:
    retry_at = math.ceil(time.time()) + 1  # 1 to 2 s away, in whole seconds as HTTP-dates are
    fake_jira.fail_next(429, headers={"Retry-After": http_date(retry_at)})

    created = await jira.create_issue(_fields())

    assert created.key == "OPS-1"
    first, second = [r for r in fake_jira.requests if r.method == "POST"]
    assert wall_clock(second.started_at) >= retry_at - 0.05  # not before the date Jira named
    assert second.started_at - first.finished_at < 3.0


async def test_gives_up_after_three_tries(fake_jira: FakeJira, jira: JiraClient) -> None:
    fake_jira.fail_next(503, headers={"Retry-After": "0"}, times=5)

    with pytest.raises(JiraError) as raised:
        await jira.find_assignable_users("OPS", "ravi")

    assert raised.value.status == 503 and raised.value.transient
    assert len(fake_jira.requests) == 3


async def test_a_retry_after_beyond_the_budget_is_not_waited_for(
    fake_jira: FakeJira, jira: JiraClient
) -> None:
    fake_jira.fail_next(429, headers={"Retry-After": "120"})
    started = time.monotonic()

    with pytest.raises(JiraError) as raised:
        await jira.create_issue(_fields())

    assert raised.value.transient and raised.value.retry_after == 120
    assert time.monotonic() - started < 5
    assert _posts(fake_jira) == 1


async def test_a_500_on_create_is_transient_but_not_resent_at_once(
    fake_jira: FakeJira, jira: JiraClient
) -> None:
    # Jira may have created the issue before failing: the consumer's redelivery decides, not a blind resend.
    fake_jira.fail_next(500)

    with pytest.raises(JiraError) as raised:
        await jira.create_issue(_fields())

    assert raised.value.status == 500 and raised.value.transient
    assert _posts(fake_jira) == 1 and fake_jira.issues == []


async def test_a_500_on_a_lookup_is_retried(fake_jira: FakeJira, jira: JiraClient) -> None:
    fake_jira.fail_next(500)

    assert len(await jira.find_assignable_users("OPS", "alice")) == 1
    assert len(fake_jira.requests) == 2


async def test_unreachable_jira_is_transient() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = JiraClient(f"http://127.0.0.1:{port}", "oncall@example.com", "token")
    try:
        with pytest.raises(JiraError) as raised:
            await client.find_assignable_users("OPS", "ravi")
    finally:
        await client.aclose()

    assert raised.value.status is None and raised.value.transient
    assert "cannot connect" in raised.value.message


async def test_the_api_token_is_never_logged_nor_in_errors(
    fake_jira: FakeJira, jira: JiraClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_jira.fail_next(429, headers={"Retry-After": "0"})
    fake_jira.fail_next(403)

    with pytest.raises(JiraError) as raised:
        await jira.create_issue(_fields())

    assert raised.value.message.startswith("the Jira account lacks the permission")
    assert caplog.records, "the retry should have been logged"
    basic = base64.b64encode(f"{fake_jira.email}:{fake_jira.api_token}".encode()).decode()
    for shown in (caplog.text, str(raised.value), repr(raised.value), repr(jira)):
        assert fake_jira.api_token not in shown and basic not in shown


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, None), ("3", 3.0), ("-1", 0.0), ("soon", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected
