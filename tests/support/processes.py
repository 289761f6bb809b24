"""Runs the product as a user does: the `oncall` command in a child process.

Every process a test starts goes through `start_process` (or `run_process`): it runs in a process
group of its own, and whoever starts it ends that whole group with `end_process_group` when done,
also when the test fails (a `with` block or a fixture's teardown). tests/support/leftovers.py
fails the run if anything is still alive when the session ends.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from services.runtime.environment import without_product_settings

# Relative: bench/ imports this module as tests.support.processes (python -m bench.<script>).
from .proc_table import group_members

# The console script a user runs, from the same environment as the tests.
ONCALL = [str(Path(sys.executable).with_name("oncall"))]
REPO_ROOT = Path(__file__).resolve().parents[2]


STOP_TIMEOUT_SECONDS = 15.0
KILL_TIMEOUT_SECONDS = 5.0


def start_process(args: Sequence[str], **popen: Any) -> subprocess.Popen[Any]:
    """`subprocess.Popen` in a new session, hence a process group of its own (its id is the pid),
    so that `end_process_group` reaches whatever it starts too."""
    return subprocess.Popen(list(args), start_new_session=True, **popen)


def _signal_group(pgid: int, signum: int) -> None:
    with suppress(ProcessLookupError):  # nobody left in the group
        os.killpg(pgid, signum)


def _group_gone(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while group_members(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def end_process_group(proc: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT_SECONDS) -> int:
    """Ends the process group `proc` leads (started by `start_process`): SIGTERM to the whole group,
    up to `timeout` s for all of it to exit, then SIGKILL to what is left. Returns the leader's exit
    code (negative: the signal that ended it). Safe to call again, and after the leader exited."""
    pgid = proc.pid
    with suppress(ProcessLookupError):
        if os.getpgid(pgid) != pgid:
            raise ValueError(f"{proc.args!r} does not lead a process group: start it with start_process")
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    with suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=timeout)
    if proc.poll() is None or not _group_gone(pgid, max(0.0, deadline - time.monotonic())):
        _signal_group(pgid, signal.SIGKILL)
        proc.wait(timeout=KILL_TIMEOUT_SECONDS)
        if not _group_gone(pgid, KILL_TIMEOUT_SECONDS):
            left = ", ".join(f"{p.pid} {p.command}" for p in group_members(pgid))
            raise RuntimeError(f"process group {pgid} survived SIGKILL: {left}")
    return proc.returncode


@contextmanager
def process_group(
    args: Sequence[str], timeout: float = STOP_TIMEOUT_SECONDS, **popen: Any
) -> Iterator[subprocess.Popen[Any]]:
    """`start_process(args)` for the block; its whole group ended afterwards, however the block ends."""
    proc = start_process(args, **popen)
    try:
        yield proc
    finally:
        end_process_group(proc, timeout)


def run_process(
    args: Sequence[str], timeout: float = 60.0, check: bool = False, **popen: Any
) -> subprocess.CompletedProcess[str]:
    """`subprocess.run(args, capture_output=True, text=True)` in a process group of its own, which is
    ended afterwards even if the command left something running or timed out (TimeoutExpired)."""
    with start_process(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        finally:
            end_process_group(proc)
    done = subprocess.CompletedProcess(list(args), proc.returncode, stdout, stderr)
    if check:
        done.check_returncode()
    return done


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def product_env(settings: dict[str, str]) -> dict[str, str]:
    """The environment of a product process: `settings`, and none a developer may have in their shell."""
    env = without_product_settings(os.environ)
    env.update(settings)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class OncallProcess:
    def __init__(self, args: list[str], settings: dict[str, str], log_dir: Path):
        self.port = int(settings.get("ONCALL_HTTP_PORT") or free_port())
        self.settings = {**settings, "ONCALL_HTTP_PORT": str(self.port)}
        self.url = f"http://127.0.0.1:{self.port}"
        self.stdout_path = log_dir / f"oncall-{self.port}.out"
        self.stderr_path = log_dir / f"oncall-{self.port}.err"
        self._stdout = self.stdout_path.open("w")
        self._stderr = self.stderr_path.open("w")
        self.proc = start_process(
            [*ONCALL, *args],
            cwd=REPO_ROOT,
            env=product_env(self.settings),
            stdout=self._stdout,
            stderr=self._stderr,
        )

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"oncall exited with {self.proc.returncode}:\n{self.stderr[-3000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"oncall not ready after {timeout}s:\n{self.stderr[-3000:]}")

    def wait_for_output(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.stdout
            if text in out:
                return out
            time.sleep(0.05)
        raise TimeoutError(f"{text!r} not printed within {timeout}s; stdout:\n{self.stdout[-3000:]}")

    def stop(self) -> int:
        """SIGTERM to its process group, SIGKILL after 15 s; its exit code. Safe to call twice."""
        try:
            return end_process_group(self.proc)
        finally:
            self._stdout.close()
            self._stderr.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@contextmanager
def oncall_up(settings: dict[str, str], log_dir: Path) -> Iterator[OncallProcess]:
    """`oncall up` with these settings, ready to serve; stopped (SIGTERM) afterwards."""
    process = OncallProcess(["up"], settings, log_dir)
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


def run_oncall(
    args: list[str], settings: dict[str, str], timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    return run_process([*ONCALL, *args], timeout, cwd=REPO_ROOT, env=product_env(settings))
