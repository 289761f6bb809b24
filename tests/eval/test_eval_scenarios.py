"""The scenario files of `oncall eval`: every one loads and validates, the suite covers what it
must, and a scenario becomes log lines, a webhook and a git checkout as described."""

import shutil
import subprocess
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.runtime.evaluation.scenarios import (
    KINDS,
    LANGUAGES,
    Scenario,
    ScenarioError,
    load_scenario,
    load_scenarios,
    parse_offset,
)

SCENARIOS = Path(__file__).resolve().parents[2] / "eval" / "scenarios"
FAILURE_MODES = ("old-noise", "latency", "symptom")
CODE_LANGUAGES = ("python", "java", "kotlin", "go", "node", "dotnet")


@pytest.fixture(scope="module")
def scenarios() -> list[Scenario]:
    return load_scenarios(SCENARIOS)


def test_every_scenario_file_loads_and_validates(scenarios: list[Scenario]) -> None:
    assert len(scenarios) == len(list(SCENARIOS.glob("*.toml")))
    # At least the 40; at most what keeps the eval a CI step of well under a minute
    # (the held-out scenarios of issue 12 brought it to 56).
    assert 40 <= len(scenarios) <= 72
    for scenario in scenarios:
        assert scenario.name == scenario.path.stem
        assert scenario.kind in KINDS and scenario.language in LANGUAGES
        assert scenario.logs, scenario.name


def test_the_suite_covers_the_failure_modes_languages_and_alert_kinds(scenarios: list[Scenario]) -> None:
    kinds = Counter(s.kind for s in scenarios)
    for mode in FAILURE_MODES:
        assert kinds[mode] >= 3, mode
    for kind in ("restart", "config", "recovered", "no-evidence"):
        assert kinds[kind] >= 1, kind
    bugs = {s.language for s in scenarios if s.kind == "code-bug"}
    assert set(CODE_LANGUAGES) <= bugs
    alerts = {s.alert.name for s in scenarios}
    assert {"HighErrorRate", "HighLatencyP90", "KubePodCrashLooping", "KubePodRestartsHigh"} <= alerts
    # A code bug names its file and line, checked against the code the scenario serves.
    for scenario in scenarios:
        if scenario.kind == "code-bug":
            assert scenario.expect.location is not None, scenario.name
    # No evidence: the message may not be confident.
    assert all(s.expect.max_confidence is not None for s in scenarios if s.kind == "no-evidence")
    # Most say which public case they were modelled on.
    assert sum(bool(s.modelled_on) for s in scenarios) >= len(scenarios) * 3 // 4


def test_required_fragments_are_not_given_away_by_the_alert(scenarios: list[Scenario]) -> None:
    """The message repeats the alert's name, service and expression: a fragment found there proves
    nothing about the diagnosis."""
    for scenario in scenarios:
        alert = scenario.alert
        given = f"{alert.name} on {alert.service} {alert.expr} {alert.summary}".casefold()
        for options in scenario.expect.required:
            assert not any(option.casefold() in given for option in options), (scenario.name, options)


def test_a_scenario_materialises_relative_to_the_alert_start(scenarios: list[Scenario]) -> None:
    scenario = next(s for s in scenarios if s.name == "old-noise-python-invoice")
    posted = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
    start = posted + timedelta(seconds=scenario.alert.started)
    lines = scenario.log_lines(start, posted)
    assert [stamp for stamp, _ in lines] == sorted(stamp for stamp, _ in lines)
    assert lines == scenario.log_lines(start, posted)  # deterministic
    old = [line for stamp, line in lines if "fx-feed" in line["message"] and stamp < start.timestamp() - 3000]
    new = [stamp for stamp, line in lines if "KeyError" in line["message"]]
    assert old and all(line["level"] == "ERROR" for line in old)
    assert new and min(new) >= start.timestamp()
    assert all(set(line) == {"timestamp", "level", "message", "service"} for _, line in lines)
    assert lines[0][1]["timestamp"].endswith("Z")

    hook = scenario.webhook(start, "run1")
    assert hook["version"] == "4" and hook["status"] == "firing"
    assert hook["alerts"][0]["startsAt"] == "2026-11-24T05:58:00.000Z"
    assert hook["commonLabels"]["service"] == "billing"
    assert hook["groupKey"] != scenario.webhook(start, "run2")["groupKey"]  # each run a new incident


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_the_checkout_has_the_scenarios_history(scenarios: list[Scenario], tmp_path: Path) -> None:
    scenario = next(s for s in scenarios if s.name == "java-npe-cart-total")
    start = datetime.now(UTC) - timedelta(minutes=2)
    (tmp_path / "left-over.txt").write_text("from the previous scenario")
    scenario.install_code(tmp_path, start)
    assert not (tmp_path / "left-over.txt").exists()
    path = "src/main/java/com/shop/Cart.java"
    assert (tmp_path / path).read_text() == scenario.code[path]

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(tmp_path), *args], capture_output=True, text=True, check=True
        ).stdout

    log = git("log", "--format=%an|%s|%cI").splitlines()
    assert len(log) == len(scenario.commits) == 2
    author, title, date = log[0].split("|")
    assert (author, title) == ("Rui Almeida", scenario.commits[-1].message)
    assert abs(datetime.fromisoformat(date) - (start - timedelta(minutes=40))) < timedelta(seconds=2)
    before = git("show", f"HEAD~1:{path}")
    assert "priceBook.getOrDefault(line.sku(), BigDecimal.ZERO)" in before
    assert "priceBook.get(line.sku());" not in before


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("-3600s", -3600), ("+90s", 90), ("-45m", -2700), ("-2h", -7200), ("-1.5d", -129600), (0, 0)],
)
def test_offsets(text: str | int, seconds: float) -> None:
    assert parse_offset(text, "here") == seconds


MINIMAL = """
title = "t"
kind = "code-bug"
language = "python"
[alert]
name = "HighErrorRate"
service = "svc"
summary = "s"
[expect]
summary = "x"
required = ["a.py:2"]
{expect_extra}
[[logs]]
service = "svc-1"
at = "0s"
message = "boom"
{extra}
[[code]]
path = "a.py"
text = '''one
two
'''
"""


@pytest.mark.parametrize(
    ("expect_extra", "extra", "error"),
    [
        ("", "", None),
        ("", "colour = 'red'", "unknown key"),
        ('location = { file = "a.py", line = 2, contains = "two" }', "", None),
        ('location = { file = "a.py", line = 1, contains = "two" }', "", "a.py:1 is 'one'"),
        ("", '[[commits]]\nat = "yesterday"\nauthor = "A"\nmessage = "m"', "not an offset"),
        (
            "",
            '[[commits]]\nat = "-1h"\nauthor = "A"\nmessage = "m"\n'
            'changes = [{ path = "a.py", old = "2", new = "zwei" }]',
            "'zwei' is not in a.py",
        ),
    ],
)
def test_invalid_files_are_refused_with_the_file_and_field(
    tmp_path: Path, expect_extra: str, extra: str, error: str | None
) -> None:
    path = tmp_path / "case.toml"
    path.write_text(MINIMAL.replace("{expect_extra}", expect_extra).replace("{extra}", extra))
    if error is None:
        assert load_scenario(path).name == "case"
        return
    with pytest.raises(ScenarioError, match=r"case\.toml") as raised:
        load_scenario(path)
    assert error in str(raised.value)
