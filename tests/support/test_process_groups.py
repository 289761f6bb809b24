"""No test leaves a process behind: what a fixture starts is ended with its whole process group
even when the test body raises, and the session fails if anything outlives the tests anyway."""

import os
import subprocess
import sys
import time
from pathlib import Path

from support.inner_pytest import run_pytest
from support.proc_table import read, snapshot
from support.processes import end_process_group, process_group, run_process, start_process


def alive(pid: int) -> bool:
    info = read(pid)
    return info is not None and info.alive


def wait_for_pids(path: Path, count: int) -> list[int]:
    deadline = time.monotonic() + 10
    while not (path.exists() and len(path.read_text().split()) == count):
        assert time.monotonic() < deadline, f"{path} not written"
        time.sleep(0.02)
    return [int(pid) for pid in path.read_text().split()]


# A shell (the group leader) and a sleep it started in the background: a grandchild of pytest.
SHELL_AND_CHILD = 'sleep 300 & echo $$ $! > "$0.tmp" && mv "$0.tmp" "$0"; wait'

FIXTURE_OWNS_A_GROUP = f"""
    import os, time
    from pathlib import Path

    import pytest
    from support.processes import process_group

    PIDS = Path(os.environ["PIDS_FILE"])

    @pytest.fixture
    def sleepers():
        with process_group(["sh", "-c", {SHELL_AND_CHILD!r}, str(PIDS)]) as proc:
            while not PIDS.exists():
                time.sleep(0.02)
            yield proc

    def test_the_body_raises(sleepers):
        pids = [int(pid) for pid in PIDS.read_text().split()]
        assert all(Path(f"/proc/{{pid}}").exists() for pid in pids)
        raise RuntimeError("the test body fails")
"""


def test_a_fixture_ends_its_process_group_when_the_test_body_raises(tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"

    code, output = run_pytest(tmp_path, FIXTURE_OWNS_A_GROUP, env={"PIDS_FILE": str(pids_file)})

    assert code == 1 and "1 failed" in output, output
    assert "RuntimeError: the test body fails" in output
    shell, sleeper = wait_for_pids(pids_file, 2)
    assert not alive(shell) and not alive(sleeper), output


def test_the_context_manager_ends_the_group_when_the_block_raises(tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    try:
        with process_group(["sh", "-c", SHELL_AND_CHILD, str(pids_file)]) as proc:
            shell, sleeper = wait_for_pids(pids_file, 2)
            assert shell == proc.pid and os.getpgid(sleeper) == proc.pid  # one group, led by the shell
            raise RuntimeError("the block fails")
    except RuntimeError:
        pass
    assert not alive(shell) and not alive(sleeper)
    assert proc.returncode == -15  # SIGTERM


IGNORES_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); time.sleep(99)"
)


def test_a_process_that_ignores_sigterm_is_killed() -> None:
    stubborn = start_process([sys.executable, "-c", IGNORES_SIGTERM], stdout=subprocess.PIPE)
    assert stubborn.stdout is not None and stubborn.stdout.readline() == b"1\n"

    assert end_process_group(stubborn, timeout=0.5) == -9  # SIGKILL
    stubborn.stdout.close()


def test_run_process_ends_what_the_command_left_behind(tmp_path: Path) -> None:
    pids_file = tmp_path / "pids"
    done = run_process(["sh", "-c", 'sleep 300 >/dev/null 2>&1 & echo $! > "$0"', str(pids_file)], timeout=10)

    (sleeper,) = wait_for_pids(pids_file, 1)
    assert done.returncode == 0 and not alive(sleeper)


LEAKS = """
    import subprocess

    def test_forgets_a_child():
        subprocess.Popen(["sleep", "301"])

    def test_forgets_a_grandchild():
        # the shell exits at once: its sleep is orphaned, and re-parented to pytest (a subreaper)
        subprocess.run(["sh", "-c", "sleep 302 >/dev/null 2>&1 &"], check=True)
"""


def test_the_session_fails_when_a_process_outlives_the_tests(tmp_path: Path) -> None:
    code, output = run_pytest(tmp_path, LEAKS, "-p", "support.leftovers")

    assert "2 passed" in output, output
    assert code == 1, output
    assert "processes left behind" in output
    assert "sleep 301" in output and "sleep 302" in output
    assert "2 process(es) started by the tests outlived them" in output
    still = [i for i in snapshot().values() if i.alive and i.command in ("sleep 301", "sleep 302")]
    assert still == [], "the check ends what it reports"


def test_the_session_passes_without_leftovers(tmp_path: Path) -> None:
    code, output = run_pytest(tmp_path, "def test_nothing():\n    pass\n", "-p", "support.leftovers")

    assert code == 0 and "processes left behind" not in output, output
