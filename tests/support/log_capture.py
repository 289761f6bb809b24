"""The product's own logging configuration (`configure_logging`), writing into a buffer, undone after."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from services.runtime.observability import CHATTY_LOGGERS, configure_logging


@contextmanager
def product_logs(level: str, fmt: str = "text") -> Iterator[io.StringIO]:
    """What the process would write to stderr with ONCALL_LOG_LEVEL=level, ONCALL_LOG_FORMAT=fmt."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_chatty = {name: logging.getLogger(name).level for name in CHATTY_LOGGERS}
    stream = io.StringIO()
    real_stderr = sys.stderr
    sys.stderr = stream  # configure_logging's handler writes to the sys.stderr of the moment
    try:
        configure_logging(level, fmt)
    finally:
        sys.stderr = real_stderr
    try:
        yield stream
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        for name, chatty_level in saved_chatty.items():
            logging.getLogger(name).setLevel(chatty_level)


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
