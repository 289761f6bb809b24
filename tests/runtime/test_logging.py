"""The agent's own logs: no line per HTTP request of the client libraries unless DEBUG."""

from __future__ import annotations

import logging

import httpx
import pytest
from support.log_capture import json_lines, product_logs


def _one_request() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"status": "success"}))
    with httpx.Client(transport=transport) as client:
        assert client.get("http://prometheus.example:9090/api/v1/query").status_code == 200


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_no_httpx_request_line_at_info(fmt: str) -> None:
    with product_logs("INFO", fmt) as out:
        _one_request()
        logging.getLogger("oncall.tools").info("fetch_logs answered")
    text = out.getvalue()
    assert "fetch_logs answered" in text  # the agent's own INFO lines are there
    assert "HTTP Request" not in text
    assert "prometheus.example" not in text


def test_httpx_warnings_still_shown_at_info() -> None:
    with product_logs("INFO", "json") as out:
        logging.getLogger("httpx").warning("connection pool is full")
    assert [line["logger"] for line in json_lines(out)] == ["httpx"]


def test_debug_shows_the_request_lines() -> None:
    with product_logs("DEBUG") as out:
        _one_request()
    assert 'HTTP Request: GET http://prometheus.example:9090/api/v1/query "HTTP/1.1 200 OK"' in out.getvalue()


def test_info_after_debug_hides_them_again() -> None:
    """Configuring twice (tests, `oncall` subcommands) leaves no DEBUG level behind."""
    with product_logs("DEBUG"), product_logs("INFO") as out:
        _one_request()
    assert "HTTP Request" not in out.getvalue()
