"""Source code around a line, from the GitHub contents API or a local checkout (CODE_DIR)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from services.tools.errors import BackendError, get, json_body, retry_after_seconds, status_error
from services.tools.log_compression import redact

GITHUB = "GitHub"
# A stack-frame path carries the container's prefix (/app/, /usr/src/app/): drop leading
# components until a file is found, at most this many tries (each one a request on GitHub).
MAX_PATH_ATTEMPTS = 4
MAX_LINE_CHARS = 300
MAX_FILE_BYTES = 1024 * 1024  # the contents API's JSON tier; larger files are not source we read
DEFAULT_MAX_CHARS = 12_000
API_VERSION = "2022-11-28"


class CodeSource(Protocol):
    """Where files are read from; `read` returns None when there is no such file."""

    ref: str
    label: str

    async def read(self, path: str) -> str | None: ...


def candidate_paths(file_path: str) -> list[str]:
    """Repository-relative paths to try for `file_path`, the path as given first.

    Leading `/`, `./` and a Windows drive are dropped; `..` anywhere is refused, so every
    candidate stays inside the repository.
    """
    if "\x00" in file_path:
        raise BackendError("bad_request", "file_path contains a NUL character")
    parts = [p for p in file_path.strip().replace("\\", "/").split("/") if p not in ("", ".")]
    if parts and len(parts[0]) == 2 and parts[0][1] == ":":
        parts = parts[1:]  # C: from a Windows stack frame
    if ".." in parts:
        raise BackendError("bad_request", f"file_path {file_path!r} must not contain '..'")
    if not parts:
        raise BackendError("bad_request", f"file_path {file_path!r} names no file")
    return ["/".join(parts[i:]) for i in range(min(len(parts), MAX_PATH_ATTEMPTS))]


def numbered_window(text: str, line: int | None, context_lines: int, max_chars: int) -> dict[str, Any]:
    """The lines around `line` (or the top of the file), numbered, the target marked with `>`."""
    lines = text.splitlines()
    total = len(lines)
    if line is not None and line > total:
        raise BackendError("bad_request", f"line {line} is past the end of the file ({total} lines)")
    centre = line or 1
    start = max(1, centre - context_lines)
    end = min(total, centre + context_lines if line else 2 * context_lines + 1)
    width = len(str(end))
    rendered = [
        f"{'>' if n == line else ' '} {n:>{width}} | {_clip(lines[n - 1], MAX_LINE_CHARS)}\n"
        for n in range(start, end + 1)
    ]
    start, end, rendered = _fit_lines(rendered, start, centre, max_chars)
    return {"start_line": start, "end_line": end, "total_lines": total, "code": redact("".join(rendered))}


def _fit_lines(rendered: list[str], start: int, centre: int, max_chars: int) -> tuple[int, int, list[str]]:
    """Drop lines from the side farther from `centre` until the window fits `max_chars`."""
    size = sum(len(r) for r in rendered)
    while size > max_chars and len(rendered) > 1:
        end = start + len(rendered) - 1
        if centre - start >= end - centre:
            size -= len(rendered.pop(0))
            start += 1
        else:
            size -= len(rendered.pop())
    return start, start + len(rendered) - 1, rendered


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class CodeClient:
    """fetch_code_from_github over either source: path search, line window, secrets redacted."""

    def __init__(self, source: CodeSource, max_chars: int = DEFAULT_MAX_CHARS) -> None:
        self.source = source
        self.max_chars = max_chars

    async def fetch(self, file_path: str, line: int | None = None, context_lines: int = 15) -> dict[str, Any]:
        tried = candidate_paths(file_path)
        for path in tried:
            text = await self.source.read(path)
            if text is not None:
                window = numbered_window(text, line, context_lines, self.max_chars)
                return {"path": path, "ref": self.source.ref, **window, "line": line}
        message = f"no file {file_path!r} in {self.source.label} (tried: {', '.join(tried)})"
        raise BackendError("not_found", message)


class LocalCheckout:
    """A checkout on disk (CODE_DIR); symlinks are resolved and must stay inside it."""

    ref = "local"

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.label = f"CODE_DIR {self.root}"

    async def read(self, path: str) -> str | None:
        return await asyncio.to_thread(self._read, path)

    def _read(self, path: str) -> str | None:
        target = (self.root / path).resolve()
        if not target.is_relative_to(self.root):
            raise BackendError("bad_request", f"{path!r} leads outside CODE_DIR")
        if not target.is_file():
            return None
        if target.stat().st_size > MAX_FILE_BYTES:
            raise BackendError("bad_request", f"{path} is larger than {MAX_FILE_BYTES} bytes")
        return target.read_text(encoding="utf-8", errors="replace")


class GitHubContents:
    """`GET {api}/repos/{owner}/{repo}/contents/{path}?ref=`; base64 content with line breaks."""

    def __init__(
        self, http: httpx.AsyncClient, api_url: str, owner: str, repo: str, ref: str, token: str | None
    ) -> None:
        self.http = http
        self.api_url = api_url.rstrip("/")
        self.owner, self.repo, self.ref = owner, repo, ref
        self.label = f"{owner}/{repo}@{ref}"
        self.headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    async def read(self, path: str) -> str | None:
        url = f"{self.api_url}/repos/{self.owner}/{self.repo}/contents/{quote(path)}"
        response = await get(self.http, GITHUB, url, params={"ref": self.ref}, headers=self.headers)
        if response.status_code == 404:
            return None  # also what a private repository answers without a valid token
        if not response.is_success:
            raise github_error(response)
        return decode_contents(path, json_body(GITHUB, response))


def decode_contents(path: str, body: Any) -> str:
    if isinstance(body, list):
        raise BackendError("bad_request", f"{path} is a directory in the repository, not a file")
    if not isinstance(body, dict) or body.get("type") != "file":
        kind = body.get("type") if isinstance(body, dict) else type(body).__name__
        raise BackendError("bad_request", f"{path} is a {kind}, not a file")
    if body.get("encoding") != "base64":
        size = body.get("size")
        raise BackendError("bad_request", f"{path} is too large for the contents API ({size} bytes)")
    try:
        raw = base64.b64decode(body.get("content", ""))  # the default decoder skips the line breaks
    except (binascii.Error, ValueError) as exc:
        raise BackendError("unavailable", f"GitHub sent undecodable content for {path}") from exc
    return raw.decode("utf-8", errors="replace")


def github_error(response: httpx.Response) -> BackendError:
    """401 is a bad token; 403/429 with an exhausted quota or Retry-After is a rate limit."""
    status = response.status_code
    try:
        message = str(response.json().get("message", ""))
    except (ValueError, AttributeError):
        message = ""
    remaining = response.headers.get("x-ratelimit-remaining")
    retry_after = retry_after_seconds(response.headers)
    if status in (403, 429) and (remaining == "0" or retry_after is not None or status == 429):
        if retry_after is None and remaining == "0":
            retry_after = _seconds_until_reset(response.headers)
        wait = f"; retry in {retry_after:.0f}s" if retry_after is not None else ""
        message = f"GitHub rate limit hit (HTTP {status}: {message}){wait}"
        return BackendError("rate_limited", message, retry_after)
    if status == 401:
        reason = message or "Bad credentials"
        return BackendError("unavailable", f"GitHub rejected GITHUB_TOKEN (HTTP 401: {reason})")
    if status == 403:
        return BackendError(
            "unavailable", f"GitHub refused access (HTTP 403: {message}); check GITHUB_TOKEN's permissions"
        )
    return status_error(GITHUB, response, message or None)


def _seconds_until_reset(headers: httpx.Headers) -> float | None:
    try:
        return max(float(headers["x-ratelimit-reset"]) - time.time(), 0.0)
    except (KeyError, ValueError):
        return None
