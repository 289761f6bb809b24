"""History of a local checkout (CODE_DIR) from `git log`, run as a subprocess with a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import os
from datetime import datetime
from pathlib import Path

from services.contracts.tool_results import CommitSummary
from services.tools.commits import CommitPage, commit_title
from services.tools.errors import BackendError
from services.tools.times import iso, parse_timestamp

# Unit and record separators: they cannot occur in names or subjects.
_FIELD, _RECORD = "\x1f", "\x1e"
_FORMAT = _FIELD.join(("%H", "%aN", "%cI", "%s")) + _RECORD
MAX_STDERR_CHARS = 300
# Plain English errors to match on; no pager, prompt or signature checks in a service.
_ENV = {"LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat"}


def parse_log(output: str) -> list[CommitSummary]:
    """`git log --format=_FORMAT` output -> commit summaries, as GitHub's are (see github.py)."""
    commits: list[CommitSummary] = []
    for record in output.split(_RECORD):
        fields = record.strip("\n").split(_FIELD)
        if len(fields) != 4:
            continue
        sha, author, date, subject = fields
        moment = parse_timestamp(date)
        commits.append(
            CommitSummary(
                sha=sha[:12], author=author, date=iso(moment) if moment else date, title=commit_title(subject)
            )
        )
    return commits


def git_error(stderr: str) -> BackendError:
    message = " ".join(stderr.split())[:MAX_STDERR_CHARS] or "git log failed"
    if "not a git repository" in message:
        return BackendError(
            "not_configured", f"CODE_DIR is not a git checkout, so it has no history: {message}"
        )
    return BackendError("unavailable", f"git log in CODE_DIR failed: {message}")


class LocalGit:
    """`git -C CODE_DIR log` for a path since a time."""

    def __init__(self, root: Path, timeout_seconds: float) -> None:
        self.root = root.resolve()
        self.timeout_seconds = timeout_seconds
        self.label = f"git log in CODE_DIR {self.root}"

    async def commits(
        self, path: str | None, since: datetime, until: datetime | None, limit: int
    ) -> CommitPage:
        args = ["-c", "log.showSignature=false", "log", f"--max-count={limit + 1}", f"--since={iso(since)}"]
        if until:
            args.append(f"--until={iso(until)}")
        args += [f"--format={_FORMAT}", "--"] + ([path] if path else [])
        stdout, stderr, code = await self._git(args)
        if code != 0:
            if "does not have any commits yet" in stderr:
                return CommitPage([], more=False)
            raise git_error(stderr)
        commits = parse_log(stdout)
        return CommitPage(commits[:limit], more=len(commits) > limit)

    async def _git(self, args: list[str]) -> tuple[str, str, int]:
        process = await asyncio.create_subprocess_exec(
            "git",
            "-C",
            str(self.root),
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **_ENV},
        )
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), self.timeout_seconds)
        except TimeoutError:
            raise BackendError("timeout", f"git log took more than {self.timeout_seconds:g}s") from None
        finally:
            if process.returncode is None:  # timed out or cancelled: leave no git behind
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        return stdout.decode(errors="replace"), stderr.decode(errors="replace"), process.returncode or 0
