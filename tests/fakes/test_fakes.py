"""Each fake, driven by the real client the product uses, behaves per docs/vendor-contracts.md."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageFunctionToolCall
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client as TwilioClient

from . import (
    FakeAlertmanager,
    FakeGitHub,
    FakeJira,
    FakeLogs,
    FakeOpenAI,
    FakePrometheus,
    FakeTwilio,
    Step,
    tool_call,
)
from .base import http_date

ADF = {
    "type": "doc",
    "version": 1,
    "content": [{"type": "paragraph", "content": [{"type": "text", "text": "DB"}]}],
}
ALICE_ID = "5b10a2844c20165700ede21g"


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    # One shared client: building an httpx client (TLS context) per call costs ~30 ms.
    with httpx.Client(timeout=5) as client:
        yield client


# --- base -------------------------------------------------------------------------------------------


def test_delay_makes_concurrent_requests_overlap_and_is_recorded(http: httpx.Client) -> None:
    with FakeLogs([], delay_seconds=0.2) as fake, ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: http.get(f"{fake.url}/logs/tail?seconds=1&limit=1"), range(2)))
        first, second = sorted(fake.requests, key=lambda r: r.started_at)
        assert second.started_at < first.finished_at  # in flight at the same time
        assert first.finished_at - first.started_at >= 0.2
        assert first.query == {"seconds": ["1"], "limit": ["1"]}
        assert first.headers["host"].startswith("127.0.0.1:")


def test_wait_for_times_out_with_a_clear_error() -> None:
    with FakeLogs() as fake, pytest.raises(TimeoutError, match="FakeLogs"):
        fake.wait_for(lambda s: len(s.requests) > 0, timeout=0.05)


async def test_wait_for_async_lets_the_event_loop_run() -> None:
    with FakeLogs() as fake:
        async with httpx.AsyncClient() as client:
            await client.get(f"{fake.url}/logs/tail")
        await fake.wait_for_async(lambda s: len(s.requests) == 1, timeout=1)


# --- OpenAI -----------------------------------------------------------------------------------------


async def test_openai_sdk_parses_scripted_tool_calls_and_validates_tool_replies() -> None:
    script: list[Step] = [
        {
            "tool_calls": [
                tool_call("query_prometheus", {"query": "up"}, "call_1"),
                tool_call("fetch_logs", "{"),
            ]
        },
        {"content": "done"},
    ]
    with FakeOpenAI(script, api_key="sk-e2e") as fake:
        async with openai.AsyncOpenAI(base_url=fake.url + "/v1", api_key="sk-e2e", max_retries=0) as client:
            messages: list[Any] = [{"role": "user", "content": "why?"}]
            first = await client.chat.completions.create(model="gpt-fake", messages=messages)
            choice = first.choices[0]
            assert choice.finish_reason == "tool_calls" and choice.message.content is None
            calls = [
                c
                for c in choice.message.tool_calls or []
                if isinstance(c, ChatCompletionMessageFunctionToolCall)
            ]
            assert [c.function.name for c in calls] == ["query_prometheus", "fetch_logs"]
            assert json.loads(calls[0].function.arguments) == {"query": "up"} and calls[0].id == "call_1"
            assert calls[1].function.arguments == "{"  # raw strings pass through untouched

            messages.append(choice.message.model_dump(exclude_none=True))
            messages.append({"role": "tool", "tool_call_id": "call_1", "content": "1"})
            with pytest.raises(openai.BadRequestError, match="did not have response messages"):
                await client.chat.completions.create(model="gpt-fake", messages=messages)

            messages.append({"role": "tool", "tool_call_id": calls[1].id, "content": "[]"})
            second = await client.chat.completions.create(model="gpt-fake", messages=messages)
            assert second.choices[0].message.content == "done" and second.choices[0].finish_reason == "stop"
            third = await client.chat.completions.create(model="gpt-fake", messages=messages)
            assert third.choices[0].message.content == "done"  # exhausted script repeats the last step
        assert [len(body["messages"]) for body in fake.chat_requests] == [1, 3, 4, 4]
        assert fake.requests[0].headers["authorization"] == "Bearer sk-e2e"


async def test_openai_sdk_retries_429_after_retry_after() -> None:
    script: list[Step] = [FakeOpenAI.error(429, "Rate limit reached", retry_after=1), {"content": "ok"}]
    with FakeOpenAI(script) as fake:
        async with openai.AsyncOpenAI(base_url=fake.url + "/v1", api_key="sk-test") as client:
            reply = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "x"}]
            )
        assert reply.choices[0].message.content == "ok"
        first, second = fake.requests
        assert second.started_at - first.finished_at >= 0.9


async def test_openai_wrong_key_is_401_with_openai_error_body() -> None:
    with FakeOpenAI() as fake:
        async with openai.AsyncOpenAI(base_url=fake.url + "/v1", api_key="sk-wrong", max_retries=0) as client:
            with pytest.raises(openai.AuthenticationError) as raised:
                await client.chat.completions.create(model="m", messages=[])
        assert raised.value.code == "invalid_api_key" and raised.value.type == "invalid_request_error"


# --- Twilio -----------------------------------------------------------------------------------------


@pytest.fixture
def twilio() -> Iterator[tuple[FakeTwilio, TwilioClient]]:
    with FakeTwilio() as fake:
        client = TwilioClient(fake.account_sid, fake.auth_token)
        client.api.base_url = fake.url
        yield fake, client


def test_twilio_sdk_creates_whatsapp_message(twilio: tuple[FakeTwilio, TwilioClient]) -> None:
    fake, client = twilio
    message = client.messages.create(to="whatsapp:+15551234567", from_="whatsapp:+14155238886", body="hi")
    assert message.status == "queued" and message.sid.startswith("SM") and len(message.sid) == 34
    assert message.to == "whatsapp:+15551234567" and message.body == "hi"
    assert fake.messages == [
        {"To": "whatsapp:+15551234567", "From": "whatsapp:+14155238886", "Body": "hi", "sid": message.sid}
    ]


def test_twilio_rejects_long_body_and_non_whatsapp_to(twilio: tuple[FakeTwilio, TwilioClient]) -> None:
    fake, client = twilio
    with pytest.raises(TwilioRestException) as raised:
        client.messages.create(to="whatsapp:+15551234567", from_="whatsapp:+14155238886", body="x" * 1601)
    assert (raised.value.status, raised.value.code) == (400, 21617)
    with pytest.raises(TwilioRestException) as raised:
        client.messages.create(to="+15551234567", from_="whatsapp:+14155238886", body="hi")
    assert raised.value.code == 21211
    assert fake.messages == []


def test_twilio_bad_auth_and_injected_429(twilio: tuple[FakeTwilio, TwilioClient]) -> None:
    fake, client = twilio
    fake.fail_next(429, 20429, "Too Many Requests")
    with pytest.raises(TwilioRestException) as raised:
        client.messages.create(to="whatsapp:+15551234567", from_="whatsapp:+14155238886", body="hi")
    assert (raised.value.status, raised.value.code) == (429, 20429)
    assert fake.requests[-1].form()["Body"] == "hi"

    intruder = TwilioClient(fake.account_sid, "wrong")
    intruder.api.base_url = fake.url
    with pytest.raises(TwilioRestException) as raised:
        intruder.messages.create(to="whatsapp:+15551234567", from_="whatsapp:+14155238886", body="hi")
    assert (raised.value.status, raised.value.code) == (401, 20003)


def test_twilio_lists_messages_by_recipient_sender_and_day_in_pages(
    twilio: tuple[FakeTwilio, TwilioClient],
) -> None:
    fake, client = twilio
    ours, other = "whatsapp:+14155238886", "whatsapp:+14155230000"
    for n in range(5):
        client.messages.create(to="whatsapp:+15551234567", from_=ours, body=f"m{n}")
    client.messages.create(to="whatsapp:+15559999999", from_=ours, body="someone else")
    client.messages.create(to="whatsapp:+15551234567", from_=other, body="another sender")
    today = time.strftime("%Y-%m-%d", time.gmtime())

    # The SDK follows next_page_uri: pages of 2, newest first.
    listed = list(
        client.messages.stream(to="whatsapp:+15551234567", from_=ours, date_sent_after=today, page_size=2)
    )
    assert [m.body for m in listed] == ["m4", "m3", "m2", "m1", "m0"]
    assert all(m.status == "sent" and m.date_sent is not None for m in listed)
    assert [r.arg("Page") for r in fake.requests if r.method == "GET"] == [None, "1", "2"]
    # DateSent>=: on or after that GMT day; DateSent<=: on or before it.
    assert client.messages.list(to="whatsapp:+15551234567", date_sent_after="2999-01-01") == []
    assert len(client.messages.list(to="whatsapp:+15551234567", date_sent_before=today)) == 6
    assert len(client.messages.list(to="whatsapp:+15551234567", date_sent=today)) == 6


def test_twilio_slow_answer_creates_the_message_at_once(http: httpx.Client) -> None:
    with FakeTwilio(create_answer_seconds=1.0) as fake:
        with pytest.raises(httpx.ReadTimeout):
            http.post(
                f"{fake.url}/2010-04-01/Accounts/{fake.account_sid}/Messages.json",
                auth=(fake.account_sid, fake.auth_token),
                data={"To": "whatsapp:+15551234567", "From": "whatsapp:+14155238886", "Body": "hi"},
                timeout=0.2,
            )
        assert [m["Body"] for m in fake.messages] == ["hi"]


def test_jira_search_finds_a_new_issue_only_after_its_lag() -> None:
    with (
        FakeJira("bot@example.com", "tok", search_lag_seconds=0.5) as fake,
        httpx.Client(base_url=fake.url, auth=("bot@example.com", "tok")) as client,
    ):
        client.post("/rest/api/3/issue", json=_issue(labels=["req-1"]))
        search = {"jql": 'project = OPS AND labels = "req-1"', "fields": ["status"]}
        assert client.post("/rest/api/3/search/jql", json=search).json()["issues"] == []
        fake.wait_for(lambda f: len(client.post("/rest/api/3/search/jql", json=search).json()["issues"]) == 1)


def test_twilio_429_carries_retry_after(http: httpx.Client) -> None:
    with FakeTwilio() as fake:
        fake.fail_next(429, 20429, "Too Many Requests", retry_after=3)
        response = http.post(
            f"{fake.url}/2010-04-01/Accounts/{fake.account_sid}/Messages.json",
            auth=(fake.account_sid, fake.auth_token),
            data={"To": "whatsapp:+15551234567", "From": "whatsapp:+14155238886", "Body": "hi"},
        )
    assert response.status_code == 429 and response.headers["retry-after"] == "3"
    assert response.json()["more_info"] == "https://www.twilio.com/docs/errors/20429"


# --- Jira -------------------------------------------------------------------------------------------


@pytest.fixture
def jira() -> Iterator[tuple[FakeJira, httpx.Client]]:
    with (
        FakeJira("bot@example.com", "tok") as fake,
        httpx.Client(base_url=fake.url, auth=("bot@example.com", "tok")) as client,
    ):
        yield fake, client


def _issue(**fields: object) -> dict[str, object]:
    return {
        "fields": {
            "project": {"key": "OPS"},
            "issuetype": {"name": "Bug"},
            "summary": "Checkout 5xx",
            **fields,
        }
    }


def test_jira_rejects_assignee_name_and_plain_description(jira: tuple[FakeJira, httpx.Client]) -> None:
    fake, client = jira
    response = client.post("/rest/api/3/issue", json=_issue(assignee={"name": "alice"}))
    assert response.status_code == 400 and "GDPR" in response.json()["errors"]["assignee"]
    response = client.post("/rest/api/3/issue", json=_issue(description="plain text"))
    assert response.json() == {
        "errorMessages": [],
        "errors": {"description": "Operation value must be an Atlassian Document"},
    }
    response = client.post("/rest/api/3/issue", json=_issue(assignee={"accountId": "nobody"}))
    assert response.json()["errors"]["assignee"] == "User 'nobody' does not exist."
    response = client.post("/rest/api/3/issue", json={"fields": {"project": {"key": "NOPE"}}})
    assert set(response.json()["errors"]) == {"project", "issuetype", "summary"}
    assert fake.issues == []


def test_jira_accepts_adf_and_account_id(jira: tuple[FakeJira, httpx.Client]) -> None:
    fake, client = jira
    (user,) = client.get(
        "/rest/api/3/user/assignable/search", params={"project": "OPS", "query": "smi"}
    ).json()
    assert user["accountId"] == ALICE_ID and user["accountType"] == "atlassian"
    response = client.post(
        "/rest/api/3/issue", json=_issue(description=ADF, assignee={"accountId": ALICE_ID})
    )
    assert response.status_code == 201
    assert response.json() == {"id": "10001", "key": "OPS-1", "self": f"{fake.url}/rest/api/3/issue/10001"}
    assert client.get("/rest/api/3/issue/OPS-1").json()["fields"]["description"] == ADF
    assert fake.issues[0]["assignee"] == {"accountId": ALICE_ID}
    assert client.post("/rest/api/3/issue", json=_issue()).json()["key"] == "OPS-2"


def test_jira_auth_search_errors_and_injected_failure(
    jira: tuple[FakeJira, httpx.Client], http: httpx.Client
) -> None:
    fake, client = jira
    assert http.get(f"{fake.url}/rest/api/3/issue/OPS-1", auth=("bot@example.com", "bad")).status_code == 401
    assert client.get("/rest/api/3/user/assignable/search", params={"query": "a"}).status_code == 400
    fake.fail_next(429, headers={"Retry-After": "2"})
    response = client.post("/rest/api/3/issue", json=_issue())
    assert response.status_code == 429 and response.headers["retry-after"] == "2"
    assert client.get("/rest/api/3/issue/OPS-9").status_code == 404


# --- GitHub -----------------------------------------------------------------------------------------


def test_github_contents_round_trip_through_base64(http: httpx.Client) -> None:
    source = "def reserve(item):\n    return item.stock - 1  # ünïcode\n" * 5
    with FakeGitHub(files={"src/inventory_service.py": source}) as fake:
        headers = {"Authorization": "Bearer ghp_test", "Accept": "application/vnd.github+json"}
        response = http.get(
            f"{fake.url}/repos/acme/inventory/contents/src/inventory_service.py?ref=main", headers=headers
        )
        body = response.json()
        assert (
            body["type"] == "file" and body["encoding"] == "base64" and body["name"] == "inventory_service.py"
        )
        assert all(len(line) <= 60 for line in body["content"].splitlines()) and "\n" in body["content"]
        assert base64.b64decode(body["content"]).decode() == source
        assert body["size"] == len(source.encode())
        assert response.headers["x-ratelimit-remaining"] == "4999"

        raw = http.get(
            f"{fake.url}/repos/acme/inventory/contents/src/inventory_service.py",
            headers={"Authorization": "token ghp_test", "Accept": "application/vnd.github.raw+json"},
        )
        assert raw.text == source
        listing = http.get(f"{fake.url}/repos/acme/inventory/contents/src", headers=headers).json()
        assert [(e["type"], e["path"]) for e in listing] == [("file", "src/inventory_service.py")]

        missing = http.get(f"{fake.url}/repos/acme/inventory/contents/src/x.py", headers=headers)
        assert missing.status_code == 404 and missing.json()["message"] == "Not Found"
        other_ref = http.get(
            f"{fake.url}/repos/acme/inventory/contents/src/inventory_service.py?ref=dev", headers=headers
        )
        assert other_ref.status_code == 404
        bad = http.get(
            f"{fake.url}/repos/acme/inventory/contents/src", headers={"Authorization": "Bearer no"}
        )
        assert bad.status_code == 401 and bad.json()["message"] == "Bad credentials"


def test_github_commits_filtered_by_path_and_since(http: httpx.Client) -> None:
    commits = [
        FakeGitHub.commit("a" * 40, "old fix", "2026-11-20T10:00:00Z", ["src/app.py"]),
        FakeGitHub.commit("b" * 40, "new bug", "2026-11-24T05:00:00Z", ["src/app.py"]),
        FakeGitHub.commit("c" * 40, "docs", "2026-11-24T05:30:00Z", ["README.md"]),
    ]
    with FakeGitHub(commits=commits) as fake:
        response = http.get(
            f"{fake.url}/repos/acme/inventory/commits",
            params={"path": "src/app.py", "since": "2026-11-24T00:00:00Z", "sha": "main", "per_page": 100},
            headers={"Authorization": "Bearer ghp_test"},
        )
    (item,) = response.json()
    assert item["sha"] == "b" * 40 and item["commit"]["message"] == "new bug" and "files" not in item
    assert item["html_url"] == f"https://github.com/acme/inventory/commit/{'b' * 40}"


# --- logs and Prometheus ----------------------------------------------------------------------------


def test_logs_tail_limit_keeps_newest_and_rejects_non_integers(http: httpx.Client) -> None:
    lines = [
        {"timestamp": f"2026-11-24T06:00:0{i}Z", "level": "ERROR", "message": str(i), "service": "x"}
        for i in range(5)
    ]
    with FakeLogs(lines) as fake:
        tail = http.get(f"{fake.url}/logs/tail", params={"seconds": 300, "limit": 2}).json()
        assert [line["message"] for line in tail] == ["3", "4"]
        assert http.get(f"{fake.url}/logs/tail", params={"seconds": "5m"}).status_code == 400


def test_prometheus_instant_range_and_bad_query(http: httpx.Client) -> None:
    query = "sum(rate(http_errors_total[1m]))"
    with FakePrometheus({query: 1.0, "sum(rate(http_requests_total[1m]))": 0.25}) as fake:
        body = http.get(f"{fake.url}/api/v1/query", params={"query": query}).json()
        assert body["status"] == "success" and body["data"]["resultType"] == "vector"
        ((ts, value),) = [r["value"] for r in body["data"]["result"]]
        assert value == "1" and abs(ts - time.time()) < 5
        posted = http.post(f"{fake.url}/api/v1/query", data={"query": "sum(rate(http_requests_total[1m]))"})
        assert posted.json()["data"]["result"][0]["value"][1] == "0.25"
        assert (
            http.get(f"{fake.url}/api/v1/query", params={"query": "absent_metric"}).json()["data"]["result"]
            == []
        )

        bad = http.get(f"{fake.url}/api/v1/query", params={"query": "sum(rate(http_errors_total[1m]"})
        assert bad.status_code == 400
        assert bad.json() == {
            "status": "error",
            "errorType": "bad_data",
            "error": 'invalid parameter "query": 1:30: parse error: unclosed left parenthesis',
        }

        matrix = http.get(
            f"{fake.url}/api/v1/query_range", params={"query": query, "start": 100, "end": 160, "step": "30s"}
        ).json()["data"]
        assert matrix["resultType"] == "matrix"
        assert matrix["result"][0]["values"] == [[100, "1"], [130, "1"], [160, "1"]]
        assert fake.queries[0] == query


# --- rate limits and outages, with Retry-After --------------------------------------------------------

RETRY_AT = "Wed, 21 Oct 2015 07:28:00 GMT"


def test_http_date_is_an_imf_fixdate() -> None:
    assert http_date(1445412480) == RETRY_AT


def test_twilio_429_may_carry_an_http_date(http: httpx.Client) -> None:
    with FakeTwilio() as fake:
        fake.fail_next(429, 20429, "Too Many Requests", retry_after=RETRY_AT)
        response = http.post(
            f"{fake.url}/2010-04-01/Accounts/{fake.account_sid}/Messages.json",
            auth=(fake.account_sid, fake.auth_token),
            data={"To": "whatsapp:+15551234567", "From": "whatsapp:+14155238886", "Body": "hi"},
        )
    assert response.status_code == 429 and response.headers["retry-after"] == RETRY_AT


def test_github_secondary_rate_limit_then_normal_answers(http: httpx.Client) -> None:
    with FakeGitHub(files={"a.py": "x = 1\n"}) as fake:
        fake.fail_next(429, "You have exceeded a secondary rate limit.", {"retry-after": RETRY_AT})
        url = f"{fake.url}/repos/acme/inventory/contents/a.py"
        limited = http.get(url, headers={"Authorization": "Bearer ghp_test"})
        assert limited.status_code == 429 and limited.headers["retry-after"] == RETRY_AT
        assert limited.json()["message"] == "You have exceeded a secondary rate limit."
        assert "x-ratelimit-remaining" in limited.headers
        assert http.get(url, headers={"Authorization": "Bearer ghp_test"}).status_code == 200


def test_prometheus_injected_error_keeps_the_error_body(http: httpx.Client) -> None:
    with FakePrometheus({"up": 1.0}) as fake:
        fake.fail_next(503, "timeout", "query timed out in expression evaluation", {"Retry-After": "1"})
        failed = http.get(f"{fake.url}/api/v1/query", params={"query": "up"})
        assert failed.status_code == 503 and failed.headers["retry-after"] == "1"
        assert failed.json() == {
            "status": "error",
            "errorType": "timeout",
            "error": "query timed out in expression evaluation",
        }
        assert http.get(f"{fake.url}/api/v1/query", params={"query": "up"}).json()["status"] == "success"


def test_logs_injected_failure_then_lines(http: httpx.Client) -> None:
    with FakeLogs([]) as fake:
        fake.fail_next(503, b"upstream busy", {"Retry-After": "2"}, times=2)
        for _ in range(2):
            failed = http.get(f"{fake.url}/logs/tail")
            assert failed.status_code == 503 and failed.headers["retry-after"] == "2"
        assert http.get(f"{fake.url}/logs/tail").json() == []


# --- Alertmanager -----------------------------------------------------------------------------------


def _silence(**changes: Any) -> dict[str, Any]:
    body = {
        "matchers": [{"name": "alertname", "value": "HighErrorRate", "isRegex": False, "isEqual": True}],
        "startsAt": "2026-11-24T06:00:00Z",
        "endsAt": "2026-11-24T08:00:00Z",
        "createdBy": "oncall-agent",
        "comment": "from WhatsApp",
    }
    return {**body, **changes}


def test_alertmanager_silence_is_created_read_and_expired(http: httpx.Client) -> None:
    with FakeAlertmanager() as fake:
        created = http.post(f"{fake.url}/api/v2/silences", json=_silence())
        assert created.status_code == 200
        silence_id = created.json()["silenceID"]
        assert http.get(f"{fake.url}/api/v2/silence/{silence_id}").json()["status"]["state"] == "active"
        assert http.delete(f"{fake.url}/api/v2/silence/{silence_id}").status_code == 200
        assert fake.silences[silence_id]["status"] == {"state": "expired"}
        unknown = "00000000-0000-0000-0000-000000000000"
        assert http.delete(f"{fake.url}/api/v2/silence/{unknown}").status_code == 404


def test_alertmanager_refuses_silences_without_matchers_or_fields(http: httpx.Client) -> None:
    with FakeAlertmanager() as fake:
        empty = http.post(f"{fake.url}/api/v2/silences", json=_silence(matchers=[]))
        assert empty.status_code == 422
        assert empty.json() == {"code": 612, "message": "matchers in body should have at least 1 items"}
        unnamed = _silence()
        del unnamed["createdBy"]
        missing = http.post(f"{fake.url}/api/v2/silences", json=unnamed)
        assert missing.status_code == 422 and missing.json()["message"] == "createdBy in body is required"
        backwards = http.post(f"{fake.url}/api/v2/silences", json=_silence(endsAt="2026-11-24T05:00:00Z"))
        assert backwards.status_code == 400
        fake.fail_next(503, "", {"Retry-After": RETRY_AT})
        busy = http.post(f"{fake.url}/api/v2/silences", json=_silence())
        assert busy.status_code == 503 and busy.headers["retry-after"] == RETRY_AT
        assert fake.silences == {}
