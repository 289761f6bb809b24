"""The local data directory (`ONCALL_DATA_DIR`): one `oncall up` at a time, and where it can be found.

A lock (`oncall.lock`, held with flock for the life of the process, so a `kill -9` frees it)
refuses a second `oncall up` on the same JetStream store. `local.json` tells `oncall reply`,
`replay` and `inspect` in another terminal where the running process's NATS and HTTP are, and
which process wrote it, so a file left behind by a killed process is recognised as stale.
Only local mode (embedded NATS) takes the lock: with NATS_URL several `oncall run` may share a
directory, as they share nothing else there.
"""

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import IO

LOCK_FILE = "oncall.lock"
LOCAL_STATE_FILE = "local.json"


class DataDirBusy(RuntimeError):
    pass


class StaleLocalState(RuntimeError):
    pass


def _try_lock(handle: IO[str]) -> bool:
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def lock_data_dir(data_dir: Path) -> IO[str]:
    """Hold the directory's lock until the returned file is closed (or the process ends)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = (data_dir / LOCK_FILE).open("a+")
    if not _try_lock(handle):
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise DataDirBusy(
            f"another oncall (pid {holder}) is already running on {data_dir}; stop it first, "
            "or give this one its own directory with --data-dir (or ONCALL_DATA_DIR)"
        )
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _running(pid: object) -> bool:
    try:
        os.kill(int(str(pid)), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True  # alive, someone else's
    return True


def write_local_state(data_dir: Path, nats_url: str, http_url: str) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    state = {"nats_url": nats_url, "http_url": http_url, "pid": os.getpid()}
    (data_dir / LOCAL_STATE_FILE).write_text(json.dumps(state))


def forget_local_state(data_dir: Path) -> None:
    with contextlib.suppress(OSError):
        (data_dir / LOCAL_STATE_FILE).unlink()


def read_local_state(data_dir: Path) -> dict[str, str] | None:
    """The running local process's addresses; None when none ran here; StaleLocalState when the
    file outlived its process (killed with -9, or the machine went down)."""
    path = data_dir / LOCAL_STATE_FILE
    if not path.exists():
        return None
    try:
        state: dict[str, str] = json.loads(path.read_text())
    except ValueError:
        state = {}
    if not _running(state.get("pid")):
        raise StaleLocalState(
            f"{path} was left by an oncall (pid {state.get('pid', '?')}) that is no longer running "
            "(killed?); start `oncall up` (or `oncall demo`) here again, or set NATS_URL"
        )
    return state
