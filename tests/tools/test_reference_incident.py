"""The reference incident (bench/tools.py (c)): 2,000 lines in, a tenth of their tokens out, with
every error signature and the failing frame."""

from __future__ import annotations

import collections
import json

from reference_incident import (
    ALERT_START,
    ERROR_TEMPLATES,
    PRICING_FILE,
    PRICING_LINE,
    reference_lines,
)

from services.tools.log_compression import LogEntry, compress_logs, size_in_tokens
from services.tools.tokens import estimate_tokens


def test_the_incident_is_what_its_description_says() -> None:
    lines = reference_lines()
    assert len(lines) == 2000
    assert collections.Counter(line["level"] for line in lines) == {
        "INFO": 1091,
        "DEBUG": 327,
        "WARN": 172,
        "ERROR": 410,
    }
    assert reference_lines() == lines  # deterministic


def test_a_tenth_of_the_tokens_with_every_error_signature_and_the_frame() -> None:
    lines = reference_lines()

    result = compress_logs([LogEntry.model_validate(line) for line in lines], 2000, ALERT_START)

    raw, compressed = estimate_tokens(json.dumps(lines)), size_in_tokens(result)
    assert compressed <= 2000
    assert compressed * 10 <= raw
    errors = [t for t in result.templates if t.level == "ERROR"]
    assert sorted(t.template for t in errors) == sorted(ERROR_TEMPLATES)
    assert [t.new for t in errors] == [True, True, False]  # the two that came with the alert first
    assert result.top_frame is not None
    assert (result.top_frame.file, result.top_frame.line) == (PRICING_FILE, PRICING_LINE)
    dumped = result.model_dump_json()
    assert "@example.com" not in dumped and "Bearer eyJ" not in dumped
