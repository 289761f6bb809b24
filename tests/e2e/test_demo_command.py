"""`oncall demo` from nothing but the install: embedded NATS, demo incident, diagnosis on screen."""

import re
import socket
from pathlib import Path

from support.processes import run_oncall

from services.runtime import demo


def test_demo_shows_the_diagnosis_of_the_buggy_line_and_how_to_answer(tmp_path: Path) -> None:
    result = run_oncall(
        ["demo", "--once", "--http-port", "0", "--data-dir", str(tmp_path / "state")], {}, timeout=90
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "alert accepted: HTTP 202" in out
    assert f"{demo.DEMO_BUGGY_FILE}:{demo.DEMO_BUGGY_LINE}" in out
    # The WhatsApp message as the on-call person reads it, rule-based without a model.
    assert "TypeError" in out and "rule-based" in out.lower()
    assert "oncall reply" in out or "create jira task" in out
    # The embedded nats-server kept its store under the data dir, and stopped with the demo.
    assert (tmp_path / "state" / "nats" / "jetstream").is_dir()


def test_the_demo_runs_again_and_again_in_the_same_directory(tmp_path: Path) -> None:
    """Each run is a fresh incident shown in full (the WhatsApp message included), whatever the
    runs before it left behind, even one resolved by the on-call person."""
    incidents = []
    for _ in range(2):
        result = run_oncall(["demo", "--once", "--data-dir", str(tmp_path / "state")], {}, timeout=90)
        out = result.stdout
        assert result.returncode == 0, out + result.stderr
        assert "── WhatsApp" in out and "Incident diagnosis" in out, out
        incidents.append(re.search(r"incident (#[0-9a-f]+)", out)[1])  # type: ignore[index]
    assert incidents[0] != incidents[1]


def test_the_demo_moves_off_a_busy_default_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            busy.bind(("127.0.0.1", 8080))
            busy.listen()
        except OSError:
            pass  # already taken by something else: busy all the same
        result = run_oncall(["demo", "--once", "--data-dir", str(tmp_path / "state")], {}, timeout=90)
        chosen = run_oncall(
            ["demo", "--once", "--http-port", "8080", "--data-dir", str(tmp_path / "state")], {}, timeout=90
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "port 8080 is busy: using" in result.stdout and "--http-port" in result.stdout
    assert "Incident diagnosis" in result.stdout
    # A port the person chose is theirs: the error says how to choose another.
    assert chosen.returncode == 1 and "--http-port" in chosen.stderr and "ONCALL_HTTP_PORT" in chosen.stderr
