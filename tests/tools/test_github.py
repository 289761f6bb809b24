"""fetch_code_from_github over both sources: the GitHub contents API (fake) and a local checkout."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fakes.base import RecordedRequest, Response, http_date, json_response, wall_clock
from fakes.github_fake import FakeGitHub

from services.runtime.demo import DEMO_BUGGY_FILE, DEMO_BUGGY_LINE, install_demo_code
from services.tools.errors import BackendError
from services.tools.github import (
    MAX_FILE_BYTES,
    CodeClient,
    GitHubClient,
    LocalCheckout,
    github_error,
    numbered_window,
)
from services.tools.paths import ResolvedPaths, best_match, candidate_paths

FRAME_PATH = f"/app/{DEMO_BUGGY_FILE}"  # as printed in the demo service's tracebacks
TOKEN = "ghp_test"


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    return install_demo_code(tmp_path / "checkout")


@pytest.fixture
def demo_source(code_dir: Path) -> str:
    return (code_dir / DEMO_BUGGY_FILE).read_text()


@pytest.fixture
def github(demo_source: str) -> Iterator[FakeGitHub]:
    files = {
        DEMO_BUGGY_FILE: demo_source,
        "inventory/settings.py": "DSN = 'postgres://app:hunter2@db/shop'\n",
    }
    with FakeGitHub(token=TOKEN, owner="acme", repo="inventory", files=files, ref="main") as fake:
        yield fake


def contents(fake: FakeGitHub, http: httpx.AsyncClient, token: str | None = TOKEN) -> GitHubClient:
    return GitHubClient(http, fake.url, "acme", "inventory", "main", token)


@pytest.mark.parametrize(
    ("file_path", "candidates"),
    [
        (
            "/app/inventory/inventory_service.py",
            ["app/inventory/inventory_service.py", "inventory/inventory_service.py", "inventory_service.py"],
        ),
        (
            "/usr/src/app/inventory/inventory_service.py",
            [
                "usr/src/app/inventory/inventory_service.py",
                "src/app/inventory/inventory_service.py",
                "app/inventory/inventory_service.py",
                "inventory/inventory_service.py",
            ],
        ),
        ("inventory/inventory_service.py", ["inventory/inventory_service.py", "inventory_service.py"]),
        ("./inventory//inventory_service.py", ["inventory/inventory_service.py", "inventory_service.py"]),
        ("C:\\app\\svc.py", ["app/svc.py", "svc.py"]),
    ],
)
def test_candidate_paths_drop_leading_components(file_path: str, candidates: list[str]) -> None:
    assert candidate_paths(file_path) == candidates


@pytest.mark.parametrize("file_path", ["../etc/passwd", "inventory/../../secret", "/", "", "a\x00b"])
def test_candidate_paths_refuse_traversal_and_nothing(file_path: str) -> None:
    with pytest.raises(BackendError) as raised:
        candidate_paths(file_path)
    assert raised.value.kind == "bad_request"
    assert "file_path" in raised.value.message


def test_numbered_window_marks_the_line() -> None:
    text = "".join(f"line {n}\n" for n in range(1, 121))

    window = numbered_window("t.py", "main", text, 100, 2, 10_000)

    assert window.lines == [(n, f"line {n}") for n in range(98, 103)]  # numbers and text as data
    assert (window.line, window.line_text) == (100, "line 100")
    assert window.for_model() == {  # as the model reads it
        "path": "t.py",
        "ref": "main",
        "start_line": 98,
        "end_line": 102,
        "total_lines": 120,
        "code": "   98 | line 98\n   99 | line 99\n> 100 | line 100\n  101 | line 101\n  102 | line 102\n",
        "line": 100,
    }


def test_numbered_window_edges() -> None:
    text = "a\nb\nc\n"
    assert numbered_window("t", "main", text, 1, 5, 1000).numbered_text() == "> 1 | a\n  2 | b\n  3 | c\n"
    top = numbered_window("t", "main", text, None, 0, 1000)
    assert top.numbered_text() == "  1 | a\n" and top.line_text is None
    empty = numbered_window("t", "main", "", None, 5, 1000)
    assert (empty.start_line, empty.end_line, empty.lines) == (1, 0, [])
    with pytest.raises(BackendError, match="past the end"):
        numbered_window("t", "main", text, 4, 5, 1000)


def test_numbered_window_shrinks_to_the_budget_around_the_line() -> None:
    text = "".join(f"{'x' * 50}\n" for _ in range(100))
    window = numbered_window("t", "main", text, 50, 40, 600)
    assert len(window.numbered_text()) <= 600
    assert window.start_line <= 50 <= window.end_line
    assert abs((50 - window.start_line) - (window.end_line - 50)) <= 1


async def test_local_checkout_finds_a_stack_frame_path(code_dir: Path) -> None:
    result = await CodeClient(LocalCheckout(code_dir)).fetch(FRAME_PATH, DEMO_BUGGY_LINE, 3)

    assert (result.path, result.ref, result.start_line, result.end_line, result.line) == (
        DEMO_BUGGY_FILE,
        "local",
        44,
        50,
        47,
    )
    assert result.line_text == '    available = entry["available"] - entry["reserved"]'
    assert '> 47 |     available = entry["available"] - entry["reserved"]\n' in result.numbered_text()
    assert result.total_lines == len((code_dir / DEMO_BUGGY_FILE).read_text().splitlines())


async def test_local_checkout_not_found_lists_what_was_tried(code_dir: Path) -> None:
    with pytest.raises(BackendError) as raised:
        await CodeClient(LocalCheckout(code_dir)).fetch("/app/billing/invoice.py", 3)
    assert raised.value.kind == "not_found"
    assert "app/billing/invoice.py, billing/invoice.py, invoice.py" in raised.value.message
    assert "no file named 'invoice.py' anywhere in it" in raised.value.message


JAVA_FILES = {
    "src/main/java/com/shop/Cart.java": (
        "package com.shop;\n\nclass Cart {\n    int total() { return 1; }\n}\n"
    ),
    "src/main/java/com/shop/legacy/Cart.java": "package com.shop.legacy;\nclass Cart {}\n",
    "src/test/java/com/shop/Cart.java": "package com.shop;\nclass CartFixture {}\n",
    "node_modules/shop/com/shop/Cart.java": "not the code\n",
}


@pytest.mark.parametrize(
    ("file_path", "found", "tied"),
    [
        ("com/shop/Cart.java", "src/main/java/com/shop/Cart.java", []),  # a JVM package path; tests left out
        ("com/shop/legacy/Cart.java", "src/main/java/com/shop/legacy/Cart.java", []),
        ("/srv/app/shop/legacy/Cart.java", "src/main/java/com/shop/legacy/Cart.java", []),  # a container path
        ("Cart.java", None, ["src/main/java/com/shop/Cart.java", "src/main/java/com/shop/legacy/Cart.java"]),
        ("com/shop/Order.java", None, []),
    ],
)
def test_the_best_match_is_the_file_whose_trailing_folders_agree_most(
    file_path: str, found: str | None, tied: list[str]
) -> None:
    assert best_match(file_path, [p for p in JAVA_FILES if not p.startswith("node_modules")]) == (found, tied)


def write_files(root: Path, files: dict[str, str]) -> Path:
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


async def test_local_checkout_finds_a_java_file_by_its_package_path(tmp_path: Path) -> None:
    checkout = LocalCheckout(write_files(tmp_path, JAVA_FILES))

    result = await CodeClient(checkout).fetch("com/shop/Cart.java", 4, 1)

    assert (result.path, result.line_text) == (
        "src/main/java/com/shop/Cart.java",
        "    int total() { return 1; }",
    )
    assert await checkout.files_named("Cart.java") == [  # node_modules is not searched
        "src/main/java/com/shop/Cart.java",
        "src/main/java/com/shop/legacy/Cart.java",
        "src/test/java/com/shop/Cart.java",
    ]


async def test_several_equally_good_files_are_named_not_guessed(tmp_path: Path) -> None:
    with pytest.raises(BackendError) as raised:
        await CodeClient(LocalCheckout(write_files(tmp_path, JAVA_FILES))).fetch("Cart.java", 4)
    assert raised.value.kind == "not_found"
    assert (
        "several files could be it: src/main/java/com/shop/Cart.java, "
        "src/main/java/com/shop/legacy/Cart.java (ask for one of them)" in raised.value.message
    )


async def test_local_checkout_refuses_symlinks_out_of_the_dir(tmp_path: Path, code_dir: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("secret\n")
    os.symlink(outside, code_dir / "leak.py")
    with pytest.raises(BackendError) as raised:
        await CodeClient(LocalCheckout(code_dir)).fetch("leak.py", 1)
    assert raised.value.kind == "bad_request"


async def test_local_checkout_redacts_secrets(code_dir: Path) -> None:
    (code_dir / "settings.py").write_text(
        "DSN = 'postgres://app:hunter2@db/shop'\nAPI_KEY = 'AKIAIOSFODNN7EXAMPLE'\n"
    )
    result = await CodeClient(LocalCheckout(code_dir)).fetch("settings.py")
    for shown in (result.model_dump_json(), result.numbered_text()):  # on the bus and to the model
        assert "hunter2" not in shown and "AKIAIOSFODNN7EXAMPLE" not in shown
    assert result.line is None


async def test_a_private_key_across_lines_is_redacted_whole_and_the_lines_keep_their_numbers(
    code_dir: Path,
) -> None:
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7x\nq9Zk3Lw\n-----END RSA PRIVATE KEY-----"
    (code_dir / "keys.py").write_text(f'KEY = """{key}"""\nuse(KEY)\n')

    result = await CodeClient(LocalCheckout(code_dir)).fetch("keys.py", 5)

    assert [number for number, _ in result.lines] == [1, 2, 3, 4, 5]
    for shown in (result.model_dump_json(), result.numbered_text()):
        assert "MIIEowIBAAKCAQEA7x" not in shown and "q9Zk3Lw" not in shown
    assert result.line_text == "use(KEY)"


async def test_github_finds_a_stack_frame_path(github: FakeGitHub, http: httpx.AsyncClient) -> None:
    result = await CodeClient(contents(github, http)).fetch(FRAME_PATH, DEMO_BUGGY_LINE, 2)

    assert (result.path, result.ref, result.start_line, result.end_line) == (DEMO_BUGGY_FILE, "main", 45, 49)
    assert '> 47 |     available = entry["available"] - entry["reserved"]\n' in result.numbered_text()
    miss, hit = github.requests
    assert miss.path == "/repos/acme/inventory/contents/app/inventory/inventory_service.py"
    assert hit.path == f"/repos/acme/inventory/contents/{DEMO_BUGGY_FILE}"
    assert hit.arg("ref") == "main"
    assert hit.headers["authorization"] == f"Bearer {TOKEN}"
    assert hit.headers["accept"] == "application/vnd.github+json"
    assert hit.headers["x-github-api-version"] == "2022-11-28"


async def test_github_finds_a_java_file_through_the_repository_tree(http: httpx.AsyncClient) -> None:
    with FakeGitHub(token=TOKEN, owner="acme", repo="inventory", files=JAVA_FILES, ref="main") as fake:
        result = await CodeClient(contents(fake, http)).fetch("com/shop/Cart.java", 4, 1)
        requests = [(r.path, r.arg("recursive")) for r in fake.requests]

    assert (result.path, result.ref, result.line_text) == (
        "src/main/java/com/shop/Cart.java",
        "main",
        "    int total() { return 1; }",
    )
    assert requests == [
        ("/repos/acme/inventory/contents/com/shop/Cart.java", None),  # as given first
        ("/repos/acme/inventory/contents/shop/Cart.java", None),
        ("/repos/acme/inventory/contents/Cart.java", None),
        ("/repos/acme/inventory/git/trees/main", "1"),  # then one listing of every path
        ("/repos/acme/inventory/contents/src/main/java/com/shop/Cart.java", None),
    ]


async def test_the_fake_tree_has_githubs_shape(http: httpx.AsyncClient) -> None:
    with FakeGitHub(token=TOKEN, files={"a/b.py": "x\n", "c.py": ""}) as fake:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        flat = (await http.get(f"{fake.url}/repos/acme/inventory/git/trees/main", headers=headers)).json()
        deep = await http.get(f"{fake.url}/repos/acme/inventory/git/trees/main?recursive=1", headers=headers)
        missing = await http.get(f"{fake.url}/repos/acme/inventory/git/trees/nope", headers=headers)

    assert [(e["path"], e["type"]) for e in flat["tree"]] == [("a", "tree"), ("c.py", "blob")]
    body = deep.json()
    assert [(e["path"], e["type"], e["mode"]) for e in body["tree"]] == [
        ("a", "tree", "040000"),
        ("a/b.py", "blob", "100644"),
        ("c.py", "blob", "100644"),
    ]
    assert body["truncated"] is False and {"sha", "url"} <= set(body)
    assert body["tree"][1]["size"] == 2 and "size" not in body["tree"][0]
    assert missing.status_code == 404


async def test_github_without_a_token_sends_no_authorization(
    github: FakeGitHub, http: httpx.AsyncClient
) -> None:
    with pytest.raises(BackendError) as raised:
        await CodeClient(contents(github, http, token=None)).fetch(DEMO_BUGGY_FILE, 1)
    assert raised.value.kind == "not_found"  # GitHub hides a private repository behind a 404
    assert all("authorization" not in r.headers for r in github.requests)


async def test_github_bad_token(github: FakeGitHub, http: httpx.AsyncClient) -> None:
    with pytest.raises(BackendError) as raised:
        await CodeClient(contents(github, http, token="ghp_wrong")).fetch(DEMO_BUGGY_FILE, 1)
    assert raised.value.kind == "unavailable"
    assert "GITHUB_TOKEN" in raised.value.message and "Bad credentials" in raised.value.message


async def test_github_directory_is_a_bad_request(github: FakeGitHub, http: httpx.AsyncClient) -> None:
    with pytest.raises(BackendError, match="is a directory") as raised:
        await CodeClient(contents(github, http)).fetch("inventory", 1)
    assert raised.value.kind == "bad_request"


async def test_github_code_is_redacted(github: FakeGitHub, http: httpx.AsyncClient) -> None:
    result = await CodeClient(contents(github, http)).fetch("inventory/settings.py", 1)
    assert "hunter2" not in result.model_dump_json() and "hunter2" not in result.numbered_text()


async def test_a_secondary_rate_limit_until_an_http_date_is_waited_out(
    github: FakeGitHub, http: httpx.AsyncClient
) -> None:
    retry_at = math.ceil(time.time()) + 1  # 1 to 2 s away: short enough to wait for inside the call
    github.fail_next(429, "You have exceeded a secondary rate limit.", {"retry-after": http_date(retry_at)})

    await CodeClient(contents(github, http)).fetch(DEMO_BUGGY_FILE, DEMO_BUGGY_LINE)

    first, second = github.requests
    assert first.path == second.path
    assert wall_clock(second.started_at) >= retry_at - 0.05  # not before the date GitHub named


async def test_a_long_rate_limit_is_reported_with_its_wait(
    github: FakeGitHub, http: httpx.AsyncClient
) -> None:
    github.fail_next(429, "You have exceeded a secondary rate limit.", {"retry-after": "30"})

    with pytest.raises(BackendError) as raised:
        await CodeClient(contents(github, http)).fetch(DEMO_BUGGY_FILE, DEMO_BUGGY_LINE)

    error = raised.value
    assert (error.kind, error.retry_after, error.transient) == ("rate_limited", 30.0, True)
    assert len(github.requests) == 1  # the model is told at once, not kept waiting half a minute


@pytest.mark.parametrize(
    ("status", "headers", "kind", "retry_after"),
    [
        (403, {"x-ratelimit-remaining": "0", "retry-after": "30"}, "rate_limited", 30.0),
        (403, {"x-ratelimit-remaining": "0"}, "rate_limited", None),  # retry from x-ratelimit-reset, below
        (429, {"retry-after": "7"}, "rate_limited", 7.0),
        (403, {"x-ratelimit-remaining": "4999"}, "unavailable", None),
        (401, {}, "unavailable", None),
        (500, {}, "unavailable", None),
        (422, {}, "bad_request", None),
    ],
)
def test_github_error_kinds(
    status: int, headers: dict[str, str], kind: str, retry_after: float | None
) -> None:
    response = httpx.Response(status, headers=headers, json={"message": "nope"})
    error = github_error(response)
    assert error.kind == kind
    if retry_after is not None:
        assert error.retry_after == retry_after
    assert "nope" in error.message


def test_github_rate_limit_waits_until_the_reset() -> None:
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time()) + 120)}
    error = github_error(httpx.Response(403, headers=headers, json={"message": "API rate limit exceeded"}))
    assert error.kind == "rate_limited"
    assert error.retry_after is not None and 100 < error.retry_after <= 120
    assert "rate limit" in error.message


class GitHubSizeTiers(FakeGitHub):
    """GitHub's contents API for files over 1 MB: JSON without content (`encoding` "none"); the
    bytes only with the raw media type (docs/vendor-contracts.md §5)."""

    def _file(self, req: RecordedRequest, path: str) -> Response:
        accept = req.headers.get("accept", "").split(";")[0].strip()
        if len(self.files[path]) > 1024 * 1024 and accept == "application/vnd.github+json":
            return json_response(200, {**self._entry(path, "file"), "encoding": "none", "content": ""})
        return super()._file(req, path)


async def test_a_file_over_one_megabyte_comes_through_the_raw_media_type(http: httpx.AsyncClient) -> None:
    generated = "".join(f"ROW_{n} = {n!r}  # {'x' * 40}\n" for n in range(1, 30_001))
    with GitHubSizeTiers(token=TOKEN, files={"gen/table.py": generated}) as fake:
        result = await CodeClient(contents(fake, http)).fetch("gen/table.py", 25_000, 1)

    assert result.numbered_text().splitlines()[1].startswith("> 25000 | ROW_25000 = 25000")
    json_request, raw_request = fake.requests
    assert json_request.headers["accept"] == "application/vnd.github+json"
    assert raw_request.headers["accept"] == "application/vnd.github.raw+json"


async def test_a_file_over_the_read_limit_is_refused(http: httpx.AsyncClient) -> None:
    huge = {"data.bin": b"\0" * (MAX_FILE_BYTES + 1)}
    with GitHubSizeTiers(token=TOKEN, files=huge) as fake, pytest.raises(BackendError) as raised:
        await CodeClient(contents(fake, http)).fetch("data.bin", 1)
    assert raised.value.kind == "bad_request"
    assert len(fake.requests) == 1  # the size in the JSON answer is enough to say no


async def test_a_frame_path_found_once_is_read_with_one_request_after(
    github: FakeGitHub, http: httpx.AsyncClient
) -> None:
    """The next incident of the same service asks GitHub for the file once, not once per candidate."""
    code = CodeClient(contents(github, http), resolved=ResolvedPaths())
    await code.fetch(FRAME_PATH, DEMO_BUGGY_LINE, 2)
    before = len(github.requests)

    again = await code.fetch(FRAME_PATH, DEMO_BUGGY_LINE, 2)

    assert again.path == DEMO_BUGGY_FILE
    assert [r.path for r in github.requests[before:]] == [f"/repos/acme/inventory/contents/{DEMO_BUGGY_FILE}"]


async def test_a_remembered_path_that_stopped_answering_is_forgotten(
    github: FakeGitHub, http: httpx.AsyncClient
) -> None:
    """The file moved since: the old path answers 404, the candidates are tried again."""
    resolved = ResolvedPaths()
    resolved.put(FRAME_PATH, "old/place/inventory_service.py")

    result = await CodeClient(contents(github, http), resolved=resolved).fetch(FRAME_PATH, DEMO_BUGGY_LINE, 2)

    assert result.path == DEMO_BUGGY_FILE
    assert github.requests[0].path == "/repos/acme/inventory/contents/old/place/inventory_service.py"
    assert resolved.get(FRAME_PATH) == DEMO_BUGGY_FILE


def test_resolved_paths_expire_and_stay_bounded() -> None:
    now = [0.0]
    resolved = ResolvedPaths(ttl_seconds=600, size=2, clock=lambda: now[0])
    resolved.put("/app/a.py", "a.py")
    now[0] = 599.0
    assert resolved.get("/app/a.py") == "a.py"
    now[0] = 600.0
    assert resolved.get("/app/a.py") is None  # a file can move: asked again after ten minutes
    for name in ("b", "c", "d"):
        resolved.put(f"/app/{name}.py", f"{name}.py")
    assert [resolved.get(f"/app/{n}.py") for n in "bcd"] == [None, "c.py", "d.py"]
