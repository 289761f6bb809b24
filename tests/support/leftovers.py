"""A pytest plugin (loaded by tests/conftest.py): no process a test started may outlive the run.

When the session starts, pytest becomes a "child subreaper" (Linux `prctl`): a process whose
parent dies is re-parented to pytest rather than to init, so that grandchildren left behind are
still found. When the session finishes, every live descendant of the pytest process is a leftover,
except the ones `exempt` while they run (the session's nats-server, until its fixture stops it).
Leftovers are listed with their command lines, ended (SIGTERM, then SIGKILL) and the run FAILS.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time

import pytest

from support.proc_table import ProcInfo, descendants

PR_SET_CHILD_SUBREAPER = 36
END_TIMEOUT_SECONDS = 5.0

_exempt: set[int] = set()


def exempt(pid: int | None) -> None:
    """`pid` is owned by a session-wide fixture: not a leftover while it lives."""
    if pid is not None:
        _exempt.add(pid)


def leftovers() -> list[ProcInfo]:
    """The live processes descending from this one, exempt ones (and their children) aside."""
    found = [info for info in descendants(os.getpid()) if info.alive]
    skipped = set(_exempt)
    grown = True
    while grown:  # their descendants too, however the pids are ordered
        grown = False
        for info in found:
            if info.ppid in skipped and info.pid not in skipped:
                skipped.add(info.pid)
                grown = True
    return [info for info in found if info.pid not in skipped]


def _end(processes: list[ProcInfo]) -> None:
    for signum in (signal.SIGTERM, signal.SIGKILL):
        for info in processes:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(info.pid, signum)
        deadline = time.monotonic() + END_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            live = {info.pid for info in leftovers()}
            processes = [info for info in processes if info.pid in live]
            if not processes:
                return
            time.sleep(0.05)


def pytest_sessionstart(session: pytest.Session) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    left = leftovers()
    if not left:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"  pid {info.pid} (parent {info.ppid}): {info.command[:300]}" for info in left]
    message = f"{len(left)} process(es) started by the tests outlived them"
    if reporter is not None:
        reporter.write("\n")
        reporter.write_sep("=", "processes left behind", red=True)
        for line in lines:
            reporter.write_line(line)
        reporter.write_line("They are ended now (SIGTERM, then SIGKILL); the run fails.")
    else:
        print(message, *lines, sep="\n")
    _end(left)
    session.shouldfail = message
    if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
