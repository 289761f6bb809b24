"""Tool calls written as text by servers that do not fill `tool_calls` (textcalls.py), and what
is cut to fit a small context (context.py): pure functions."""

import json

from services.diagnoser.context import estimate_tokens, fit_to_context
from services.diagnoser.textcalls import calls_in_text

OFFERED = {"fetch_logs", "send_diagnosis"}


def names_and_args(content: str) -> list[tuple[str, dict[str, object]]]:
    return [
        (c["function"]["name"], json.loads(c["function"]["arguments"]))
        for c in calls_in_text(content, OFFERED)
    ]


def test_fenced_tagged_bare_and_openai_shaped_calls_are_read() -> None:
    assert names_and_args('```json\n{"name": "fetch_logs", "arguments": {"seconds": 60}}\n```') == [
        ("fetch_logs", {"seconds": 60})
    ]
    assert names_and_args('<tool_call>\n{"name": "fetch_logs", "arguments": {}}\n</tool_call>') == [
        ("fetch_logs", {})
    ]
    assert names_and_args('I will look. {"name": "fetch_logs", "parameters": {"seconds": 5}} Done.') == [
        ("fetch_logs", {"seconds": 5})
    ]
    two = json.dumps(
        [
            {"function": {"name": "fetch_logs", "arguments": "{}"}},
            {"name": "send_diagnosis", "arguments": {"x": 1}},
        ]
    )
    assert [name for name, _ in names_and_args(two)] == ["fetch_logs", "send_diagnosis"]


def test_prose_unknown_tools_and_json_cut_short_stay_text() -> None:
    assert calls_in_text("The cause is a KeyError in payments.py line 31.", OFFERED) == []
    assert calls_in_text('{"name": "delete_database", "arguments": {}}', OFFERED) == []
    assert calls_in_text('{"name": "send_diagnosis", "arguments": {"root_cause": "Orders with', OFFERED) == []
    assert calls_in_text(None, OFFERED) == []


def test_what_fits_is_sent_unchanged_and_what_does_not_is_cut_with_a_note() -> None:
    small = [{"role": "system", "content": "hi"}, {"role": "tool", "tool_call_id": "a", "content": "x" * 100}]
    fitted = fit_to_context(small, None, 8192, 1024)
    assert fitted.messages == small and fitted.cut_chars == 0 and fitted.max_tokens == 1024
    big = [
        {"role": "system", "content": "You are on call."},
        {"role": "tool", "tool_call_id": "a", "content": "L" * 40_000},
        {"role": "tool", "tool_call_id": "b", "content": "C" * 3_000},
    ]
    fitted = fit_to_context(big, None, 4096, 1024)
    assert estimate_tokens(fitted.messages) + fitted.max_tokens <= 4096
    assert (
        fitted.messages[1]["content"].startswith("L" * 400) and "cut to fit" in fitted.messages[1]["content"]
    )
    assert fitted.messages[2]["content"] == "C" * 3_000  # the largest was cut first, and enough
    assert big[1]["content"] == "L" * 40_000  # the conversation itself is left whole
