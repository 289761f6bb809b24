"""recent_commits: who changed the failing file and when, from a real git repository (CODE_DIR)
made by the test and from the fake GitHub commits API."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fakes.github_fake import FakeGitHub
from faststream.nats import NatsBroker
from support.processes import run_process
from tools_service import call, tools_service

from services.contracts import tools
from services.contracts.tool_results import CommitsResult
from services.contracts.tools import RecentCommitsArgs
from services.runtime.demo import DEMO_BUGGY_FILE, install_demo_code
from services.tools.commits import recent_commits
from services.tools.errors import BackendError
from services.tools.git import LocalGit
from services.tools.github import GitHubClient
from services.tools.paths import ResolvedPaths

NOW = datetime(2026, 11, 24, 6, 5, tzinfo=UTC)
FRAME_PATH = f"/app/{DEMO_BUGGY_FILE}"  # as a stack frame names it
# (date, author, subject, file changed): the bug went in on 11-22, two days before the alert.
HISTORY = [
    (
        "2026-11-10T09:00:00Z",
        "Alice Ng",
        "inventory: first version of the reservation service",
        DEMO_BUGGY_FILE,
    ),
    ("2026-11-18T14:30:00Z", "Bob Stone", "docs: how to run the service", "README.md"),
    (
        "2026-11-22T17:45:00Z",
        "Ravi Kumar",
        "inventory: read stock entries from the new cache",
        DEMO_BUGGY_FILE,
    ),
    ("2026-11-23T08:10:00Z", "Bob Stone", "ci: cache pip downloads", ".ci/run"),
]


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = run_process(
        ["git", "-C", str(repo), *args], timeout=10, check=True, env={**os.environ, **(env or {})}
    )
    return done.stdout


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkout whose history is HISTORY, the demo's buggy file included."""
    root = install_demo_code(tmp_path_factory.mktemp("checkout"))
    shutil.rmtree(root / ".git")  # the demo's own history: this test writes its own
    git(root, "init", "--quiet", "--initial-branch=main")
    for date, author, subject, path in HISTORY:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("a") as file:
            file.write(f"# {subject}\n")
        git(root, "add", "--all")
        email = author.split()[0].lower() + "@example.com"
        people = {"GIT_AUTHOR_NAME": author, "GIT_AUTHOR_EMAIL": email, "GIT_COMMITTER_NAME": author}
        dates = {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date, "GIT_COMMITTER_EMAIL": email}
        git(root, "commit", "--quiet", "-m", subject, env=people | dates)
    return root


async def test_who_changed_the_failing_file_since_a_time(repo: Path) -> None:
    args = RecentCommitsArgs(path=FRAME_PATH, since=datetime(2026, 11, 15, tzinfo=UTC))

    result = await recent_commits(LocalGit(repo, 5), args, 2000, NOW)

    assert result.path == DEMO_BUGGY_FILE  # the container's /app/ prefix dropped
    assert result.since == "2026-11-15T00:00:00Z"
    assert [(c.author, c.date, c.title) for c in result.commits] == [
        ("Ravi Kumar", "2026-11-22T17:45:00Z", "inventory: read stock entries from the new cache"),
    ]
    assert len(result.commits[0].sha) == 12
    assert result.more is False


async def test_the_whole_repository_newest_first_with_a_limit(repo: Path) -> None:
    args = RecentCommitsArgs(since=datetime(2026, 11, 1, tzinfo=UTC), limit=2)

    result = await recent_commits(LocalGit(repo, 5), args, 2000, NOW)

    assert [c.title for c in result.commits] == [
        "ci: cache pip downloads",
        "inventory: read stock entries from the new cache",
    ]
    assert result.more is True


async def test_the_default_is_the_last_seven_days_until_a_time(repo: Path) -> None:
    args = RecentCommitsArgs(path=DEMO_BUGGY_FILE, until=datetime(2026, 11, 21, tzinfo=UTC))

    result = await recent_commits(LocalGit(repo, 5), args, 2000, NOW)

    assert (result.since, result.until) == ("2026-11-17T06:05:00Z", "2026-11-21T00:00:00Z")
    assert result.commits == []
    assert result.paths_tried == [DEMO_BUGGY_FILE, "inventory_service.py"]


async def test_a_checkout_that_is_not_a_git_repository(tmp_path: Path) -> None:
    plain = tmp_path / "plain"  # source files copied without their history
    (plain / "inventory").mkdir(parents=True)
    (plain / DEMO_BUGGY_FILE).write_text("def reserve_stock(): ...\n")
    with pytest.raises(BackendError) as raised:
        await recent_commits(LocalGit(plain, 5), RecentCommitsArgs(), 2000, NOW)
    assert raised.value.kind == "not_configured"
    assert "not a git checkout" in raised.value.message


async def test_a_git_that_takes_too_long_is_stopped(repo: Path) -> None:
    with pytest.raises(BackendError) as raised:
        await recent_commits(LocalGit(repo, 0.000_001), RecentCommitsArgs(), 2000, NOW)
    assert raised.value.kind == "timeout"


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    commits = [
        FakeGitHub.commit(
            f"{i:040x}",
            f"{subject}\n\nLonger explanation with token=ghp_{'x' * 36}",
            date,
            files=[path],
            author_name=author,
            login=author.split()[0].lower(),
        )
        for i, (date, author, subject, path) in enumerate(HISTORY, start=1)
    ]
    with FakeGitHub(commits=commits) as fake:
        yield fake


async def test_github_commits_of_a_stack_frame_path(github: FakeGitHub, http: httpx.AsyncClient) -> None:
    client = GitHubClient(http, github.url, "acme", "inventory", "main", "ghp_test")
    args = RecentCommitsArgs(path=FRAME_PATH, since=datetime(2026, 11, 1, tzinfo=UTC))

    result = await recent_commits(client, args, 2000, NOW)

    assert result.path == DEMO_BUGGY_FILE
    assert [(c.author, c.date, c.title) for c in result.commits] == [
        ("Ravi Kumar (@ravi)", "2026-11-22T17:45:00Z", "inventory: read stock entries from the new cache"),
        ("Alice Ng (@alice)", "2026-11-10T09:00:00Z", "inventory: first version of the reservation service"),
    ]
    assert result.commits[0].url == f"https://github.com/acme/inventory/commit/{3:040x}"
    asked = {r.arg("path") for r in github.requests}
    assert asked == {f"app/{DEMO_BUGGY_FILE}", DEMO_BUGGY_FILE, "inventory_service.py"}
    request = github.requests[0]
    assert (request.arg("sha"), request.arg("since"), request.arg("per_page")) == (
        "main",
        "2026-11-01T00:00:00Z",
        "10",
    )


async def test_the_path_fetch_code_found_is_the_only_history_asked(
    github: FakeGitHub, http: httpx.AsyncClient
) -> None:
    """Once fetch_code found the frame's file, its history is one request, not one per candidate."""
    client = GitHubClient(http, github.url, "acme", "inventory", "main", "ghp_test")
    resolved = ResolvedPaths()
    resolved.put(FRAME_PATH, DEMO_BUGGY_FILE)  # what CodeClient.fetch records when it finds the file
    args = RecentCommitsArgs(path=FRAME_PATH, since=datetime(2026, 11, 1, tzinfo=UTC))

    result = await recent_commits(client, args, 2000, NOW, resolved)

    assert (result.path, len(result.commits)) == (DEMO_BUGGY_FILE, 2)
    assert [r.arg("path") for r in github.requests] == [DEMO_BUGGY_FILE]


async def test_a_history_found_among_the_candidates_is_remembered(
    github: FakeGitHub, http: httpx.AsyncClient
) -> None:
    client = GitHubClient(http, github.url, "acme", "inventory", "main", "ghp_test")
    resolved = ResolvedPaths()
    args = RecentCommitsArgs(path=FRAME_PATH, since=datetime(2026, 11, 1, tzinfo=UTC))
    await recent_commits(client, args, 2000, NOW, resolved)
    before = len(github.requests)

    again = await recent_commits(client, args, 2000, NOW, resolved)

    assert again.path == DEMO_BUGGY_FILE
    assert [r.arg("path") for r in github.requests[before:]] == [DEMO_BUGGY_FILE]


async def test_github_pages_say_there_is_more(github: FakeGitHub, http: httpx.AsyncClient) -> None:
    client = GitHubClient(http, github.url, "acme", "inventory", "main", "ghp_test")
    result = await recent_commits(
        client, RecentCommitsArgs(since=datetime(2026, 11, 1, tzinfo=UTC), limit=3), 2000, NOW
    )
    assert (len(result.commits), result.more) == (3, True)


async def test_github_refusing_the_token_is_a_structured_error(
    github: FakeGitHub, http: httpx.AsyncClient
) -> None:
    client = GitHubClient(http, github.url, "acme", "inventory", "main", "ghp_wrong")
    with pytest.raises(BackendError) as raised:
        await recent_commits(client, RecentCommitsArgs(), 2000, NOW)
    assert raised.value.kind == "unavailable" and "GITHUB_TOKEN" in raised.value.message


@pytest.fixture
async def service(nats_url: str, repo: Path) -> AsyncIterator[NatsBroker]:
    async with tools_service(nats_url, CODE_DIR=str(repo)) as broker:
        yield broker


async def test_recent_commits_over_the_bus(service: NatsBroker) -> None:
    result = await call(service, tools.RECENT_COMMITS, {"path": FRAME_PATH, "since": "2026-11-01T00:00:00Z"})

    history = result.output(CommitsResult)
    assert history is not None, result.error  # typed, back from the bus
    assert [c.author for c in history.commits] == ["Ravi Kumar", "Alice Ng"]
