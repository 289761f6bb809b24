"""Start and stop as an operator sees them: quiet when idle, clean on SIGTERM to the whole process
group (what `timeout`, systemd and Kubernetes send), one process per data directory, readable
one-line errors, and no password on the screen."""

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.processes import OncallProcess, free_port, run_oncall, run_process

IDLE_SECONDS = 60
SIGTERM_RUNS = 20


def local_settings(data_dir: Path) -> dict[str, str]:
    return {"ONCALL_DATA_DIR": str(data_dir), "INGEST_TOKEN": "t"}


def terminate_group(process: OncallProcess, timeout: float = 20) -> int:
    """SIGTERM to the process group of `oncall`, as `timeout` and systemd send it."""
    group = os.getpgid(process.proc.pid)
    assert group != os.getpgrp(), "the product must run in its own process group here"
    os.killpg(group, signal.SIGTERM)
    return process.proc.wait(timeout=timeout)


def problems_in(text: str) -> list[str]:
    """Log lines a person would read as trouble."""
    return [
        line
        for line in text.splitlines()
        if "Traceback" in line or " ERROR " in line or '"level": "ERROR"' in line or "Task-" in line
    ]


def test_an_idle_local_mode_logs_no_error_for_a_minute(tmp_path: Path) -> None:
    """FastStream logs an ERROR traceback when a pull fetch ends with a bare asyncio timeout
    (nats-py 2.15+ on an idle consumer); an idle product must be silent."""
    settings = {**local_settings(tmp_path / "data"), "ONCALL_LOG_FORMAT": "json"}
    with OncallProcess(["up"], settings, tmp_path) as process:
        process.wait_ready()
        time.sleep(IDLE_SECONDS)
        code = terminate_group(process)
    output = process.stdout + process.stderr
    assert problems_in(output) == [], output[-3000:]
    assert code == 0


# Each run starts `oncall up` (two processes since the intake has its own) and stops it: the
# repetitions count, not the time, so the test may take longer than the suite's 120 s default.
@pytest.mark.timeout(SIGTERM_RUNS * 30)
def test_sigterm_to_the_process_group_stops_cleanly_every_time(tmp_path: Path) -> None:
    """The embedded nats-server gets the group's SIGTERM too unless it is kept out of the group:
    the broker then stops against a dead server (ConnectionReconnectingError traceback) or hangs."""
    outcomes = []
    for run in range(SIGTERM_RUNS):
        with OncallProcess(["up"], local_settings(tmp_path / "data"), tmp_path) as process:
            process.wait_ready()
            started = time.monotonic()
            code = terminate_group(process)
            stop_seconds = time.monotonic() - started
        trouble = problems_in(process.stderr)
        outcomes.append((run, code, round(stop_seconds, 1), trouble))
        assert not (tmp_path / "data" / "local.json").exists()
    assert [o for o in outcomes if o[1] != 0 or o[3] or o[2] > 10] == [], outcomes


@pytest.fixture
def running_local(tmp_path: Path) -> Iterator[OncallProcess]:
    with OncallProcess(["up"], local_settings(tmp_path / "data"), tmp_path) as process:
        process.wait_ready()
        yield process


def test_a_second_local_mode_on_the_same_data_dir_is_refused(
    running_local: OncallProcess, tmp_path: Path
) -> None:
    second = run_oncall(["up", "--http-port", "0"], local_settings(tmp_path / "data"), timeout=30)
    assert second.returncode == 1
    assert f"pid {running_local.proc.pid}" in second.stderr and "--data-dir" in second.stderr
    assert "Traceback" not in second.stderr
    # The first one is unharmed: it still answers, and `oncall reply` still finds it.
    assert json.loads((tmp_path / "data" / "local.json").read_text())["pid"] == running_local.proc.pid


def test_state_left_by_a_killed_local_mode_is_reported_as_stale(tmp_path: Path) -> None:
    with OncallProcess(["up"], local_settings(tmp_path / "data"), tmp_path) as process:
        process.wait_ready()
        os.killpg(os.getpgid(process.proc.pid), signal.SIGKILL)
        process.proc.wait(timeout=10)
    assert (tmp_path / "data" / "local.json").exists()
    for command in (["reply", "status"], ["inspect", "abc123"], ["replay", "--dry-run"]):
        result = run_oncall([*command, "--data-dir", str(tmp_path / "data")], {}, timeout=30)
        assert result.returncode != 0, command
        assert "no longer running" in result.stdout + result.stderr, command
        assert "Traceback" not in result.stderr, command
    # ...and a new local mode starts over it.
    with OncallProcess(["up"], local_settings(tmp_path / "data"), tmp_path) as again:
        again.wait_ready()
        assert terminate_group(again) == 0


def test_a_nats_password_is_never_printed(tmp_path: Path) -> None:
    secret = "s3cr3t-Pa55"
    url = f"nats://oncall:{secret}@127.0.0.1:{free_port()}"
    settings = {"NATS_URL": url, "INGEST_TOKEN": "t", "ONCALL_DATA_DIR": str(tmp_path)}
    commands = [
        ["run", "alert_ingest", "--http-port", "0"],
        ["run", "diagnoser", "--http-port", "0"],
        ["up", "--http-port", "0"],
        ["reply", "status", "--wait", "1"],
        ["replay", "--dry-run"],
        ["inspect", "abc123"],
    ]
    for command in commands:
        for log_format in ("text", "json"):
            result = run_oncall(command, {**settings, "ONCALL_LOG_FORMAT": log_format}, timeout=30)
            output = result.stdout + result.stderr
            assert result.returncode != 0, command
            assert "127.0.0.1" in output, (command, output)  # it does say where it tried
            assert secret not in output, (command, output)


@pytest.mark.parametrize(
    ("command", "settings", "named"),
    [
        (["up"], {"ONCALL_LOG_LEVEL": "LOUD"}, "ONCALL_LOG_LEVEL"),
        (["replay", "--seq", "abc"], {}, "--seq"),
        (["replay", "--seq", "20-10"], {}, "--seq"),
        (["replay", "--since", "yesterday"], {}, "--since"),
        (["replay", "--stream", "NOPE"], {}, "ONCALL_DLQ"),
        (["up"], {"OPENAI_BASE_URL": "api.openai.com"}, "OPENAI_BASE_URL"),
    ],
)
def test_simple_input_errors_are_one_line_and_exit_code_2(
    command: list[str], settings: dict[str, str], named: str
) -> None:
    result = run_oncall(command, {"INGEST_TOKEN": "t", **settings}, timeout=30)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_intake_without_credentials_refuses_to_start(tmp_path: Path) -> None:
    """Without INGEST_TOKEN every webhook would be refused with 401 while the product looks up."""
    for command in (["up"], ["run", "alert_ingest"]):
        result = run_oncall(command, {"NATS_URL": "nats://127.0.0.1:4222", "ONCALL_DATA_DIR": str(tmp_path)})
        assert result.returncode == 2
        assert "INGEST_TOKEN" in result.stderr and "INGEST_ALLOW_ANONYMOUS" in result.stderr
    # Services that take no webhook start without it (here: fail only because NATS is absent).
    tools = run_oncall(["run", "tools"], {"NATS_URL": f"nats://127.0.0.1:{free_port()}"})
    assert tools.returncode == 1 and "INGEST_TOKEN" not in tools.stderr


def test_a_busy_port_says_how_to_choose_another(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_oncall(
            ["up", "--http-port", str(port)], {**local_settings(tmp_path / "data")}, timeout=30
        )
    assert result.returncode == 1
    assert "--http-port" in result.stderr and "ONCALL_HTTP_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_child_processes_of_the_product_stop_with_it(tmp_path: Path) -> None:
    """The embedded nats-server is outside the product's process group (so a group SIGTERM reaches
    only the product), yet never outlives it."""
    with OncallProcess(["up"], local_settings(tmp_path / "data"), tmp_path) as process:
        process.wait_ready()
        children = run_process(["pgrep", "-P", str(process.proc.pid)]).stdout.split()
        assert children, "an embedded nats-server runs beside the product"
        terminate_group(process)
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(Path(f"/proc/{pid}").exists() for pid in children)
