"""`oncall eval`: the command line of the evaluation suite.

Exit codes: 0 after a run (whatever its pass rate), 1 when `--baseline` is given and the run
passes fewer scenarios than the baseline, 2 when the suite cannot run (no scenarios, an invalid
scenario file, the product did not start).
"""

from __future__ import annotations

import argparse
import asyncio
import fnmatch
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from services.runtime.evaluation.runner import (
    MODEL_TIMEOUT_SECONDS,
    RULES_TIMEOUT_SECONDS,
    Options,
    Result,
    SuiteError,
    results_document,
    run_suite,
    summary,
    totals_text,
)
from services.runtime.evaluation.scenarios import Scenario, ScenarioError, load_scenarios

DEFAULT_SCENARIOS = Path("eval") / "scenarios"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oncall eval",
        description="Run the evaluation scenarios through the real pipeline and score the messages.",
    )
    parser.add_argument(
        "--scenarios",
        type=Path,
        default=DEFAULT_SCENARIOS,
        help="directory of scenario files (default: eval/scenarios under the current directory)",
    )
    parser.add_argument(
        "--only", action="append", default=[], help="scenario names or globs, comma-separated (repeatable)"
    )
    parser.add_argument("--json", type=Path, dest="json_path", help="write the results to this file")
    parser.add_argument(
        "--baseline", type=Path, help="exit 1 when fewer scenarios pass than in this baseline file"
    )
    parser.add_argument(
        "--write-baseline", type=Path, help="write this run's figures as the new baseline (whole suite only)"
    )
    parser.add_argument(
        "--rules", action="store_true", help="the rule-based path even when OPENAI_API_KEY is set"
    )
    parser.add_argument(
        "--timeout", type=float, help="seconds to wait for each message (60; 300 with a model)"
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="show the message of each failure")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    return parser


def select(scenarios: Sequence[Scenario], patterns: Sequence[str]) -> list[Scenario]:
    wanted = [p.strip() for item in patterns for p in item.split(",") if p.strip()]
    if not wanted:
        return list(scenarios)
    unknown = [p for p in wanted if not any(fnmatch.fnmatchcase(s.name, p) for s in scenarios)]
    if unknown:
        raise ScenarioError(f"no scenario matches {', '.join(unknown)}")
    return [s for s in scenarios if any(fnmatch.fnmatchcase(s.name, p) for p in wanted)]


def compare(
    figures: dict[str, Any], baseline: dict[str, Any], whole_suite: bool
) -> tuple[list[str], list[str]]:
    """(regressions, notes). A regression: fewer passes than the baseline (on the whole suite: a
    lower pass count or rate; on a selection: fewer than the baseline's passing ones selected)."""
    problems: list[str] = []
    notes: list[str] = []
    passing = set(baseline.get("passing", []))
    ran = set(figures["ran"])
    lost = sorted((passing & ran) - set(figures["passing"]))
    gained = sorted(set(figures["passing"]) - passing)
    if baseline.get("mode", "rules") != figures["mode"]:
        problems.append(
            f"the baseline is of the {baseline.get('mode')} path; this run used the {figures['mode']} path"
        )
        return problems, notes
    if whole_suite:
        if figures["passed"] < int(baseline.get("passed", 0)):
            problems.append(
                f"{figures['passed']} scenarios passed; the baseline has {baseline.get('passed')}"
            )
        if figures["pass_rate"] + 1e-9 < float(baseline.get("pass_rate", 0.0)):
            floor = float(baseline["pass_rate"])
            problems.append(f"pass rate {figures['pass_rate']:.1%} is below the baseline's {floor:.1%}")
    elif figures["passed"] < len(passing & ran):
        problems.append(
            f"{figures['passed']} of the selected scenarios passed; the baseline has {len(passing & ran)}"
        )
    if lost:
        notes.append("no longer passing: " + ", ".join(lost))
    if gained:
        notes.append("newly passing (update the baseline with --write-baseline): " + ", ".join(gained))
    return problems, notes


def baseline_document(figures: dict[str, Any]) -> dict[str, Any]:
    keys = ("mode", "scenarios", "passed", "pass_rate", "confident_wrong", "passing")
    return {
        "about": "oncall eval's regression guard: CI fails when fewer scenarios pass than this "
        "(`oncall eval --rules --baseline eval/baseline.json`); rewrite it with --write-baseline",
        **{key: figures[key] for key in keys},
    }


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    try:
        scenarios = select(load_scenarios(args.scenarios), args.only)
    except ScenarioError as exc:
        print(f"oncall eval: {exc}", file=sys.stderr)
        return 2
    if not scenarios:
        print(f"oncall eval: no scenario files (*.toml) in {args.scenarios}", file=sys.stderr)
        return 2
    if args.list:
        for scenario in scenarios:
            print(f"{scenario.name:40} {scenario.kind:12} {scenario.language:7} {scenario.title}")
        return 0
    whole_suite = not args.only
    if args.write_baseline and not whole_suite:
        print("oncall eval: --write-baseline needs the whole suite (no --only)", file=sys.stderr)
        return 2
    baseline = None
    if args.baseline:
        try:
            baseline = json.loads(args.baseline.read_text())
        except (OSError, ValueError) as exc:
            print(f"oncall eval: --baseline {args.baseline}: {exc}", file=sys.stderr)
            return 2
    model = bool(os.environ.get("OPENAI_API_KEY")) and not args.rules
    timeout = args.timeout or (MODEL_TIMEOUT_SECONDS if model else RULES_TIMEOUT_SECONDS)
    path = "model path (OPENAI_API_KEY set)" if model else "rule-based path"
    print(f"oncall eval: {len(scenarios)} scenario(s) from {args.scenarios}, {path}", flush=True)
    options = Options(scenarios, model=model, timeout=timeout, verbose=args.verbose, out=_say)
    # A SIGTERM (CI's timeout) stops the suite like Ctrl-C: the product under test is stopped too.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        results: list[Result] = asyncio.run(run_suite(options))
    except SuiteError as exc:
        print(f"oncall eval: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("oncall eval: interrupted", file=sys.stderr)
        return 130
    figures = summary(results, model)
    print()
    for line in totals_text(figures):
        print(line)
    if args.json_path:
        args.json_path.write_text(json.dumps(results_document(results, figures), indent=1) + "\n")
        print(f"results written to {args.json_path}")
    if args.write_baseline:
        args.write_baseline.write_text(json.dumps(baseline_document(figures), indent=1) + "\n")
        print(f"baseline written to {args.write_baseline}")
    if baseline is None:
        return 0
    problems, notes = compare({**figures, "ran": [s.name for s in scenarios]}, baseline, whole_suite)
    for note in notes:
        print(note)
    if problems:
        for problem in problems:
            print(f"REGRESSION: {problem} ({args.baseline})")
        return 1
    print(f"no regression against {args.baseline}")
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _say(text: str) -> None:
    print(text, flush=True)
