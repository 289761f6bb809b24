"""The WhatsApp texts: what the on-call person reads, and how long texts are split."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from services.contracts.models import (
    Diagnosis,
    IncidentDiagnosed,
    IncidentResolved,
    NotifyText,
    TicketCreated,
    TicketFailed,
)
from services.notifier.messages import (
    MAX_EVIDENCE_CHARS,
    MAX_INVITE_CHARS,
    MAX_MESSAGE_CHARS,
    format_diagnosis,
    format_duration,
    format_ratio,
    format_resolved,
    format_text,
    format_ticket_created,
    format_ticket_failed,
    invitation,
    mask_number,
    split_message,
    text_length,
)

STARTED = datetime(2026, 11, 24, 6, 5, tzinfo=UTC)


def diagnosed(**changes: object) -> IncidentDiagnosed:
    diagnosis = Diagnosis(
        root_cause="reserve_stock() indexes the cache entry of an uncached SKU, which is None.",
        affected_file="inventory/inventory_service.py",
        line=47,
        evidence=[
            "TypeError: 'NoneType' object is not subscriptable\n  File \"inventory_service.py\", line 47",
            "212 of 230 errors in the last 5 min",
            "x" * 500,
            "a fourth line that is not shown",
        ],
        priority="P1",
        suggested_fix="Return 404 when the SKU is not in the cache instead of indexing None.",
        next_steps=["Deploy the fix", "Warm the cache for sku-90042"],
        method="model",
    )
    event = IncidentDiagnosed(
        incident_id="a1b2c3",
        title="HighErrorRate on inventory",
        severity="critical",
        started_at=STARTED,
        error_rate=0.2345,
        diagnosis=diagnosis,
    )
    return event.model_copy(update=changes)


def test_diagnosis_reads_like_the_seed_message_with_the_incident_tag() -> None:
    text = format_diagnosis(diagnosed())

    first_line = text.splitlines()[0]
    assert first_line == "🚨 *Incident diagnosis* #a1b2c3"
    for expected in (
        "*HighErrorRate on inventory*",
        "*Priority:* P1",
        "critical",
        "*Root cause:*\nreserve_stock() indexes the cache entry of an uncached SKU, which is None.",
        "`inventory/inventory_service.py:47`",
        "*Error rate:* 23.4%",
        "*Suggested fix:*\nReturn 404 when",
        "*Next steps:*\n- Deploy the fix\n- Warm the cache for sku-90042",
        "Reply to this message: `create jira task and assign to <name>`, `status`, `help`",
    ):
        assert expected in text
    # Sections in the seed's order.
    order = ["*Root cause:*", "*File:*", "*Evidence:*", "*Suggested fix:*", "*Next steps:*", "Reply to"]
    positions = [text.index(marker) for marker in order]
    assert positions == sorted(positions)


def test_evidence_is_at_most_three_quoted_single_lines_truncated() -> None:
    text = format_diagnosis(diagnosed())

    quoted = [line for line in text.splitlines() if line.startswith("> ")]
    assert len(quoted) == 3
    assert quoted[0].startswith("> TypeError: 'NoneType' object is not subscriptable File")
    assert len(quoted[2]) <= len("> ") + MAX_EVIDENCE_CHARS
    assert quoted[2].endswith("…")
    assert "a fourth line" not in text


def test_diagnosis_uses_only_formatting_whatsapp_renders() -> None:
    text = format_diagnosis(diagnosed(runbook_url="https://runbooks.example.com/inventory"))

    assert not re.search(r"^#+ ", text, re.MULTILINE)  # no Markdown headers
    assert "**" not in text
    assert not re.search(r"\[[^\]]*\]\([^)]*\)", text)  # no [text](url) links
    assert "Runbook: https://runbooks.example.com/inventory" in text


def test_rule_based_and_truncated_alerts_are_said() -> None:
    event = diagnosed(truncated_alerts=12)
    event.diagnosis.method = "rules"
    event.diagnosis.fallback_reason = "no model configured"

    text = format_diagnosis(event)

    assert "_Rule-based diagnosis: no model configured_" in text
    assert "12 more alert(s)" in text


def test_a_rule_based_diagnosis_says_which_model_failed_and_why() -> None:
    event = diagnosed()
    event.diagnosis.method = "rules"
    event.diagnosis.fallback_reason = "the model at api.example.com failed (timeout after 60 s)"

    text = format_diagnosis(event)

    assert "_Rule-based diagnosis: the model at api.example.com failed (timeout after 60 s)_" in text
    assert "no model" not in text


def test_a_rule_based_diagnosis_from_an_older_diagnoser_claims_no_reason() -> None:
    event = diagnosed()
    event.diagnosis.method = "rules"  # no fallback_reason: a diagnoser before the field existed

    text = format_diagnosis(event)

    assert "_Rule-based diagnosis_" in text
    assert "no model" not in text


def test_model_diagnosis_without_figures_has_no_empty_lines_for_them() -> None:
    event = diagnosed(error_rate=None, truncated_alerts=0)
    event.diagnosis.affected_file = None
    event.diagnosis.evidence = []

    text = format_diagnosis(event)

    for absent in ("Rule-based", "Error rate", "*File:*", "*Evidence:*", "alert(s)"):
        assert absent not in text
    assert "\n\n\n" not in text


def test_resolved_says_how_long_it_lasted() -> None:
    event = IncidentResolved(
        incident_id="a1b2c3",
        title="HighErrorRate on inventory",
        started_at=STARTED,
        resolved_at=STARTED + timedelta(hours=1, minutes=23),
        ticket_key="OPS-456",
        ticket_url="https://acme.atlassian.net/browse/OPS-456",
    )

    text = format_resolved(event)

    assert text.splitlines()[0] == "✅ *Resolved* #a1b2c3"
    assert "Lasted 1 h 23 min (06:05 → 07:28 UTC)" in text
    assert "Ticket: OPS-456 https://acme.atlassian.net/browse/OPS-456" in text
    no_link = format_resolved(event.model_copy(update={"ticket_url": None}))  # from an older diagnoser
    assert no_link.endswith("Ticket: OPS-456")


def test_resolved_without_start_time() -> None:
    text = format_resolved(IncidentResolved(incident_id="a1b2c3", title="Disk full", resolved_at=STARTED))

    assert "#a1b2c3" in text
    assert "Resolved at 06:05 UTC" in text
    assert "Lasted" not in text


def test_ticket_created_names_the_key_link_and_assignee() -> None:
    event = TicketCreated(
        request_id="r1",
        incident_id="a1b2c3",
        key="OPS-456",
        url="https://acme.atlassian.net/browse/OPS-456",
        assignee_name="Ravi Kumar",
    )

    text = format_ticket_created(event)

    assert "#a1b2c3" in text
    assert "*OPS-456* https://acme.atlassian.net/browse/OPS-456" in text
    assert "Assigned to Ravi Kumar" in text


def test_unassigned_ticket_says_why() -> None:
    event = TicketCreated(
        request_id="r1",
        incident_id="a1b2c3",
        key="OPS-7",
        url="https://x/browse/OPS-7",
        note="No Jira user matches 'Ravi'.",
    )

    text = format_ticket_created(event)

    assert "Unassigned" in text
    assert "No Jira user matches 'Ravi'." in text


def test_ticket_failure_gives_the_reason_and_how_to_retry() -> None:
    text = format_ticket_failed(
        TicketFailed(request_id="r1", incident_id="a1b2c3", reason="Jira is not configured.")
    )

    assert text.splitlines()[0] == "⚠️ *Jira task not created* #a1b2c3"
    assert "Jira is not configured." in text
    assert "create jira task" in text


def test_text_carries_its_incident_tag_once() -> None:
    tagged = NotifyText(notification_id="n1", incident_id="a1b2c3", text="Error rate is 2.1% now.")
    already = NotifyText(notification_id="n2", incident_id="a1b2c3", text="#a1b2c3: error rate 2.1%")
    untagged = NotifyText(notification_id="n3", text="No open incidents.")

    assert format_text(tagged) == "Error rate is 2.1% now.\n\n#a1b2c3"
    assert format_text(already) == "#a1b2c3: error rate 2.1%"
    assert format_text(untagged) == "No open incidents."


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(42, "42 s"), (600, "10 min"), (4980, "1 h 23 min"), (2 * 86400 + 3 * 3600, "2 d 3 h"), (-5, "0 s")],
)
def test_durations(seconds: float, expected: str) -> None:
    assert format_duration(seconds) == expected


def test_ratios() -> None:
    assert format_ratio(0.2345) == "23.4%"
    assert format_ratio(0.0001) == "<0.1%"
    assert format_ratio(0.0) == "0.0%"


# --- splitting ----------------------------------------------------------------------------


def _without_marker(part: str) -> str:
    body, _, marker = part.rpartition("\n")
    assert re.fullmatch(r"\(\d+/\d+\)( #[0-9a-f]{6})?", marker), marker
    return body


def test_a_text_within_the_limit_is_one_unmarked_part() -> None:
    text = format_diagnosis(diagnosed())
    assert split_message(text) == [text]


def test_a_long_text_is_split_at_line_boundaries_in_order() -> None:
    lines = [f"line {i:03d} " + "word " * 10 for i in range(120)]
    text = "\n".join(lines)

    parts = split_message(text, limit=500)

    assert len(parts) > 1
    assert all(text_length(p) <= 500 for p in parts)
    assert [p.rsplit("\n", 1)[1] for p in parts] == [f"({i}/{len(parts)})" for i in range(1, len(parts) + 1)]
    # Nothing lost, nothing reordered, no line cut in two.
    assert "\n".join(_without_marker(p) for p in parts) == text


def test_sections_stay_together_when_they_fit() -> None:
    sections = [f"*Section {i}*\n" + "\n".join(f"- item {i}.{j}" for j in range(8)) for i in range(12)]
    text = "\n\n".join(sections)

    parts = split_message(text, limit=300)

    for part in parts:
        body = _without_marker(part)
        assert body.startswith("*Section")  # a part never starts mid-section
    assert "\n\n".join(_without_marker(p) for p in parts) == text


def test_later_parts_carry_the_incident_tag() -> None:
    text = "🚨 *Incident diagnosis* #a1b2c3\n" + "\n".join("evidence line " * 8 for _ in range(40))

    parts = split_message(text, limit=400, tag="#a1b2c3")

    assert all("#a1b2c3" in p for p in parts)
    assert parts[0].endswith(f"\n(1/{len(parts)})")  # already tagged in its header
    assert parts[1].endswith(f"\n(2/{len(parts)}) #a1b2c3")


def test_a_line_longer_than_a_part_is_cut_between_words() -> None:
    text = " ".join(f"w{i:04d}" for i in range(1000))  # one 6000-character line

    parts = split_message(text, limit=MAX_MESSAGE_CHARS)

    assert all(text_length(p) <= MAX_MESSAGE_CHARS for p in parts)
    words = " ".join(_without_marker(p).replace("\n", " ") for p in parts).split()
    assert words == text.split()


def test_emoji_count_twice_toward_the_limit() -> None:
    text = "\n".join("🚨" * 50 for _ in range(10))  # 500 characters, 1000 UTF-16 units

    parts = split_message(text, limit=400)

    assert text_length("🚨") == 2
    assert all(text_length(p) <= 400 for p in parts)
    assert len(parts) == 4


def test_ten_or_more_parts_keep_within_the_limit() -> None:
    text = "\n".join("x" * 90 for _ in range(60))

    parts = split_message(text, limit=200, tag="#a1b2c3")

    assert len(parts) >= 10
    assert all(text_length(p) <= 200 for p in parts)
    assert parts[-1].endswith(f"({len(parts)}/{len(parts)}) #a1b2c3")


def test_the_template_invitation_is_one_short_line_led_by_the_tag() -> None:
    assert invitation("a1b2c3", "HighErrorRate on checkout") == "#a1b2c3 HighErrorRate on checkout"
    assert invitation("a1b2c3", "already tagged #a1b2c3") == "already tagged #a1b2c3"
    assert invitation(None, "I have no open incident") == "I have no open incident"
    # WhatsApp refuses newlines, tabs and long runs of spaces in a template variable.
    long = invitation("a1b2c3", "line one\n\tline     two " + "x" * 500)
    assert "\n" not in long and "\t" not in long and "  " not in long
    assert len(long) == MAX_INVITE_CHARS and long.endswith("…")


def test_numbers_are_masked_for_reading() -> None:
    assert mask_number("+15551230001") == "+1555…0001"
    assert mask_number("console") == "console"
