"""`oncall eval` end to end, as CI runs it: the real product in a child process, two scenarios,
the table, the JSON results, and the baseline guard's exit codes."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from services.runtime.evaluation.command import compare

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "eval" / "scenarios"
TWO = ("python-zerodivision-conversion", "java-npe-cart-total")
PRODUCT_PREFIXES = ("NATS_", "ONCALL_", "INGEST_", "OPENAI_", "TWILIO_", "JIRA_", "GITHUB_")


def oncall_eval(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The installed `oncall eval` (rule-based: no model settings), in a process group of its own
    that is ended afterwards whatever happens."""
    script = Path(sys.executable).with_name("oncall")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "services.runtime.cli"]
    env = {name: value for name, value in os.environ.items() if not name.startswith(PRODUCT_PREFIXES)}
    proc = subprocess.Popen(
        [*command, "eval", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.communicate(timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def test_two_scenarios_through_the_real_pipeline(tmp_path: Path) -> None:
    results_file = tmp_path / "results.json"
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps({"mode": "rules", "passed": 0, "pass_rate": 0.0, "passing": []}))
    done = oncall_eval(
        ["--only", ",".join(TWO), "--json", str(results_file), "--baseline", str(baseline)], cwd=REPO
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    header = next(line for line in out.splitlines() if line.startswith("scenario"))
    for column in ("kind", "expected", "what the message said first", "pass", "cw", "tokens", "secs"):
        assert column in header
    rows = [line for line in out.splitlines() if line.startswith(TWO)]
    assert len(rows) == 2
    assert "passed " in out and "confident-wrong" in out and "median" in out
    assert "no regression" in out

    document = json.loads(results_file.read_text())
    assert document["mode"] == "rules" and document["scenarios"] == 2
    assert {r["name"] for r in document["results"]} == set(TWO)
    for result in document["results"]:
        assert result["error"] is None, result
        assert result["incident_id"] and f"#{result['incident_id']}" in result["message"]
        assert result["method"] == "rules" and result["tokens"] == 0
        assert 0 <= result["confidence"] <= 1 and result["seconds"] is not None
        assert result["said_first"]
    assert document["passed"] == sum(r["passed"] for r in document["results"])


def test_a_regression_against_the_baseline_exits_1(tmp_path: Path) -> None:
    """A scenario directory of its own (found with --scenarios, from another working directory):
    one scenario that cannot pass, which the baseline says passes."""
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    text = (SCENARIOS / "python-zerodivision-conversion.toml").read_text()
    impossible = text.replace(
        'required = ["analytics/', 'required = ["a fragment no diagnosis says", "analytics/'
    )
    (scenarios / "never-passes.toml").write_text(impossible)
    baseline = tmp_path / "baseline.json"
    baseline.write_text(
        json.dumps({"mode": "rules", "passed": 1, "pass_rate": 1.0, "passing": ["never-passes"]})
    )
    done = oncall_eval(["--scenarios", str(scenarios), "--baseline", str(baseline)], cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "REGRESSION" in done.stdout and "no longer passing: never-passes" in done.stdout
    assert "never-passes" in done.stdout and "passed 0/1" in done.stdout


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert oncall_eval(["--scenarios", str(tmp_path)], cwd=tmp_path).returncode == 2  # no scenarios
    missing = oncall_eval(["--only", "no-such-scenario"], cwd=REPO)
    assert missing.returncode == 2 and "no-such-scenario" in missing.stderr
    listed = oncall_eval(["--list"], cwd=REPO)
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == len(list(SCENARIOS.glob("*.toml")))


def figures(**changes: Any) -> dict[str, Any]:
    return {
        "mode": "rules",
        "passed": 3,
        "pass_rate": 0.5,
        "passing": ["a", "b", "c"],
        "ran": list("abcdef"),
    } | changes


def test_compare_with_the_baseline() -> None:
    baseline = {"mode": "rules", "passed": 3, "pass_rate": 0.5, "passing": ["a", "b", "c"]}
    assert compare(figures(), baseline, whole_suite=True) == ([], [])
    worse = figures(passed=2, pass_rate=2 / 6, passing=["a", "b"])
    problems, notes = compare(worse, baseline, whole_suite=True)
    assert len(problems) == 2 and notes == ["no longer passing: c"]
    # One fixed, one broken: the same count, no regression, both named.
    swapped = figures(passing=["a", "b", "d"])
    problems, notes = compare(swapped, baseline, whole_suite=True)
    assert (
        problems == []
        and "no longer passing: c" in notes
        and any("newly passing" in n and "d" in n for n in notes)
    )
    # A selection is held to the baseline's passing scenarios among those selected.
    selected = figures(passed=1, pass_rate=0.5, passing=["a"], ran=["a", "d"])
    assert compare(selected, baseline, whole_suite=False)[0] == []
    selected_worse = figures(passed=0, pass_rate=0.0, passing=[], ran=["a", "d"])
    assert compare(selected_worse, baseline, whole_suite=False)[0]
    # A baseline of the other path is not comparable.
    assert compare(figures(mode="model"), baseline, whole_suite=True)[0]


def test_the_committed_baseline_names_existing_scenarios() -> None:
    baseline = json.loads((REPO / "eval" / "baseline.json").read_text())
    names = {path.stem for path in SCENARIOS.glob("*.toml")}
    assert baseline["mode"] == "rules" and set(baseline["passing"]) <= names
    assert baseline["passed"] == len(baseline["passing"]) and baseline["scenarios"] == len(names)
