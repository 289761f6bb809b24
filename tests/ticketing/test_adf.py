"""The ticket description in Atlassian Document Format: sections from the diagnosis, valid for Jira."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fakes.jira_fake import is_adf_document

from services.contracts.models import Diagnosis, TicketRequested
from services.ticketing import adf


def _request(**overrides: Any) -> TicketRequested:
    fields: dict[str, Any] = {
        "request_id": "req-adf",
        "incident_id": "a1b2c3",
        "requested_by": "+15551234567",
        "title": "HighErrorRate on inventory",
        "summary": "5xx on POST /api/v1/reservations since 06:02 UTC.",
        "service": "inventory",
        "generator_url": "http://prometheus:9090/graph?g0.expr=rate",
        "runbook_url": "https://runbooks.example.com/inventory",
        "diagnosis": Diagnosis(
            root_cause="reserve_stock reads the cache entry of an uncached SKU, which is None.",
            affected_file="inventory_service.py",
            line=42,
            evidence=[
                "TypeError: 'NoneType' object is not subscriptable",
                'File "inventory_service.py", line 42, in reserve_stock',
            ],
            suggested_fix="Load the SKU from the database when the cache misses.",
            next_steps=["Hotfix the cache miss", "Add a test for uncached SKUs"],
            confidence=0.8,
        ),
    }
    fields.update(overrides)
    return TicketRequested(**fields)


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("content", []):
        yield from _nodes(child)


def _headings(document: dict[str, Any]) -> list[str]:
    return [n["content"][0]["text"] for n in document["content"] if n["type"] == "heading"]


def _all_text(document: dict[str, Any]) -> str:
    return " ".join(n["text"] for n in _nodes(document) if n["type"] == "text")


def test_builders_make_adf_nodes() -> None:
    document = adf.doc(
        adf.heading("Root cause", 2),
        adf.paragraph(adf.text("see "), adf.link("the runbook", "https://rb.example.com")),
        adf.bullet_list(["one", adf.text("two", marks=[{"type": "strong"}])]),
        adf.code_block("line 1\nline 2", language="text"),
    )
    assert document == {
        "type": "doc",
        "version": 1,
        "content": [
            {"type": "heading", "attrs": {"level": 2}, "content": [{"type": "text", "text": "Root cause"}]},
            {
                "type": "paragraph",
                "content": [
                    {"type": "text", "text": "see "},
                    {"type": "text", "text": "the runbook",
                     "marks": [{"type": "link", "attrs": {"href": "https://rb.example.com"}}]},
                ],
            },
            {
                "type": "bulletList",
                "content": [
                    {"type": "listItem", "content": [
                        {"type": "paragraph", "content": [{"type": "text", "text": "one"}]}]},
                    {"type": "listItem", "content": [
                        {"type": "paragraph", "content": [
                            {"type": "text", "text": "two", "marks": [{"type": "strong"}]}]}]},
                ],
            },
            {"type": "codeBlock", "attrs": {"language": "text"},
             "content": [{"type": "text", "text": "line 1\nline 2"}]},
        ],
    }  # fmt: skip
    assert is_adf_document(document)


@pytest.mark.parametrize(
    "build", [lambda: adf.text(""), lambda: adf.heading(""), lambda: adf.bullet_list([])]
)
def test_builders_refuse_what_jira_rejects(build: Any) -> None:
    with pytest.raises(ValueError):
        build()


def test_description_has_the_diagnosis_sections_in_order() -> None:
    document = adf.diagnosis_description(_request())

    assert is_adf_document(document)
    assert _headings(document) == ["Root cause", "Where", "Evidence", "Suggested fix", "Next steps", "Links"]
    assert "Service inventory. Priority P2; model diagnosis, confidence 80%." in _all_text(document)
    where = next(n for n in _nodes(document) if n.get("marks") == [{"type": "code"}])
    assert where["text"] == "inventory_service.py:42"
    evidence = next(n for n in document["content"] if n["type"] == "codeBlock")
    assert evidence["content"][0]["text"] == (
        "TypeError: 'NoneType' object is not subscriptable\n"
        'File "inventory_service.py", line 42, in reserve_stock'
    )
    steps = next(n for n in document["content"] if n["type"] == "bulletList")
    assert [item["content"][0]["content"][0]["text"] for item in steps["content"]] == [
        "Hotfix the cache miss",
        "Add a test for uncached SKUs",
    ]


def test_description_links_the_alert_and_runbook_and_says_where_it_came_from() -> None:
    document = adf.diagnosis_description(_request())

    hrefs = [m["attrs"]["href"] for n in _nodes(document) for m in n.get("marks", []) if m["type"] == "link"]
    assert hrefs == ["http://prometheus:9090/graph?g0.expr=rate", "https://runbooks.example.com/inventory"]
    assert document["content"][-1]["content"][0]["text"] == (
        "Created by the on-call agent from incident #a1b2c3 at the request of +15551234567."
    )


def test_blank_parts_are_left_out_so_no_text_node_is_empty() -> None:
    request = _request(
        summary="  ",
        generator_url="",
        runbook_url=None,
        service=None,
        diagnosis=Diagnosis(
            root_cause="Disk full on db-1", evidence=["", "  "], next_steps=[" "], method="rules"
        ),
    )
    document = adf.diagnosis_description(request)

    assert is_adf_document(document)
    assert _headings(document) == ["Root cause"]
    assert all(n["text"] for n in _nodes(document) if n["type"] == "text")
    assert "rule-based diagnosis" in _all_text(document)


def test_request_without_a_diagnosis_still_makes_a_valid_description() -> None:
    document = adf.diagnosis_description(_request(diagnosis=None, generator_url=None, runbook_url=None))

    assert is_adf_document(document)
    assert _headings(document) == []
    assert _all_text(document).startswith("5xx on POST /api/v1/reservations")


def test_huge_evidence_is_cut_to_jiras_limit_and_the_rest_survives() -> None:
    lines = [f'ERROR request {i} failed: connection reset by peer ünïcödé "quoted"' for i in range(5000)]
    request = _request(
        diagnosis=Diagnosis(root_cause="Pool exhausted", evidence=lines, next_steps=["Resize"])
    )

    document = adf.diagnosis_description(request)

    assert adf.serialised_length(document) <= adf.MAX_DESCRIPTION_CHARS
    assert is_adf_document(document)
    assert _headings(document) == ["Root cause", "Evidence", "Next steps", "Links"]
    evidence = next(n for n in document["content"] if n["type"] == "codeBlock")["content"][0]["text"]
    assert evidence.startswith(lines[0]) and evidence.endswith(adf.TRUNCATION_MARK)
    assert _all_text(document).endswith("at the request of +15551234567.")


def test_fit_drops_trailing_blocks_when_only_short_texts_remain() -> None:
    document = adf.doc(*(adf.paragraph(adf.text("ok")) for _ in range(100)))

    fitted = adf.fit(document, limit=500)

    assert adf.serialised_length(fitted) <= 500
    assert 0 < len(fitted["content"]) < 100
    assert len(document["content"]) == 100  # the input is left alone


def test_line_breaks_in_the_diagnosis_become_hard_breaks() -> None:
    request = _request(diagnosis=Diagnosis(root_cause="Pool exhausted.\n\nSince the 06:00 deploy.\n"))

    root_cause = adf.diagnosis_description(request)["content"][2]

    assert root_cause == adf.paragraph(
        adf.text("Pool exhausted."), adf.hard_break(), adf.text("Since the 06:00 deploy.")
    )


def test_evidence_of_several_lines_gets_its_own_code_block_in_order() -> None:
    trace = 'Traceback (most recent call last):\n  File "inventory_service.py", line 42\nTypeError: boom'
    window = "41     item = cache.get(sku)\n42 >>> return item['stock']"

    blocks = adf.evidence_blocks(["12× GET /api 500", "error rate 25.0%", trace, " ", window, "last line"])

    assert [b["content"][0]["text"] for b in blocks] == [
        "12× GET /api 500\nerror rate 25.0%",
        trace,
        window,
        "last line",
    ]
    assert all(b["type"] == "codeBlock" for b in blocks)
