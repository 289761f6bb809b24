"""Tool calls written as text: some servers (newer llama.cpp builds, several Ollama models) return
the model's call as JSON in `content` instead of `tool_calls`, fenced (```json ... ```), tagged
(<tool_call> ... </tool_call>, Qwen's own format) or bare. Those are the same calls and are read
as such; anything else stays text."""

import json
import re
from collections.abc import Collection, Iterator
from typing import Any

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)
_FENCED = re.compile(r"```[a-zA-Z_]*\s*\n?(.*?)```", re.S)
_DECODER = json.JSONDecoder()


def calls_in_text(content: str | None, offered: Collection[str]) -> list[dict[str, Any]]:
    """The calls of offered tools written in `content`, as `tool_calls` entries (ids `text_call_N`);
    [] when it holds none (prose, an unknown tool, JSON cut short)."""
    if not content or "{" not in content:
        return []
    blocks = [m.group(1) for m in _TAGGED.finditer(content)] + [m.group(1) for m in _FENCED.finditer(content)]
    found: list[tuple[str, str]] = []
    for block in blocks or [content]:
        for value in _json_values(block):
            found += [call for item in _as_list(value) if (call := _as_call(item, offered))]
    return [
        {"id": f"text_call_{index}", "type": "function", "function": {"name": name, "arguments": arguments}}
        for index, (name, arguments) in enumerate(found)
    ]


def _json_values(text: str) -> Iterator[Any]:
    """Every top-level JSON object or array in `text`, prose around them skipped."""
    index = 0
    while (start := _next_start(text, index)) >= 0:
        try:
            value, end = _DECODER.raw_decode(text, start)
        except ValueError:
            index = start + 1
            continue
        yield value
        index = end


def _next_start(text: str, index: int) -> int:
    starts = [i for i in (text.find("{", index), text.find("[", index)) if i >= 0]
    return min(starts) if starts else -1


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _as_call(item: Any, offered: Collection[str]) -> tuple[str, str] | None:
    """(name, arguments as JSON text) for {"name", "arguments"|"parameters"} or OpenAI's
    {"function": {...}} shape naming an offered tool."""
    if not isinstance(item, dict):
        return None
    if isinstance(item.get("function"), dict):
        item = item["function"]
    name = item.get("name")
    if not isinstance(name, str) or name not in offered:
        return None
    arguments = item.get("arguments", item.get("parameters", {}))
    if isinstance(arguments, str):
        return name, arguments  # already JSON text (checked where the call is carried out)
    if not isinstance(arguments, dict):
        return None
    return name, json.dumps(arguments)
