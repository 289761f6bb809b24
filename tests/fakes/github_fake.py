"""Fake GitHub REST contents, commits and git trees endpoints of one repository and ref
(docs/vendor-contracts.md §5)."""

from __future__ import annotations

import base64
import hashlib
import posixpath
import re
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlencode

from .base import FakeHTTPServer, RecordedRequest, Response, json_response

RATE_LIMIT = 5000
_RAW_MEDIA_TYPES = (
    "application/vnd.github.raw",
    "application/vnd.github.raw+json",
    "application/vnd.github.v3.raw",
)
_REPO_PATH = re.compile(
    r"^/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/(?P<rest>contents(?:/.*)?|commits|git/trees/(?P<tree>.+))$"
)


def _base64_lines(data: bytes) -> str:
    """GitHub's contents API wraps base64 at 60 characters, each line ending with a newline."""
    encoded = base64.b64encode(data).decode()
    return "".join(encoded[i : i + 60] + "\n" for i in range(0, len(encoded), 60))


def _blob_sha(data: bytes) -> str:
    """The git blob id, so `sha` looks and behaves like GitHub's."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value)  # Python 3.11+ accepts GitHub's trailing "Z"


class FakeGitHub(FakeHTTPServer):
    """GITHUB_API_URL is fake.url. A missing token is answered 404, as GitHub does for a private repo."""

    def __init__(
        self,
        token: str = "ghp_test",
        owner: str = "acme",
        repo: str = "inventory",
        files: Mapping[str, str | bytes] | None = None,
        ref: str = "main",
        commits: Sequence[dict[str, Any]] = (),
        delay_seconds: float = 0.0,
    ) -> None:
        super().__init__(delay_seconds)
        self.token = token
        self.owner = owner
        self.repo = repo
        self.ref = ref
        self.files = {
            path: data.encode() if isinstance(data, str) else data for path, data in (files or {}).items()
        }
        self.commits = list(commits)
        self._used = 0

    @staticmethod
    def commit(
        sha: str,
        message: str,
        date: str,
        files: Sequence[str] = (),
        author_name: str = "Dev Eloper",
        author_email: str = "dev@example.com",
        login: str = "dev",
    ) -> dict[str, Any]:
        """A commit list item as GitHub returns it, plus "files" (paths it touched) for path filtering.

        `date` is ISO 8601 with a zone, e.g. "2026-11-24T06:00:00Z"; html_url and url are added when served.
        """
        person = {"name": author_name, "email": author_email, "date": date}
        return {
            "sha": sha,
            "commit": {"author": person, "committer": person, "message": message},
            "author": {"login": login, "type": "User"},
            "parents": [],
            "files": list(files),
        }

    def fail_next(
        self, status: int, message: str, headers: dict[str, str] | None = None, times: int = 1
    ) -> None:
        """Answer the next `times` authenticated requests with this status and GitHub's error body,
        e.g. 429 with `retry-after` for a secondary rate limit (docs/vendor-contracts.md §5)."""
        body = {"message": message, "documentation_url": "https://docs.github.com/rest"}
        self._inject(json_response(status, body, headers), times)

    def handle(self, req: RecordedRequest) -> Response:
        status, headers, body = self._route(req)
        with self._lock:
            self._used += 1
            used = self._used
        rate_headers = {
            "x-ratelimit-limit": str(RATE_LIMIT),
            "x-ratelimit-remaining": str(max(RATE_LIMIT - used, 0)),
            "x-ratelimit-used": str(used),
            "x-ratelimit-reset": str(int(time.time()) + 3600),
            "x-ratelimit-resource": "core",
        }
        return status, {**headers, **rate_headers}, body

    def _route(self, req: RecordedRequest) -> Response:
        scheme, _, credential = req.headers.get("authorization", "").partition(" ")
        if not credential:
            return self._not_found()
        if scheme.lower() not in ("bearer", "token") or credential != self.token:
            return json_response(
                401,
                {
                    "message": "Bad credentials",
                    "documentation_url": "https://docs.github.com/rest",
                    "status": "401",
                },
            )
        if injected := self._take_injected():
            return injected
        match = _REPO_PATH.match(req.path)
        if req.method != "GET" or not match or (match["owner"], match["repo"]) != (self.owner, self.repo):
            return self._not_found()
        if match["rest"] == "commits":
            return self._commits(req)
        if match["tree"] is not None:
            return self._tree(req, unquote(match["tree"]))
        path = unquote(match["rest"].removeprefix("contents").strip("/"))
        if req.arg("ref", self.ref) != self.ref:
            return self._not_found()
        if path in self.files:
            return self._file(req, path)
        if listing := self._directory(path):
            return json_response(200, listing)
        return self._not_found()

    @staticmethod
    def _not_found() -> Response:
        return json_response(
            404,
            {
                "message": "Not Found",
                "documentation_url": "https://docs.github.com/rest/repos/contents#get-repository-content",
                "status": "404",
            },
        )

    def _entry(self, path: str, kind: str) -> dict[str, Any]:
        is_file = kind == "file"
        data = self.files.get(path, b"")
        # Directories get a stable made-up tree sha; files get their real blob sha.
        sha = _blob_sha(data) if is_file else hashlib.sha1(path.encode()).hexdigest()
        repo = f"{self.owner}/{self.repo}"
        url = f"{self.url}/repos/{repo}/contents/{path}?ref={self.ref}"
        git_url = f"{self.url}/repos/{repo}/git/{'blobs' if is_file else 'trees'}/{sha}"
        html_url = f"https://github.com/{repo}/{'blob' if is_file else 'tree'}/{self.ref}/{path}"
        download_url = f"https://raw.githubusercontent.com/{repo}/{self.ref}/{path}" if is_file else None
        return {
            "type": kind,
            "size": len(data),
            "name": posixpath.basename(path),
            "path": path,
            "sha": sha,
            "url": url,
            "git_url": git_url,
            "html_url": html_url,
            "download_url": download_url,
            "_links": {"self": url, "git": git_url, "html": html_url},
        }

    def _file(self, req: RecordedRequest, path: str) -> Response:
        data = self.files[path]
        if req.headers.get("accept", "").split(";")[0].strip() in _RAW_MEDIA_TYPES:
            return 200, {"Content-Type": "text/plain; charset=utf-8"}, data
        return json_response(
            200, {**self._entry(path, "file"), "encoding": "base64", "content": _base64_lines(data)}
        )

    def _directory(self, path: str) -> list[dict[str, Any]]:
        """Immediate children of a directory ("" is the root), files and sub-directories."""
        prefix = f"{path}/" if path else ""
        children: dict[str, str] = {}
        for file_path in self.files:
            if file_path.startswith(prefix):
                head, sep, _ = file_path[len(prefix) :].partition("/")
                children[prefix + head] = "dir" if sep else "file"
        return [self._entry(child, kind) for child, kind in sorted(children.items())]

    def _tree(self, req: RecordedRequest, tree: str) -> Response:
        """`GET /git/trees/{ref}`: the root's entries, or with `recursive` (any value) every blob
        and tree of the repository, as GitHub shapes them (`truncated` false: no limit here)."""
        if tree not in (self.ref, self._tree_sha("")):
            return self._not_found()
        paths = {path: "blob" for path in self.files}
        for path in self.files:
            parts = path.split("/")
            paths.update({"/".join(parts[:i]): "tree" for i in range(1, len(parts))})
        if req.arg("recursive") is None:
            paths = {path: kind for path, kind in paths.items() if "/" not in path}
        entries = [self._tree_entry(path, kind) for path, kind in sorted(paths.items())]
        url = f"{self.url}/repos/{self.owner}/{self.repo}/git/trees/{self._tree_sha('')}"
        return json_response(
            200, {"sha": self._tree_sha(""), "url": url, "tree": entries, "truncated": False}
        )

    @staticmethod
    def _tree_sha(path: str) -> str:
        return hashlib.sha1(path.encode()).hexdigest()

    def _tree_entry(self, path: str, kind: str) -> dict[str, Any]:
        repo = f"{self.owner}/{self.repo}"
        if kind == "tree":
            sha = self._tree_sha(path)
            return {
                "path": path,
                "mode": "040000",
                "type": "tree",
                "sha": sha,
                "url": f"{self.url}/repos/{repo}/git/trees/{sha}",
            }
        data = self.files[path]
        sha = _blob_sha(data)
        return {
            "path": path,
            "mode": "100644",
            "type": "blob",
            "sha": sha,
            "size": len(data),
            "url": f"{self.url}/repos/{repo}/git/blobs/{sha}",
        }

    def _commits(self, req: RecordedRequest) -> Response:
        sha = req.arg("sha", self.ref)
        if sha != self.ref and sha not in {c["sha"] for c in self.commits}:
            return json_response(
                404,
                {
                    "message": f"No commit found for SHA: {sha}",
                    "documentation_url": "https://docs.github.com/rest/commits/commits#list-commits",
                    "status": "404",
                },
            )
        path, since, until = req.arg("path"), req.arg("since"), req.arg("until")
        per_page = min(int(req.arg("per_page", "30") or 30), 100)
        page = max(int(req.arg("page", "1") or 1), 1)

        def keep(commit: dict[str, Any]) -> bool:
            date = _parse_iso(commit["commit"]["committer"]["date"])
            return (
                (path is None or path in commit.get("files", []))
                and (since is None or date >= _parse_iso(since))
                and (until is None or date <= _parse_iso(until))
            )

        # GitHub lists newest first.
        kept = sorted(
            (c for c in self.commits if keep(c)),
            key=lambda c: _parse_iso(c["commit"]["committer"]["date"]),
            reverse=True,
        )
        items = [self._commit_json(c) for c in kept[(page - 1) * per_page : page * per_page]]
        headers = {}
        if page * per_page < len(kept):
            params = {k: v[0] for k, v in req.query.items()} | {"page": str(page + 1)}
            headers["Link"] = f'<{self.url}{req.path}?{urlencode(params)}>; rel="next"'
        return json_response(200, items, headers)

    def _commit_json(self, commit: dict[str, Any]) -> dict[str, Any]:
        item = {k: v for k, v in commit.items() if k != "files"}
        item.setdefault("html_url", f"https://github.com/{self.owner}/{self.repo}/commit/{commit['sha']}")
        item["url"] = f"{self.url}/repos/{self.owner}/{self.repo}/commits/{commit['sha']}"
        return item
