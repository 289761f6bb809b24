"""Text for people and models: one way to shorten it, one way to say how long something lasted."""

from __future__ import annotations

ELLIPSIS = "…"


def clip(text: str, limit: int) -> str:
    """`text` if it fits in `limit` characters, else its start and "…", `limit` characters at most
    (whitespace before the "…" is dropped)."""
    if len(text) <= limit:
        return text
    if limit < 1:
        return ""
    return text[: limit - 1].rstrip() + ELLIPSIS


def format_duration(seconds: float) -> str:
    """Two units at most, the way people say it, down to the second below a minute:
    "45 s", "23 min", "1 h", "1 h 23 min", "3 d", "2 d 3 h". Counts down (1 h 59 min 59 s is
    "1 h 59 min"); a negative span is "0 s"."""
    total = max(0, int(seconds))
    if total < 60:
        return f"{total} s"
    minutes, hours, days = total // 60 % 60, total // 3600 % 24, total // 86400
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"
