"""Every request fits the model's context (ONCALL_MODEL_CONTEXT_TOKENS): a server holding 8,192
tokens answers a longer request with an error, or silently drops its beginning. What is cut is
tool output, largest first, each cut said in place so the model knows something is missing."""

import json
from dataclasses import dataclass
from typing import Any

# Characters per token, on the low side for JSON, code and log lines with BPE tokenizers (about
# 3.3 measured for Qwen2.5 on this product's evidence), so that the estimate errs towards cutting.
CHARS_PER_TOKEN = 3.0
# Per-message overhead of chat templates (role markers), in tokens.
MESSAGE_OVERHEAD_TOKENS = 8
# A tool result is never cut below this many characters: its head says what it was.
MIN_KEPT_CHARS = 400
# The answer keeps at least this many tokens, whatever the prompt (a send_diagnosis call needs ~300).
MIN_ANSWER_TOKENS = 384


@dataclass(frozen=True)
class Fitted:
    messages: list[dict[str, Any]]
    max_tokens: int
    cut_chars: int  # characters of tool output left out to fit


def estimate_tokens(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> int:
    chars = len(json.dumps(messages, ensure_ascii=False)) + len(json.dumps(tools or [], ensure_ascii=False))
    return int(chars / CHARS_PER_TOKEN) + MESSAGE_OVERHEAD_TOKENS * len(messages)


def cut_note(left_out: int, context_tokens: int) -> str:
    return f" …[cut to fit the model's context of {context_tokens} tokens: {left_out} characters left out]"


def fit_to_context(
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    context_tokens: int,
    max_output_tokens: int,
) -> Fitted:
    """`messages` (unchanged when they fit) and the answer's token limit, so that prompt + answer
    stay within `context_tokens`: tool results are cut, largest first, then the answer's limit
    shrinks down to MIN_ANSWER_TOKENS. Never raises: a request is never refused for its length."""
    answer = min(max_output_tokens, max(MIN_ANSWER_TOKENS, context_tokens // 4))
    room = context_tokens - answer
    estimate = estimate_tokens(messages, tools)
    if estimate <= room:
        return Fitted(messages, answer, 0)
    fitted = [dict(m) for m in messages]
    excess_chars = int((estimate - room) * CHARS_PER_TOKEN) + 1
    cut_total = 0
    while excess_chars > 0:
        index = _largest_tool_result(fitted)
        if index is None:
            break
        content: str = fitted[index]["content"]
        note = cut_note(0, context_tokens)
        keep = max(MIN_KEPT_CHARS, len(content) - excess_chars - len(note) - 8)
        left_out = len(content) - keep
        fitted[index]["content"] = content[:keep] + cut_note(left_out, context_tokens)
        saved = len(content) - len(fitted[index]["content"])
        if saved <= 0:
            break
        cut_total += left_out
        excess_chars -= saved
    estimate = estimate_tokens(fitted, tools)
    answer = max(MIN_ANSWER_TOKENS, min(answer, context_tokens - estimate))
    return Fitted(fitted, answer, cut_total)


def _largest_tool_result(messages: list[dict[str, Any]]) -> int | None:
    """The tool message with the most characters still above MIN_KEPT_CHARS (plus room for the note)."""
    best, best_len = None, MIN_KEPT_CHARS + 200
    for index, message in enumerate(messages):
        content = message.get("content")
        if message.get("role") == "tool" and isinstance(content, str) and len(content) > best_len:
            best, best_len = index, len(content)
    return best
