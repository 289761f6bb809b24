"""Repository paths from what a stack frame says: inside the repository, container prefixes dropped."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from services.tools.errors import BackendError

# A stack-frame path carries the container's prefix (/app/, /usr/src/app/): drop leading
# components until a file is found, at most this many tries (each one a request on GitHub).
MAX_PATH_ATTEMPTS = 4


def candidate_paths(file_path: str, arg: str = "file_path") -> list[str]:
    """Repository-relative paths to try for `file_path`, the path as given first.

    Leading `/`, `./` and a Windows drive are dropped; `..` anywhere is refused, so every
    candidate stays inside the repository.
    """
    if "\x00" in file_path:
        raise BackendError("bad_request", f"{arg} contains a NUL character")
    parts = [p for p in file_path.strip().replace("\\", "/").split("/") if p not in ("", ".")]
    if parts and len(parts[0]) == 2 and parts[0][1] == ":":
        parts = parts[1:]  # C: from a Windows stack frame
    if ".." in parts:
        raise BackendError("bad_request", f"{arg} {file_path!r} must not contain '..'")
    if not parts:
        raise BackendError("bad_request", f"{arg} {file_path!r} names no file")
    return ["/".join(parts[i:]) for i in range(min(len(parts), MAX_PATH_ATTEMPTS))]


# How long a stack frame's path is remembered as a given repository path, and how many are.
RESOLVED_PATH_SECONDS = 600.0
RESOLVED_PATHS = 1024


class ResolvedPaths:
    """Which repository path a stack frame's path turned out to be, for a while. The frames of a
    service repeat from one incident to the next, and on GitHub every candidate tried is a
    request (of 5,000 an hour): remembered, fetch_code reads one file and recent_commits asks
    one history instead of one per candidate. A remembered path that stops answering (the file
    moved) is forgotten and the candidates are tried again."""

    def __init__(
        self,
        ttl_seconds: float = RESOLVED_PATH_SECONDS,
        size: int = RESOLVED_PATHS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.size = size
        self.clock = clock
        self._paths: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def get(self, frame_path: str) -> str | None:
        found = self._paths.get(frame_path)
        if found is None:
            return None
        path, until = found
        if self.clock() >= until:
            del self._paths[frame_path]
            return None
        return path

    def put(self, frame_path: str, path: str) -> None:
        self._paths[frame_path] = (path, self.clock() + self.ttl_seconds)
        self._paths.move_to_end(frame_path)
        if len(self._paths) > self.size:
            self._paths.popitem(last=False)

    def forget(self, frame_path: str) -> None:
        self._paths.pop(frame_path, None)


# Folders a repository search skips: dependencies, build output and tool state, not the code.
SKIPPED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        "__pycache__",
        ".venv",
        "venv",
        ".tox",
        "target",
        "build",
        "dist",
        "bin",
        "obj",
        ".gradle",
        ".idea",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
    }
)
_TEST_DIRS = frozenset({"test", "tests", "spec", "specs", "__tests__", "testdata", "fixtures"})


def common_tail(wanted: list[str], path: str) -> int:
    """How many trailing components `path` shares with `wanted` (0 when the file names differ)."""
    parts = path.split("/")
    count = 0
    while count < min(len(wanted), len(parts)) and wanted[-1 - count] == parts[-1 - count]:
        count += 1
    return count


def best_match(file_path: str, paths: list[str]) -> tuple[str | None, list[str]]:
    """The repository path that ends the most like `file_path` (a container path, or a package's
    path such as `com/shop/Cart.java`): (the path, []) when one is best; (None, the tied paths)
    when several are equally good even after leaving out tests; (None, []) when no file has its
    name. Folders in front that the repository lacks (`/srv/app/`) do not matter; the more of
    the trailing folders match, the better."""
    wanted = [p for p in file_path.replace("\\", "/").split("/") if p not in ("", ".")]
    if not wanted:
        return None, []
    scored = [(common_tail(wanted, path), path) for path in paths]
    best = max((score for score, _ in scored), default=0)
    if best == 0:
        return None, []
    tied = sorted(path for score, path in scored if score == best)
    if len(tied) > 1:
        tied = [p for p in tied if not _TEST_DIRS & set(p.split("/")[:-1])] or tied
    return (tied[0], []) if len(tied) == 1 else (None, tied)
