"""Source code around a line, from the GitHub contents API or a local checkout (CODE_DIR)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from services.contracts.tool_results import CodeWindow, CommitSummary
from services.runtime.redaction import redact
from services.runtime.text import clip
from services.tools.commits import CommitPage, commit_title
from services.tools.errors import BackendError, get, json_body, retry_after_seconds, retrying, status_error
from services.tools.paths import SKIPPED_DIRS, ResolvedPaths, best_match, candidate_paths
from services.tools.times import iso

GITHUB = "GitHub"
MAX_LINE_CHARS = 300
# Up to 1 MB the contents API sends the file in its JSON; up to 100 MB only as the raw media
# type. Past 10 MB a file is generated or data, not code a person changed: not read.
MAX_FILE_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_CHARS = 12_000
# A file looked up by name: how many files of a checkout are searched, and how many of several
# equally good matches the error names.
MAX_SEARCHED_FILES = 200_000
MAX_LISTED_MATCHES = 5
API_VERSION = "2022-11-28"
RAW_MEDIA_TYPE = "application/vnd.github.raw+json"


class CodeSource(Protocol):
    """Where files are read from; `read` returns None when there is no such file; `files_named`
    lists the repository's paths of the files with that name (for a frame whose path differs)."""

    ref: str
    label: str

    async def read(self, path: str) -> str | None: ...

    async def files_named(self, name: str) -> list[str]: ...


def numbered_window(
    path: str, ref: str, text: str, line: int | None, context_lines: int, max_chars: int
) -> CodeWindow:
    """The lines around `line` (or the top of the file), at most `max_chars` as the model reads
    them (numbered, the target marked with `>`), redacted."""
    lines = text.splitlines()
    total = len(lines)
    if line is not None and line > total:
        raise BackendError("bad_request", f"line {line} is past the end of the file ({total} lines)")
    centre = line or 1
    start = max(1, centre - context_lines)
    end = min(total, centre + context_lines if line else 2 * context_lines + 1)
    window = [(n, clip(lines[n - 1], MAX_LINE_CHARS)) for n in range(start, end + 1)]
    width = len(str(end))
    rendered = [CodeWindow.numbered(n, code, width, n == line) for n, code in window]
    first, last, _ = _fit_lines(rendered, start, centre, max_chars)
    window = window[first - start : last - start + 1]
    texts = redact_lines([code for _, code in window])
    numbered = [(n, code) for (n, _), code in zip(window, texts, strict=True)]
    return CodeWindow(path=path, ref=ref, line=line, total_lines=total, lines=numbered)


def redact_lines(lines: list[str]) -> list[str]:
    """Redacted as one text, so that a secret spanning lines (a private key) is caught whole;
    redaction keeps the line breaks, so each line keeps its number."""
    if not lines:
        return []
    redacted = redact("\n".join(lines)).split("\n")
    if len(redacted) != len(lines):  # not expected; never let a line through unredacted
        redacted = [*redacted[: len(lines) - 1], "\n".join(redacted[len(lines) - 1 :])]
        redacted += [""] * (len(lines) - len(redacted))
    return redacted


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


class CodeClient:
    """fetch_code_from_github over either source: path search, line window, secrets redacted."""

    def __init__(
        self, source: CodeSource, max_chars: int = DEFAULT_MAX_CHARS, resolved: ResolvedPaths | None = None
    ) -> None:
        self.source = source
        self.max_chars = max_chars
        self.resolved = resolved if resolved is not None else ResolvedPaths()

    async def fetch(self, file_path: str, line: int | None = None, context_lines: int = 15) -> CodeWindow:
        """The path as given (less the container's leading folders), else the repository's file
        of that name whose trailing folders match the most (`com/shop/Cart.java` is found at
        `src/main/java/com/shop/Cart.java`)."""
        tried = candidate_paths(file_path)
        known = self.resolved.get(file_path)
        if known is not None:
            text = await self.source.read(known)
            if text is not None:
                return numbered_window(known, self.source.ref, text, line, context_lines, self.max_chars)
            self.resolved.forget(file_path)
        for path in tried:
            text = await self.source.read(path)
            if text is not None:
                self.resolved.put(file_path, path)
                return numbered_window(path, self.source.ref, text, line, context_lines, self.max_chars)
        name = tried[-1].rsplit("/", 1)[-1]
        found, tied = best_match(file_path, await self.source.files_named(name))
        text = await self.source.read(found) if found is not None else None
        if found is not None and text is not None:
            self.resolved.put(file_path, found)
            return numbered_window(found, self.source.ref, text, line, context_lines, self.max_chars)
        where = f"tried: {', '.join(tried)}"
        if tied:
            shown = ", ".join(tied[:MAX_LISTED_MATCHES])
            more = f" and {len(tied) - MAX_LISTED_MATCHES} more" if len(tied) > MAX_LISTED_MATCHES else ""
            where += f"; several files could be it: {shown}{more} (ask for one of them)"
        else:
            where += f"; no file named {name!r} anywhere in it"
        raise BackendError("not_found", f"no file {file_path!r} in {self.source.label} ({where})")


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

    async def files_named(self, name: str) -> list[str]:
        return await asyncio.to_thread(self._files_named, name)

    def _files_named(self, name: str) -> list[str]:
        """Paths under the root of the files called `name`, skipping dependency and build folders
        (and not following symlinked folders out of the checkout); at most MAX_SEARCHED_FILES."""
        found: list[str] = []
        seen = 0
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
            seen += len(files)
            if name in files:
                found.append(Path(folder, name).relative_to(self.root).as_posix())
            if seen > MAX_SEARCHED_FILES:
                break
        return found


class GitHubClient:
    """One repository at one ref: file contents (`/contents/{path}`) and history (`/commits`)."""

    def __init__(
        self, http: httpx.AsyncClient, api_url: str, owner: str, repo: str, ref: str, token: str | None
    ) -> None:
        self.http = http
        self.repo_url = f"{api_url.rstrip('/')}/repos/{owner}/{repo}"
        self.ref = ref
        self.label = f"{owner}/{repo}@{ref}"
        self.headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    async def read(self, path: str) -> str | None:
        url = f"{self.repo_url}/contents/{quote(path)}"
        response = await self._get(url, {"ref": self.ref}, self.headers, answers=(404,))
        if response.status_code == 404:
            return None  # also what a private repository answers without a valid token
        body = json_body(GITHUB, response)
        if needs_raw(body):
            return await self._read_raw(url, path, body.get("size"))
        return decode_contents(path, body)

    async def files_named(self, name: str) -> list[str]:
        """`GET /git/trees/{ref}?recursive=1`: every path of the ref in one request (GitHub sends
        at most 100,000 entries and says `truncated` past that; the search then covers those);
        dependency and build folders are left out, as in a checkout."""
        url = f"{self.repo_url}/git/trees/{quote(self.ref, safe='')}"
        response = await self._get(url, {"recursive": "1"}, self.headers, answers=(404, 409))
        if response.status_code != 200:
            return []  # no such ref, or an empty repository: nothing to find
        body = json_body(GITHUB, response)
        entries = body.get("tree") if isinstance(body, dict) else None
        return [
            entry["path"]
            for entry in entries or []
            if isinstance(entry, dict)
            and entry.get("type") == "blob"
            and isinstance(entry.get("path"), str)
            and entry["path"].rsplit("/", 1)[-1] == name
            and not SKIPPED_DIRS.intersection(entry["path"].split("/")[:-1])
        ]

    async def _read_raw(self, url: str, path: str, size: Any) -> str:
        """Files past the JSON tier come only as the raw media type."""
        if isinstance(size, int) and size > MAX_FILE_BYTES:
            raise BackendError("bad_request", f"{path} is {size} bytes, more than the {MAX_FILE_BYTES} read")
        headers = {**self.headers, "Accept": RAW_MEDIA_TYPE}
        response = await self._get(url, {"ref": self.ref}, headers)
        return response.content.decode("utf-8", errors="replace")

    async def commits(
        self, path: str | None, since: datetime, until: datetime | None, limit: int
    ) -> CommitPage:
        """`GET /commits?sha=&path=&since=&until=&per_page=`: newest first, one page."""
        params: dict[str, Any] = {"sha": self.ref, "since": iso(since), "per_page": limit}
        if path:
            params["path"] = path
        if until:
            params["until"] = iso(until)
        response = await self._get(f"{self.repo_url}/commits", params, self.headers, answers=(404, 409))
        if response.status_code == 409:
            return CommitPage([], more=False)  # "Git Repository is empty."
        if response.status_code == 404:
            raise BackendError(
                "not_found", f"no repository or ref {self.label} (or GITHUB_TOKEN cannot see it)"
            )
        body = json_body(GITHUB, response)
        if not isinstance(body, list):
            raise BackendError(
                "unavailable", f"GitHub answered a {type(body).__name__}, expected a list of commits"
            )
        more = 'rel="next"' in response.headers.get("link", "")
        return CommitPage([commit_summary(item) for item in body if isinstance(item, dict)], more)

    async def _get(
        self, url: str, params: dict[str, Any], headers: dict[str, str], answers: tuple[int, ...] = ()
    ) -> httpx.Response:
        """GET under the tools' read retries; a status neither 2xx nor in `answers` is a `github_error`."""

        async def attempt() -> httpx.Response:
            response = await get(self.http, GITHUB, url, params=params, headers=headers)
            if not (response.is_success or response.status_code in answers):
                raise github_error(response)
            return response

        return await retrying(attempt, f"{GITHUB} GET {url}")


def needs_raw(body: Any) -> bool:
    """A file of the 1-100 MB tier: JSON without content (`encoding` "none")."""
    return isinstance(body, dict) and body.get("type") == "file" and body.get("encoding") == "none"


def commit_summary(item: dict[str, Any]) -> CommitSummary:
    """Who, when, why: a commits-API item cut to what a diagnosis quotes."""
    commit = item.get("commit") or {}
    author = commit.get("author") or {}
    login = (item.get("author") or {}).get("login")
    name = author.get("name") or login or "?"
    return CommitSummary(
        sha=str(item.get("sha", ""))[:12],
        author=f"{name} (@{login})" if login and login != name else name,
        date=(commit.get("committer") or author).get("date"),
        title=commit_title(str(commit.get("message", ""))),
        url=item.get("html_url"),
    )


def decode_contents(path: str, body: Any) -> str:
    if isinstance(body, list):
        raise BackendError("bad_request", f"{path} is a directory in the repository, not a file")
    if not isinstance(body, dict) or body.get("type") != "file":
        kind = body.get("type") if isinstance(body, dict) else type(body).__name__
        raise BackendError("bad_request", f"{path} is a {kind}, not a file")
    if body.get("encoding") != "base64":
        raise BackendError(
            "unavailable", f"GitHub sent {path} in an unknown encoding {body.get('encoding')!r}"
        )
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
        # GitHub's 403 with an exhausted quota passes like a 429: transient, whatever the status says.
        return BackendError(
            "rate_limited", message, retry_after, system=GITHUB, status=status, transient=True
        )
    if status == 401:
        reason = message or "Bad credentials"
        message = f"GitHub rejected GITHUB_TOKEN (HTTP 401: {reason})"
        return BackendError("unavailable", message, system=GITHUB, status=status, transient=False)
    if status == 403:
        message = f"GitHub refused access (HTTP 403: {message}); check GITHUB_TOKEN's permissions"
        return BackendError("unavailable", message, system=GITHUB, status=status, transient=False)
    return status_error(GITHUB, response, message or None)


def _seconds_until_reset(headers: httpx.Headers) -> float | None:
    try:
        return max(float(headers["x-ratelimit-reset"]) - time.time(), 0.0)
    except (KeyError, ValueError):
        return None
