"""`oncall demo` from nothing but the install: embedded NATS, demo incident, diagnosis on screen."""

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
