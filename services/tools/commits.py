"""recent_commits: who changed a file (or the repository) since a time, from GitHub or `git log`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from services.contracts.tool_results import CommitsResult, CommitSummary
from services.contracts.tools import RecentCommitsArgs
from services.runtime.redaction import redact
from services.runtime.text import clip
from services.tools.log_compression import size_in_tokens
from services.tools.paths import ResolvedPaths, candidate_paths
from services.tools.times import as_utc, iso

DEFAULT_LOOKBACK = timedelta(days=7)
MAX_TITLE_CHARS = 120


@dataclass(frozen=True)
class CommitPage:
    """Commit summaries, newest first."""

    commits: list[CommitSummary]
    more: bool  # there were more than asked for


def commit_title(message: str) -> str:
    """The subject line of a commit message, clipped and redacted (messages can quote secrets)."""
    title = message.strip().split("\n", 1)[0]
    return redact(clip(title, MAX_TITLE_CHARS))


class CommitSource(Protocol):
    label: str

    async def commits(
        self, path: str | None, since: datetime, until: datetime | None, limit: int
    ) -> CommitPage: ...


async def history(
    source: CommitSource,
    path: str | None,
    since: datetime,
    until: datetime | None,
    limit: int,
    resolved: ResolvedPaths | None = None,
) -> tuple[str | None, CommitPage, list[str]]:
    """Commits of `path`, a stack-frame path resolved like fetch_code's: the repository path it
    is known to be (fetch_code found the file there, or its history was there), else every
    candidate at once, the longest one with commits wins. Returns (path used, page, paths tried)."""
    if path is None:
        return None, await source.commits(None, since, until, limit), []
    known = resolved.get(path) if resolved is not None else None
    if known is not None:
        return known, await source.commits(known, since, until, limit), [known]
    tried = candidate_paths(path, "path")
    pages = await asyncio.gather(*(source.commits(p, since, until, limit) for p in tried))
    for candidate, page in zip(tried, pages, strict=True):
        if page.commits:
            if resolved is not None:
                resolved.put(path, candidate)
            return candidate, page, tried
    return tried[0], pages[0], tried


def fit_commits(result: CommitsResult, max_tokens: int) -> CommitsResult:
    """Drop the oldest commits until the result fits; `more` then says there are others."""
    while len(result.commits) > 1 and size_in_tokens(result) > max_tokens:
        result.commits = result.commits[:-1]
        result.more = True
    return result


async def recent_commits(
    source: CommitSource,
    args: RecentCommitsArgs,
    max_tokens: int,
    now: datetime,
    resolved: ResolvedPaths | None = None,
) -> CommitsResult:
    since = as_utc(args.since) if args.since else now - DEFAULT_LOOKBACK
    until = as_utc(args.until) if args.until else None
    path, page, tried = await history(source, args.path, since, until, args.limit, resolved)
    result = CommitsResult(
        path=path,
        since=iso(since),
        until=iso(until) if until else None,
        source=source.label,
        commits=page.commits,
        more=page.more,
        paths_tried=tried if tried and not page.commits else None,
    )
    return fit_commits(result, max_tokens)
