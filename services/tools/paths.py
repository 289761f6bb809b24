"""Repository paths from what a stack frame says: inside the repository, container prefixes dropped."""

from __future__ import annotations

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
